"""output-vs-tuco: can the output stay put while fine-tuning's internal contribution changes?
(docs/method.md 5.5)

k plain-text "Q: Could you tell me if ...? A: No" examples before a new question; TuCo (Algorithm 1)
next to OutputCo (each model on its own trajectory, final residual streams compared) and the
next-token KL(FT || PT). Paper: as k grows OutputCo falls while TuCo rises.

The paper's claim is a conjunction, so it is ONE primary claim, an intersection-union test (p: the larger
of the two halves' p-values; the interval shown: the TuCo slope's): it holds only when both halves do, and
neither half alone can print a verdict of the primary kind. The halves (each the mean of per-question
slopes over log2(1 + k)) and the KL are exploratory rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.attacks.many_shot import no_examples
from tuco.data.builtin import NO_QUESTIONS
from tuco.data.sources import load_prompts, spread
from tuco.errors import ConfigError
from tuco.experiments.base import Experiment, ExperimentRun, Options, item_slopes, mean_claim, mean_of, opt, values
from tuco.measures.prompts import Prompt
from tuco.stats.claims import Claim

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

PAPER = "OutputCo falls while TuCo rises as k grows"


@dataclass
class OutputVsTucoOptions(Options):
    questions: str = opt("builtin", "'builtin' or a .txt/.jsonl file of questions (completing 'Could you tell me if ...?')")
    ks: list[int] = opt([0, 1, 2, 4, 8, 16], "numbers of examples", min=0)
    targets: int = opt(12, "target questions (the rest are examples; >= 10 for a verdict)", min=1)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "recorded in the manifest (the experiment is deterministic)")


def run(model: Decomposable, o: OutputVsTucoOptions, rd: ExperimentRun) -> None:
    qs = list(NO_QUESTIONS) if o.questions == "builtin" else [q for q in load_prompts(o.questions) if isinstance(q, str)]
    if len(qs) < 2:
        raise ConfigError(f"{o.questions}: needs at least 2 questions")
    targets = spread(qs, min(o.targets, len(qs) // 2))
    pool = [q for q in qs if q not in targets]
    for k in dict.fromkeys(min(k, len(pool)) for k in o.ks):  # a k beyond the pool uses all of it, once
        prompts = [
            Prompt(f"k{k}-{i}", text=no_examples(pool, k, t), extra={"condition": f"k={k}", "k": k, "item": i})
            for i, t in enumerate(targets)
        ]
        rd.score(prompts, chat=False, batch_size=o.batch_size, baselines=True)


def metrics(rows: list[dict[str, Any]], o: OutputVsTucoOptions) -> dict[str, Any]:
    ks = sorted({int(r["k"]) for r in rows})
    per_k = {
        str(k): {
            "mean_tuco": mean_of(values(rows, k=k)),
            "mean_output_co": mean_of(values(rows, "output_co", k=k)),
            "mean_kl": mean_of(values(rows, "kl_ft_pt", k=k)),
            "n": len(values(rows, k=k)),
        }
        for k in ks
    }
    return {"per_k": per_k, "ks_measured": ks, "ks_beyond_the_pool": sorted(set(o.ks) - set(ks))}


def claims(rows: list[dict[str, Any]], o: OutputVsTucoOptions, m: dict[str, Any]) -> list[Claim]:
    """ONE primary: the paper's conjunction "OutputCo falls while TuCo rises" as an intersection-union test
    (``conjunction``); each half, and the KL, exploratory."""
    what = "slope per doubling of 1 + k"
    tuco = mean_claim(
        "TuCo rises as 'A: No' examples accumulate (the primary's TuCo half)",
        item_slopes(rows, "tuco"),
        expect="above",
        what=f"TuCo {what}",
        paper=PAPER,
    )
    output = mean_claim(
        "OutputCo falls as they accumulate (the primary's OutputCo half)",
        item_slopes(rows, "output_co"),
        expect="below",
        what=f"OutputCo {what}",
        paper=PAPER,
    )
    kl = mean_claim("KL(FT || PT) falls as they accumulate", item_slopes(rows, "kl_ft_pt"), expect="below", what=f"KL {what}", paper=None)
    return [conjunction(tuco, output), tuco, output, kl]


def conjunction(tuco: Claim, output: Claim) -> Claim:
    """ "OutputCo falls while TuCo rises" as one claim: an intersection-union test (``stats.recompute.
    intersection``) whose p is the larger of the halves' p-values (a half on the wrong side of 0 counts as
    1), a valid level-5% test of BOTH with no correction: it is significant only when each half is. Each
    half's p is its two-sided p, taken on the paper's side, so a significant conjunction always has a TuCo
    interval that excludes 0. The interval shown is the TuCo slope's (the claim's estimate is about TuCo);
    OutputCo's is in ``extra`` and in its own exploratory row."""
    from tuco.stats.recompute import intersection

    claim = "OutputCo falls while TuCo rises as 'A: No' examples accumulate (both required)"
    what = "TuCo slope per doubling of 1 + k (interval: TuCo's; p: the larger of TuCo's and OutputCo's)"
    if tuco.interval is None or tuco.inputs is None or output.interval is None or output.inputs is None:
        reason = "; ".join(f"{c.what}: {c.reason}" for c in (tuco, output) if c.interval is None) or "not measured"
        return Claim(claim, None, "above", what, PAPER, primary=True, reason=reason)
    iv, inputs = intersection([(tuco.interval, tuco.inputs), (output.interval, output.inputs)], ("above", "below"))
    o = output.interval
    extra = {
        "p_tuco": tuco.interval.p,
        "p_output_co": o.p,
        "output_co": f"OutputCo slope {o.estimate:+.4f} [{o.low:+.4f}, {o.high:+.4f}]",
    }
    return Claim(claim, iv, "above", what, PAPER, primary=True, extra=extra, inputs=inputs)


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import series_with_ci
    from tuco.stats.intervals import mean_ci

    ks = sorted(int(k) for k in m["per_k"])

    def band(key: str) -> tuple[list[float], list[float], list[float]]:
        got = [mean_ci(values(rows, key, k=k)) for k in ks]
        return [g.estimate for g in got], [g.low for g in got], [g.high for g in got]

    series_with_ci(
        ks,
        {"TuCo": band("tuco"), "OutputCo": band("output_co")},
        "TuCo vs output-only comparison (95% intervals)",
        path / "output_vs_tuco.png",
        xlabel="'Q: ... A: No' examples k",
        ylabel="contribution",
        log_x=True,
    )


EXPERIMENT = Experiment(
    name="output-vs-tuco",
    question="As 'Q: ... A: No' examples accumulate, how do TuCo and the output-only OutputCo move?",
    paper=PAPER,
    options=OutputVsTucoOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    claims=claims,
    sources=lambda o: [] if o.questions == "builtin" else [("prompts", o.questions)],
)
