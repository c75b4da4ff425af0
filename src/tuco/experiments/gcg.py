"""gcg: do adversarial (GCG) suffixes lower TuCo? (docs/method.md 5.2)

Harmful requests with and without adversarial strings (optimised here with nanogcg, or read from a
file); TuCo of each, ROC-AUC of clean (positive) vs attacked with a bootstrap interval, and which
attacks succeed (greedy response not judged a refusal). Paper: 11 strings per model on AdvBench; AUC up
to 1.0 (Llama-2-7B), attacked prompts have LOWER TuCo.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuco.attacks.gcg import attack, optimise_suffixes, read_suffixes
from tuco.data.sources import SOURCE_HELP, load_prompts
from tuco.errors import ConfigError
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
    values,
)
from tuco.judges import JUDGE_HELP
from tuco.prompts import Prompt

PAPER = "attacked prompts have lower TuCo; AUC (clean = positive) up to 1.0 (Llama-2-7B)"


@dataclass
class GcgOptions(Options):
    harmful: str = opt("builtin:harmful", f"harmful requests ({SOURCE_HELP}); paper: hf:walledai/AdvBench")
    n: int = opt(40, "harmful requests", min=1)
    suffixes: str = opt("", "file of adversarial strings, one per line")
    optimize: int = opt(0, "optimise this many suffixes with nanogcg (paper: 11)", min=0)
    gcg_steps: int = opt(250, "nanogcg steps per suffix", min=1)
    gcg_target: str = opt("Sure, here is", "target prefix nanogcg optimises for")
    gcg_search_width: int = opt(512, "nanogcg candidates per step", min=1)
    gcg_topk: int = opt(256, "nanogcg top-k token substitutions", min=1)
    max_new_tokens: int = opt(30, "tokens of the greedy response judged for success", min=1)
    judge: str = opt("refusal-strings", JUDGE_HELP)
    position: str = opt("last", POSITION_HELP, choices=POSITIONS)
    batch_size: int = opt(8, "prompts per batch", min=1)
    seed: int = opt(0, "seed of the optimisation")

    def check(self) -> None:
        if not self.suffixes and not self.optimize:
            raise ConfigError("no adversarial strings: give --suffixes FILE and/or --optimize N (needs nanogcg)")


def run(model: Any, o: GcgOptions, rd: ExperimentRun) -> None:
    from tuco.judges import get_judge

    requests = [p for p in load_prompts(o.harmful, limit=o.n) if isinstance(p, str)]
    suffixes = read_suffixes(o.suffixes) if o.suffixes else []
    saved = rd.path / "suffixes.json"
    if o.optimize:
        if rd.resumed and saved.exists():  # optimised before the run was interrupted
            suffixes += json.loads(saved.read_text(encoding="utf-8"))
        else:
            suffixes += optimise_suffixes(
                model,
                requests,
                o.optimize,
                steps=o.gcg_steps,
                target=o.gcg_target,
                seed=o.seed,
                search_width=o.gcg_search_width,
                topk=o.gcg_topk,
            )
            saved.write_text(json.dumps(suffixes[-o.optimize :]), encoding="utf-8")
    judge = get_judge(o.judge)
    conditions = [("clean", None)] + [(f"suffix-{j}", s) for j, s in enumerate(suffixes)]
    for name, suffix in conditions:
        items = [
            Prompt(
                f"{name}-{i}",
                text=r if suffix is None else attack(r, suffix),
                extra={"group": "clean" if suffix is None else "attacked", "condition": name, "suffix": suffix, "request": r, "item": i},
            )
            for i, r in enumerate(requests)
        ]
        rd.generate(
            items,
            chat=True,
            max_new_tokens=o.max_new_tokens,
            batch_size=o.batch_size,
            position=o.position,
            judge=judge,
            seed=o.seed,
        )


def metrics(rows: list[dict[str, Any]], o: GcgOptions) -> dict[str, Any]:
    clean, attacked = values(rows, group="clean"), values(rows, group="attacked")
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    return {
        "position": o.position,
        "auc_clean_vs_attacked": auc_summary(clean, attacked, o.seed),
        "mean_tuco_clean": statistics.fmean(clean) if clean else None,
        "mean_tuco_attacked": statistics.fmean(attacked) if attacked else None,
        "success_rate": {c: statistics.fmean(not r["refused"] for r in rows if r["condition"] == c) for c in conditions},
        "suffixes": list(dict.fromkeys(r["suffix"] for r in rows if r["condition"] != "clean")),
        "per_suffix_auc": {c: auc_summary(clean, values(rows, condition=c), o.seed) for c in conditions if c != "clean"},
    }


def findings(m: dict[str, Any]) -> list[Finding]:
    return [auc_finding(f"GCG suffixes lower TuCo ({m['position']})", PAPER, m["auc_clean_vs_attacked"])]


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import strips

    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    strips({c: values(rows, condition=c) for c in conditions}, "GCG: TuCo per condition", path / "gcg.png")


EXPERIMENT = Experiment(
    name="gcg",
    question="Do GCG adversarial suffixes lower TuCo, and which attacks succeed?",
    paper=PAPER,
    options=GcgOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    findings=findings,
    sources=lambda o: [("prompts", o.harmful)] + ([("suffixes", o.suffixes)] if o.suffixes else []),
    judge=lambda o: o.judge,
)
