"""output-vs-tuco: can the output stay put while fine-tuning's internal contribution changes?
(docs/method.md 5.5)

k plain-text "Q: Could you tell me if ...? A: No" examples before a new question; TuCo (Algorithm 1)
next to OutputCo (each model on its own trajectory, final residual streams compared) and the
next-token KL(FT || PT). Paper: as k grows OutputCo falls while TuCo rises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuco.attacks.many_shot import no_examples
from tuco.data.builtin import NO_QUESTIONS
from tuco.data.sources import load_prompts, spread
from tuco.errors import ConfigError
from tuco.experiments.base import Experiment, ExperimentRun, Finding, Options, diff_finding, diff_summary, mean_of, opt, paired, values
from tuco.prompts import Prompt

PAPER = "OutputCo falls while TuCo rises as k grows"


@dataclass
class OutputVsTucoOptions(Options):
    questions: str = opt("builtin", "'builtin' or a .txt/.jsonl file of questions (completing 'Could you tell me if ...?')")
    ks: list[int] = opt([0, 1, 2, 4, 8, 16], "numbers of examples", min=0)
    targets: int = opt(12, "target questions (the rest are examples; >= 10 for a verdict)", min=1)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "recorded in the manifest (the experiment is deterministic)")


def run(model: Any, o: OutputVsTucoOptions, rd: ExperimentRun) -> None:
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
    m: dict[str, Any] = {"per_k": per_k, "ks_beyond_the_pool": sorted(set(o.ks) - set(ks))}
    if len(ks) >= 2:
        pairs = paired(rows, {"k": ks[0]}, {"k": ks[-1]})
        m["k_first"], m["k_last"] = ks[0], ks[-1]
        for key, name in (("tuco", "tuco_change"), ("output_co", "output_co_change"), ("kl_ft_pt", "kl_change")):
            m[name] = diff_summary([a[key] for a, _ in pairs], [b[key] for _, b in pairs], paired=True, seed=o.seed)
    return m


def findings(m: dict[str, Any]) -> list[Finding]:
    if "tuco_change" not in m:
        return [Finding("TuCo rises with k", PAPER, "fewer than two k measured", "not measured", None, f"{len(m['per_k'])} k")]
    span = f"k={m['k_first']} -> k={m['k_last']}"
    return [
        diff_finding("TuCo rises as 'A: No' examples accumulate", PAPER, m["tuco_change"], expect="above", what=f"TuCo change {span}"),
        diff_finding("OutputCo falls as they accumulate", PAPER, m["output_co_change"], expect="below", what=f"OutputCo change {span}"),
    ]


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import series_with_ci
    from tuco.stats import bootstrap_mean

    ks = sorted(int(k) for k in m["per_k"])

    def band(key: str) -> tuple[list[float], list[float], list[float]]:
        got = [bootstrap_mean(values(rows, key, k=k), n_boot=500) for k in ks]
        return [g[0] for g in got], [g[1] for g in got], [g[2] for g in got]

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
    findings=findings,
    sources=lambda o: [] if o.questions == "builtin" else [("prompts", o.questions)],
)
