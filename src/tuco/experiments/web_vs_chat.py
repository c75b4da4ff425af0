"""web-vs-chat: is TuCo lower on pre-training-like text than on chat prompts? (docs/method.md 5.1)

Paper: one random 97-token substring of each of the first 1000 OpenWebText records vs HH-RLHF
conversations; ROC-AUC of TuCo with chat as the positive class 0.93-1.0 for most pairs (Zephyr 0.63).
Optionally the same chat prompts without the chat template (what the template alone carries) and the
output-only baselines (OutputCo, next-token KL) on the same prompts.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuco.data.sources import SOURCE_HELP, load_prompts
from tuco.experiments.base import (
    POSITION_HELP,
    POSITIONS,
    Experiment,
    ExperimentRun,
    Finding,
    Options,
    auc_finding,
    auc_summary,
    opt,
    paired,
    values,
)
from tuco.prompts import Prompt

PAPER = "ROC-AUC 0.93-1.0 for most pairs (Zephyr-gemma 0.63), chat = positive"


@dataclass
class WebVsChatOptions(Options):
    web: str = opt("builtin:web", f"web-like text ({SOURCE_HELP}); paper: hf:Skylion007/openwebtext")
    chat: str = opt("builtin:chat", f"chat prompts ({SOURCE_HELP}); paper: hf:Anthropic/hh-rlhf")
    n: int = opt(200, "prompts per group (spread evenly over each set)", min=1)
    web_tokens: int = opt(97, "random window of this many tokens per web text (0: whole text)", min=0)
    without_template: bool = opt(False, "also score the chat prompts without the chat template")
    baselines: bool = opt(False, "also compute OutputCo and next-token KL(FT || PT) of every prompt")
    position: str = opt("last", POSITION_HELP, choices=POSITIONS)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "seed of the window positions")


def substring(tokenizer: Any, text: str, n_tokens: int, rng: random.Random) -> str:
    """A random window of ``n_tokens`` tokens of ``text`` (decoded back to text), or all of a shorter text."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if n_tokens <= 0 or len(ids) <= n_tokens:
        return text
    start = rng.randrange(len(ids) - n_tokens + 1)
    return tokenizer.decode(ids[start : start + n_tokens])


def run(model: Any, o: WebVsChatOptions, rd: ExperimentRun) -> None:
    rng = random.Random(o.seed)
    web = [substring(model.tokenizer, t, o.web_tokens, rng) for t in load_prompts(o.web, limit=o.n) if isinstance(t, str)]
    score = lambda prompts, chat: rd.score(prompts, chat=chat, position=o.position, batch_size=o.batch_size, baselines=o.baselines)  # noqa: E731
    score([Prompt(f"web-{i}", text=t, extra={"condition": "web"}) for i, t in enumerate(web)], False)
    chats = load_prompts(o.chat, limit=o.n)
    score([_prompt(f"chat-{i}", c, "chat", i) for i, c in enumerate(chats)], True)
    if o.without_template:
        score([_prompt(f"raw-{i}", c, "chat (no template)", i) for i, c in enumerate(chats) if isinstance(c, str)], False)


def _prompt(pid: str, value: Any, group: str, item: int) -> Prompt:
    if isinstance(value, str):
        return Prompt(pid, text=value, extra={"condition": group, "item": item})
    return Prompt(pid, messages=value, extra={"condition": group, "item": item})


def metrics(rows: list[dict[str, Any]], o: WebVsChatOptions) -> dict[str, Any]:
    web, chat = values(rows, condition="web"), values(rows, condition="chat")
    m: dict[str, Any] = {
        "n_web": len(web),
        "n_chat": len(chat),
        "position": o.position,
        "mean_tuco_web": statistics.fmean(web) if web else None,
        "mean_tuco_chat": statistics.fmean(chat) if chat else None,
        "auc": auc_summary(chat, web, o.seed),
    }
    raw = values(rows, condition="chat (no template)")
    if raw:
        # each plain-text chat with and without its template: one item, two conditions
        pairs = paired(rows, {"condition": "chat"}, {"condition": "chat (no template)"})
        m["mean_tuco_chat_without_template"] = statistics.fmean(raw)
        m["auc_template"] = auc_summary(values([a for a, _ in pairs]), values([b for _, b in pairs]), o.seed)
    elif o.without_template:
        m["auc_template_skipped"] = "the chat source has no plain-text prompts (chats given as messages have no template-free form)"
    for key in ("output_co", "kl_ft_pt"):
        c, w = values(rows, key, condition="chat"), values(rows, key, condition="web")
        if c and w:
            m[f"auc_{key}"] = auc_summary(c, w, o.seed)
    return m


def findings(m: dict[str, Any]) -> list[Finding]:
    out = [auc_finding("Web text has lower TuCo than chat prompts", PAPER, m["auc"])]
    for key, name in (("output_co", "OutputCo"), ("kl_ft_pt", "KL(FT||PT)")):
        if f"auc_{key}" in m:
            out.append(
                auc_finding(
                    f"Baseline: web text has lower {name} than chat", "not in the paper (a baseline)", m[f"auc_{key}"], what=f"{name} AUC"
                )
            )
    return out


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import strips

    groups = {g: values(rows, condition=g) for g in ("web", "chat", "chat (no template)")}
    auc = m["auc"]["auc"]
    strips(groups, f"web text vs chat prompts (ROC-AUC {auc:.2f})" if auc is not None else "web text vs chat", path / "web_vs_chat.png")


EXPERIMENT = Experiment(
    name="web-vs-chat",
    question="Is TuCo lower on pre-training-like web text than on chat prompts? (ROC-AUC, chat = positive)",
    paper=PAPER,
    options=WebVsChatOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    findings=findings,
    sources=lambda o: [("prompts", o.web), ("prompts", o.chat)],
)
