"""web-vs-chat: is TuCo lower on pre-training-like web text than on chat prompts? (docs/method.md 5.1)

Paper: one random 97-token substring of each of the first 1000 OpenWebText records vs HH-RLHF
conversations; ROC-AUC of TuCo with chat as the positive class 0.93-1.0 for most pairs (Zephyr 0.63).
Here: one random window of ``web_tokens`` tokens (97, the paper's) of each web document, scored raw, vs
chat prompts under the chat template: the primary claim. The documents must be longer than the window
(a window that takes a whole short paragraph ends where the text ends, which a chat fine-tune treats
very differently); shorter ones are reported and left out. Other window lengths are a reported sweep
(exploratory); optionally the same chat prompts without the template, and the output-only baselines.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.data.sources import SOURCE_HELP, load_prompts
from tuco.errors import ConfigError
from tuco.experiments.base import (
    POSITION_HELP,
    POSITIONS,
    Experiment,
    ExperimentRun,
    Options,
    auc_claim,
    item_means,
    mean_of,
    opt,
    paired_claim,
    rows_of,
    values,
)
from tuco.measures.prompts import Prompt
from tuco.stats.claims import Claim

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tuco.measures.prompts import Messages
    from tuco.models.decomposable import Decomposable

PAPER = "ROC-AUC 0.93-1.0 for most pairs (Zephyr-gemma 0.63), chat = positive"
PAPER_RANGE = (0.93, 1.0)


@dataclass
class WebVsChatOptions(Options):
    web: str = opt("builtin:web-docs", f"web-like documents ({SOURCE_HELP}); paper: hf:Skylion007/openwebtext")
    chat: str = opt("builtin:chat", f"chat prompts ({SOURCE_HELP}); paper: hf:Anthropic/hh-rlhf")
    n: int = opt(200, "prompts per group (spread evenly over each set)", min=1)
    web_tokens: int = opt(97, "the window: a random substring of this many tokens of each web document (the paper's 97)", min=1)
    window_sweep: list[int] = opt([24, 48, 192], "other window lengths, reported as a sweep (empty: none)", min=1)
    without_template: bool = opt(False, "also score the chat prompts without the chat template")
    baselines: bool = opt(False, "also compute OutputCo and next-token KL(FT || PT) of every prompt")
    position: str = opt("last", POSITION_HELP, choices=POSITIONS)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "seed of the window positions")

    def check(self) -> None:
        if self.web_tokens in self.window_sweep:
            raise ConfigError(f"--window-sweep repeats --web-tokens {self.web_tokens}; list only the other lengths")


def window(tokenizer: PreTrainedTokenizerBase, text: str, n_tokens: int, rng: random.Random) -> str | None:
    """A random window of ``n_tokens`` tokens of ``text`` strictly inside it (decoded back to text), or None
    when the text is not longer than the window."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= n_tokens:
        return None
    start = rng.randrange(len(ids) - n_tokens)  # never the last token: a window ends mid-text, as in the paper
    return str(tokenizer.decode(ids[start : start + n_tokens]))


def run(model: Decomposable, o: WebVsChatOptions, rd: ExperimentRun) -> None:
    docs = [t for t in load_prompts(o.web, limit=o.n) if isinstance(t, str)]
    score = lambda prompts, chat: rd.score(prompts, chat=chat, position=o.position, batch_size=o.batch_size, baselines=o.baselines)  # noqa: E731
    for length in [o.web_tokens, *o.window_sweep]:
        rng = random.Random(f"{o.seed}-{length}")
        texts = [(i, window(model.tokenizer, d, length, rng)) for i, d in enumerate(docs)]
        name = "web" if length == o.web_tokens else f"web ({length} tokens)"
        prompts = [Prompt(f"{name}-{i}", text=t, extra={"condition": name, "window": length, "item": f"doc-{i}"}) for i, t in texts if t]
        rd.note(**{f"web_documents_shorter_than_{length}_tokens": len(texts) - len(prompts)})
        if prompts:
            score(prompts, False)
    chats = load_prompts(o.chat, limit=o.n)
    score([_prompt(f"chat-{i}", c, "chat", i) for i, c in enumerate(chats)], True)
    if o.without_template:
        score([_prompt(f"raw-{i}", c, "chat (no template)", i) for i, c in enumerate(chats) if isinstance(c, str)], False)


def _prompt(pid: str, value: str | Messages, condition: str, item: int) -> Prompt:
    extra = {"condition": condition, "item": f"chat-{item}"}
    return Prompt(pid, text=value, extra=extra) if isinstance(value, str) else Prompt(pid, messages=value, extra=extra)


def metrics(rows: list[dict[str, Any]], o: WebVsChatOptions) -> dict[str, Any]:
    per = {}
    for c in dict.fromkeys(r["condition"] for r in rows):
        mine = rows_of(rows, condition=c)
        per[c] = {"n": len(mine), "mean_tuco": mean_of(values(mine)), "mean_prompt_tokens": mean_of(values(mine, "n_tokens"))}
    m: dict[str, Any] = {"per_condition": per, "position": o.position, "web_tokens": o.web_tokens}
    raw = values(rows, condition="chat (no template)")
    if raw:
        m["mean_tuco_chat_without_template"] = statistics.fmean(raw)
    elif o.without_template:
        m["auc_template_skipped"] = "the chat source has no plain-text prompts (chats given as messages have no template-free form)"
    return m


def claims(rows: list[dict[str, Any]], o: WebVsChatOptions, m: dict[str, Any]) -> list[Claim]:
    chat = rows_of(rows, condition="chat")
    out = [
        auc_claim(
            f"Web text ({o.web_tokens}-token windows) has lower TuCo than chat prompts (AUC, chat = positive)",
            chat,
            rows_of(rows, condition="web"),
            paper=PAPER,
            paper_range=PAPER_RANGE,
            primary=True,
        )
    ]
    for length in o.window_sweep:
        out.append(
            auc_claim(
                f"... with {length}-token windows",
                chat,
                rows_of(rows, condition=f"web ({length} tokens)"),
                paper=PAPER,
                paper_range=PAPER_RANGE,
            )
        )
    if rows_of(rows, condition="chat (no template)"):
        out.append(
            paired_claim(
                "The chat template raises TuCo at the last token (each chat with and without it)",
                item_means(rows, condition="chat (no template)"),
                item_means(rows, condition="chat"),
                expect="above",
                what="TuCo templated - raw",
                paper=None,
            )
        )
    for key, name in (("output_co", "OutputCo"), ("kl_ft_pt", "KL(FT||PT)")):
        if values(rows, key, condition="chat"):
            out.append(
                auc_claim(
                    f"Baseline: web text has lower {name} than chat",
                    chat,
                    rows_of(rows, condition="web"),
                    key=key,
                    what=f"{name} AUC",
                    paper="a baseline",
                )
            )
    return out


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import strips

    groups = {c: values(rows, condition=c) for c in m["per_condition"]}
    strips(groups, f"web text ({m['web_tokens']}-token windows and sweep) vs chat prompts", path / "web_vs_chat.png")


EXPERIMENT = Experiment(
    name="web-vs-chat",
    question="Is TuCo lower on pre-training-like web text than on chat prompts? (ROC-AUC, chat = positive)",
    paper=PAPER,
    options=WebVsChatOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    claims=claims,
    sources=lambda o: [("prompts", o.web), ("prompts", o.chat)],
)
