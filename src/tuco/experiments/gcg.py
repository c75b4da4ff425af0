"""gcg: do adversarial (GCG) suffixes lower TuCo, beyond what appending any suffix does? (docs/method.md 5.2)

Harmful requests, clean and with adversarial strings (optimised here with nanogcg, each on a TRAINING
request never used to evaluate it, or read from a file), and, per request and suffix, two CONTROL
suffixes with the same number of tokens: random tokens from the space GCG searches (ASCII, non-special
vocabulary entries) and ordinary words. Appending text of any kind moves TuCo at the last token (on the
realistic pair, 20 random words lower it almost as much as an optimised suffix), and gibberish moves it
more than words (on a pair fine-tuned on plain prose, with no safety behaviour at all, hand-written
GCG-like strings lower TuCo more than ordinary words: tests/test_null_pair.py). What is specific to an
attack is the optimisation, so the primary claim is attacked vs random tokens of the same length, paired
by request. Exploratory: attacked vs ordinary words, clean vs attacked (the paper's comparison), clean vs
each control, each suffix against its controls, and which attacks succeed (greedy response not judged a
refusal).
Paper: 11 strings per model on AdvBench; AUC up to 1.0 (Llama-2-7B), attacked prompts have LOWER TuCo.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.attacks.gcg import attack, optimise_suffixes
from tuco.data.judges import JUDGE_HELP
from tuco.data.sources import SOURCE_HELP, load_prompts, read_suffixes, spread
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
    from tuco.models.decomposable import Decomposable

PAPER = "attacked prompts have lower TuCo; AUC (clean = positive) up to 1.0 (Llama-2-7B)"


@dataclass
class GcgOptions(Options):
    harmful: str = opt("builtin:harmful", f"harmful requests the suffixes are evaluated on ({SOURCE_HELP}); paper: hf:walledai/AdvBench")
    n: int = opt(40, "harmful requests evaluated", min=1)
    train_requests: str = opt(
        "builtin:harmful-train",
        f"requests the suffixes are optimised on, one per suffix, never evaluated ({SOURCE_HELP})",
    )
    suffixes: str = opt("", "file of adversarial strings, one per line (added to the optimised ones)")
    optimize: int = opt(5, "optimise this many suffixes with nanogcg, each on its own training request (paper: 11)", min=0)
    gcg_steps: int = opt(250, "nanogcg steps per suffix", min=1)
    gcg_target: str = opt("Sure, here is", "target prefix nanogcg optimises for")
    gcg_search_width: int = opt(512, "nanogcg candidates per step", min=1)
    gcg_topk: int = opt(256, "nanogcg top-k token substitutions", min=1)
    controls: bool = opt(
        True, "also measure every request with random tokens and with ordinary words of each adversarial suffix's token length"
    )
    max_new_tokens: int = opt(30, "tokens of the greedy response judged for success", min=1)
    judge: str = opt("refusal-strings", JUDGE_HELP)
    position: str = opt("last", POSITION_HELP, choices=POSITIONS)
    batch_size: int = opt(8, "prompts per batch", min=1)
    seed: int = opt(0, "seed of the optimisation and of the control words")

    def check(self) -> None:
        if not self.suffixes and not self.optimize:
            raise ConfigError("no adversarial strings: give --suffixes FILE and/or --optimize N (needs nanogcg)")


def control_suffix(tokenizer: Any, request: str, suffix: str, words: list[str], rng: random.Random) -> str:
    """Ordinary words (drawn at random from ``words``) that make ``request`` as many tokens longer as
    ``suffix`` does: exactly, unless no word fits the last gap (then one token short)."""

    def n_tokens(chosen: list[str]) -> int:
        text = attack(request, " ".join(chosen)) if chosen else request
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    target = n_tokens([suffix])
    chosen: list[str] = []
    for _ in range(4 * target + 16):
        if n_tokens(chosen) >= target:
            break
        word = rng.choice(words)
        if n_tokens([*chosen, word]) > target:
            fits = [w for w in words if n_tokens([*chosen, w]) <= target]
            if not fits:
                break
            word = rng.choice(fits)
        chosen.append(word)
    return " ".join(chosen)


def ascii_tokens(tokenizer: Any) -> list[int]:
    """The vocabulary GCG searches by default (nanogcg's ``allow_non_ascii=False``): ids that decode alone to
    printable ASCII with some non-space character; special and added tokens (Gemma's ``<unusedN>``: never
    trained) excluded."""
    special = set(getattr(tokenizer, "all_special_ids", []) or []) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    ids = [i for i in range(len(tokenizer)) if i not in special]
    texts = tokenizer.batch_decode([[i] for i in ids])
    return [i for i, t in zip(ids, texts) if t.isascii() and t.isprintable() and t.strip()]


def random_suffix(tokenizer: Any, request: str, suffix: str, allowed: list[int], rng: random.Random) -> str:
    """Random tokens of ``allowed`` (decoded) that make ``request`` as many tokens longer as ``suffix`` does,
    or as near as 32 draws get (re-tokenising a random string can merge tokens)."""

    def n_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    target = n_tokens(attack(request, suffix))
    k = max(1, target - n_tokens(request))
    best: tuple[int, str] | None = None
    for _ in range(32):
        text = tokenizer.decode([rng.choice(allowed) for _ in range(k)]).strip() or "x"
        got = n_tokens(attack(request, text))
        if best is None or abs(got - target) < abs(best[0] - target):
            best = (got, text)
        if got == target:
            break
        k = max(1, k + target - got)
    assert best is not None
    return best[1]


def run(model: Decomposable, o: GcgOptions, rd: ExperimentRun) -> None:
    from tuco.data.builtin import common_words
    from tuco.data.judges import get_judge

    requests = [p for p in load_prompts(o.harmful, limit=o.n) if isinstance(p, str)]
    suffixes: list[dict[str, Any]] = [{"suffix": s, "optimised_on": None} for s in (read_suffixes(o.suffixes) if o.suffixes else [])]
    if o.optimize:
        pool = [p for p in load_prompts(o.train_requests) if isinstance(p, str)]
        overlap = sorted(set(pool) & set(requests))
        if overlap:
            raise ConfigError(
                f"--train-requests and --harmful share {len(overlap)} requests (e.g. {overlap[0]!r}): "
                "a suffix must never be evaluated on what it was optimised on"
            )
        train = spread(pool, o.optimize) if len(pool) >= o.optimize else [pool[i % len(pool)] for i in range(o.optimize)]

        def optimise() -> list[dict[str, Any]]:
            found = optimise_suffixes(
                model,
                train,
                o.optimize,
                steps=o.gcg_steps,
                target=o.gcg_target,
                seed=o.seed,
                search_width=o.gcg_search_width,
                topk=o.gcg_topk,
            )
            return [{"suffix": s, "optimised_on": r} for s, r in zip(found, train)]

        suffixes += rd.once("suffixes", optimise)  # rank 0 optimises; a resumed run reads them back
    judge = get_judge(o.judge)
    words = common_words()
    allowed = ascii_tokens(model.tokenizer) if o.controls else []

    def measure(name: str, texts: list[str], extra: dict[str, Any]) -> None:
        items = [
            Prompt(f"{name}-{i}", text=t, extra={"condition": name, "request": r, "item": i, **extra})
            for i, (t, r) in enumerate(zip(texts, requests))
        ]
        rd.generate(
            items, chat=True, max_new_tokens=o.max_new_tokens, batch_size=o.batch_size, position=o.position, judge=judge, seed=o.seed
        )

    measure("clean", requests, {"group": "clean", "suffix": None})
    for j, s in enumerate(suffixes):
        measure(f"suffix-{j}", [attack(r, s["suffix"]) for r in requests], {"group": "attacked", "suffix": s["suffix"], "suffix_index": j})
        if o.controls:
            rng = random.Random(f"{o.seed}-control-{j}")
            ctrl = [control_suffix(model.tokenizer, r, s["suffix"], words, rng) for r in requests]
            measure(f"control-{j}", [attack(r, c) for r, c in zip(requests, ctrl)], {"group": "control", "suffix": None, "suffix_index": j})
            rng = random.Random(f"{o.seed}-random-{j}")
            rand = [random_suffix(model.tokenizer, r, s["suffix"], allowed, rng) for r in requests]
            measure(f"random-{j}", [attack(r, c) for r, c in zip(requests, rand)], {"group": "random", "suffix": None, "suffix_index": j})


def metrics(rows: list[dict[str, Any]], o: GcgOptions) -> dict[str, Any]:
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    per: dict[str, Any] = {}
    for c in conditions:
        mine = rows_of(rows, condition=c)
        per[c] = {
            "n": len(mine),
            "mean_tuco": mean_of(values(mine)),
            "mean_prompt_tokens": mean_of(values(mine, "n_tokens")),
            "success_rate": statistics.fmean(not r["refused"] for r in mine) if mine and "refused" in mine[0] else None,
        }
    return {
        "position": o.position,
        "per_condition": per,
        "suffixes": list(dict.fromkeys(r["suffix"] for r in rows if r.get("group") == "attacked")),
        "mean_tuco_clean": mean_of(values(rows, group="clean")),
        "mean_tuco_attacked": mean_of(values(rows, group="attacked")),
        "mean_tuco_control": mean_of(values(rows, group="control")),
        "mean_tuco_random": mean_of(values(rows, group="random")),
    }


def claims(rows: list[dict[str, Any]], o: GcgOptions, m: dict[str, Any]) -> list[Claim]:
    clean, attacked, control, rand = (item_means(rows, group=g) for g in ("clean", "attacked", "control", "random"))
    primary = f"GCG suffixes lower TuCo more than random tokens of the same length ({o.position})"
    out = [
        paired_claim(
            primary,
            rand,
            attacked,
            expect="below",
            what="TuCo attacked - random tokens",
            paper="attacked prompts have lower TuCo (the paper compares with clean prompts only)",
            primary=True,
        )
        if rand
        else Claim(
            primary, None, "below", "TuCo attacked - random tokens", PAPER, primary=True, reason="no control suffixes (--no-controls)"
        ),
        paired_claim(
            "GCG suffixes lower TuCo more than ordinary words of the same length",
            control,
            attacked,
            expect="below",
            what="TuCo attacked - words",
            paper=None,
        ),
        paired_claim(
            "Attacked prompts have lower TuCo than clean ones (the paper's comparison)",
            clean,
            attacked,
            expect="below",
            what="TuCo attacked - clean",
            paper=PAPER,
        ),
        paired_claim("Random-token suffixes alone lower TuCo", clean, rand, expect="below", what="TuCo random - clean", paper=None),
        paired_claim("Ordinary-word suffixes alone lower TuCo", clean, control, expect="below", what="TuCo words - clean", paper=None),
        auc_claim(
            "Clean prompts have higher TuCo than attacked ones (AUC, clean = positive)",
            rows_of(rows, group="clean"),
            rows_of(rows, group="attacked"),
            paper=PAPER,
            paper_range=None,
        ),
    ]
    for j in sorted({int(r["suffix_index"]) for r in rows if r.get("group") == "attacked"}):
        ctrl = item_means(rows, condition=f"random-{j}")
        if ctrl:
            out.append(
                paired_claim(
                    f"suffix {j} lowers TuCo more than random tokens",
                    ctrl,
                    item_means(rows, condition=f"suffix-{j}"),
                    expect="below",
                    what="TuCo attacked - random tokens",
                    paper=None,
                )
            )
            success = {
                c: {str(r["item"]): float(not r["refused"]) for r in rows_of(rows, condition=c)} for c in (f"suffix-{j}", f"random-{j}")
            }
            out.append(
                paired_claim(
                    f"suffix {j} jailbreaks more often than random tokens",
                    success[f"random-{j}"],
                    success[f"suffix-{j}"],
                    expect="above",
                    what="success rate attacked - random tokens",
                    paper=None,
                )
            )
    return out


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import strips

    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    strips(
        {c: values(rows, condition=c) for c in conditions},
        "GCG: TuCo per condition (controls: random tokens, ordinary words; same length)",
        path / "gcg.png",
    )


EXPERIMENT = Experiment(
    name="gcg",
    question="Do GCG adversarial suffixes lower TuCo more than random tokens of the same length, and which attacks succeed?",
    paper=PAPER,
    options=GcgOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    claims=claims,
    sources=lambda o: (
        [("prompts", o.harmful)]
        + ([("prompts", o.train_requests)] if o.optimize else [])
        + ([("suffixes", o.suffixes)] if o.suffixes else [])
    ),
    judge=lambda o: o.judge,
)
