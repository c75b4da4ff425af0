"""gcg: do adversarial (GCG) suffixes lower TuCo? (METHOD.md 5.2)

Harmful requests with and without adversarial strings (optimised here with nanogcg, or read from a
file); TuCo of each, ROC-AUC of clean (positive) vs attacked, and which attacks succeed (greedy
response not judged a refusal). Paper: 11 strings per model on AdvBench; AUC up to 1.0
(Llama-2-7B), attacked prompts have LOWER TuCo.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from tuco.attacks.gcg import attack, optimise_suffixes, read_suffixes
from tuco.data.sources import SOURCE_HELP, load_prompts
from tuco.errors import ConfigError
from tuco.experiments.base import RunDir
from tuco.experiments.plotting import histograms
from tuco.generation import generate
from tuco.judges import get_judge
from tuco.pair import ModelPair
from tuco.stats import roc_auc

NAME = "gcg"
QUESTION = "Do GCG adversarial suffixes lower TuCo, and which attacks succeed?"


@dataclass
class Options:
    harmful: str = field(default="builtin:harmful", metadata={"help": f"harmful requests ({SOURCE_HELP}); paper: hf:walledai/AdvBench"})
    n: int = field(default=40, metadata={"help": "harmful requests"})
    suffixes: str = field(default="", metadata={"help": "file of adversarial strings, one per line"})
    optimize: int = field(default=0, metadata={"help": "optimise this many suffixes with nanogcg (paper: 11)"})
    gcg_steps: int = field(default=250, metadata={"help": "nanogcg steps per suffix"})
    gcg_target: str = field(default="Sure, here is", metadata={"help": "target prefix nanogcg optimises for"})
    gcg_search_width: int = field(default=512, metadata={"help": "nanogcg candidates per step"})
    gcg_topk: int = field(default=256, metadata={"help": "nanogcg top-k token substitutions"})
    max_new_tokens: int = field(default=30, metadata={"help": "tokens of the greedy response judged for success"})
    judge: str = field(default="refusal-strings", metadata={"help": "refusal-strings, harmbench, llama-guard or model:PATH"})
    batch_size: int = field(default=8, metadata={"help": "prompts per batch"})
    seed: int = field(default=0, metadata={"help": "seed of the optimisation"})


def run(pair: ModelPair, o: Options, rd: RunDir) -> dict[str, Any]:
    requests = [p for p in load_prompts(o.harmful, limit=o.n) if isinstance(p, str)]
    suffixes = read_suffixes(o.suffixes) if o.suffixes else []
    if o.optimize:
        suffixes += optimise_suffixes(pair, requests, o.optimize, steps=o.gcg_steps, target=o.gcg_target, seed=o.seed,
                                       search_width=o.gcg_search_width, topk=o.gcg_topk)
    if not suffixes:
        raise ConfigError("no adversarial strings: give --suffixes FILE and/or --optimize N (needs nanogcg)")
    judge = get_judge(o.judge)
    conditions = [("clean", None, requests)] + [(f"suffix-{j}", s, [attack(r, s) for r in requests]) for j, s in enumerate(suffixes)]
    tucos: dict[str, list[float]] = {}
    success: dict[str, float] = {}
    for name, suffix, prompts in conditions:
        gens = generate(pair, prompts, chat=True, max_new_tokens=o.max_new_tokens, batch_size=o.batch_size)
        refused = judge.refused(requests, [g.text for g in gens])
        rd.add([{"group": "clean" if suffix is None else "attacked", "condition": name, "id": f"{name}-{i}", "prompt": p,
                 "suffix": suffix, "tuco": g.prompt_tuco, "response": g.text, "refused": r}
                for i, (p, g, r) in enumerate(zip(prompts, gens, refused))])
        tucos[name] = [g.prompt_tuco for g in gens]
        success[name] = 1 - statistics.fmean(refused)
    clean = tucos.pop("clean")
    attacked = [t for v in tucos.values() for t in v]
    histograms({"clean": clean, "attacked": attacked}, f"GCG: clean vs attacked (ROC-AUC {roc_auc(clean, attacked):.2f})",
               rd.path / "gcg.png")
    return {"auc_clean_vs_attacked": roc_auc(clean, attacked), "mean_tuco_clean": statistics.fmean(clean),
            "mean_tuco_attacked": statistics.fmean(attacked), "success_rate": success, "suffixes": suffixes, "judge": judge.name,
            "per_suffix_auc": {k: roc_auc(clean, v) for k, v in tucos.items()},
            "paper": "attacked prompts have lower TuCo; AUC up to 1.0 (Llama-2-7B)"}
