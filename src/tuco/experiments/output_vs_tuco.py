"""output-vs-tuco: can the output stay put while fine-tuning's internal contribution changes?
(docs/method.md 5.5)

k plain-text "Q: Could you tell me if ...? A: No" examples before a new question; TuCo (Algorithm 1)
next to OutputCo (each model on its own trajectory, final residual streams compared) and the
next-token KL(FT || PT). Paper: as k grows OutputCo falls while TuCo rises.
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
    what = "slope per doubling of 1 + k"
    return [
        mean_claim(
            "TuCo rises as 'A: No' examples accumulate",
            item_slopes(rows, "tuco"),
            expect="above",
            what=f"TuCo {what}",
            paper=PAPER,
            primary=True,
        ),
        mean_claim(
            "OutputCo falls as they accumulate",
            item_slopes(rows, "output_co"),
            expect="below",
            what=f"OutputCo {what}",
            paper=PAPER,
            primary=True,
        ),
        mean_claim("KL(FT || PT) falls as they accumulate", item_slopes(rows, "kl_ft_pt"), expect="below", what=f"KL {what}", paper=None),
    ]


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
