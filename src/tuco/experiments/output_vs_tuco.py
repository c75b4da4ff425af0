"""output-vs-tuco: can the output stay put while fine-tuning's internal contribution changes?
(METHOD.md 5.5)

k plain-text "Q: Could you tell me if ...? A: No" examples before a new question; TuCo (Algorithm 1)
next to OutputCo (each model on its own trajectory, final residual streams compared). Paper: as k
grows OutputCo falls while TuCo rises.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from tuco.attacks.many_shot import no_examples
from tuco.data.builtin import NO_QUESTIONS
from tuco.data.sources import load_prompts, spread
from tuco.errors import ConfigError
from tuco.experiments.base import RunDir, ints
from tuco.experiments.plotting import figure, save
from tuco.outputco import output_contribution
from tuco.pair import ModelPair
from tuco.scoring import score

NAME = "output-vs-tuco"
QUESTION = "As 'Q: ... A: No' examples accumulate, how do TuCo and the output-only OutputCo move?"


@dataclass
class Options:
    questions: str = field(default="builtin", metadata={"help": "'builtin' or a .txt/.jsonl file of questions "
                                                                 "(completing 'Could you tell me if ...?')"})
    ks: str = field(default="0,1,2,4,8,16", metadata={"help": "numbers of examples"})
    targets: int = field(default=8, metadata={"help": "target questions (the rest are examples)"})
    batch_size: int = field(default=8, metadata={"help": "prompts per forward pass"})
    seed: int = field(default=0, metadata={"help": "recorded in the manifest (the experiment is deterministic)"})


def run(pair: ModelPair, o: Options, rd: RunDir) -> dict[str, Any]:
    qs = list(NO_QUESTIONS) if o.questions == "builtin" else [q for q in load_prompts(o.questions) if isinstance(q, str)]
    if len(qs) < 2:
        raise ConfigError(f"{o.questions}: needs at least 2 questions")
    targets = spread(qs, min(o.targets, len(qs) // 2))
    pool = [q for q in qs if q not in targets]
    per_k: dict[str, dict[str, float]] = {}
    for k in ints(o.ks, "ks"):
        prompts = [no_examples(pool, k, t) for t in targets]
        tu = score(pair, prompts, chat=False, batch_size=o.batch_size)
        oc = output_contribution(pair, prompts, chat=False, batch_size=o.batch_size)
        rows = [{"group": f"k={k}", "id": f"k{k}-{i}", "k": min(k, len(pool)), "prompt": p, "tuco": s.tuco, "output_co": c}
                for i, (p, s, c) in enumerate(zip(prompts, tu, oc))]
        rd.add(rows)
        per_k[str(k)] = {"mean_tuco": statistics.fmean(r["tuco"] for r in rows),
                         "mean_output_co": statistics.fmean(r["output_co"] for r in rows), "n": len(rows)}
    ks = sorted(int(k) for k in per_k)
    fig, ax = figure()
    ax.plot(ks, [per_k[str(k)]["mean_tuco"] for k in ks], "o-", color="#d62728", label="TuCo")
    ax.plot(ks, [per_k[str(k)]["mean_output_co"] for k in ks], "s--", color="#1f77b4", label="OutputCo")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("'Q: ... A: No' examples k")
    ax.set_ylabel("contribution")
    ax.set_title("TuCo vs output-only comparison")
    ax.legend()
    save(fig, rd.path / "output_vs_tuco.png")
    first, last = per_k[str(ks[0])], per_k[str(ks[-1])]
    return {"per_k": per_k, "tuco_change": last["mean_tuco"] - first["mean_tuco"],
            "output_co_change": last["mean_output_co"] - first["mean_output_co"],
            "paper": "OutputCo falls while TuCo rises as k grows"}
