"""tuco: measure and steer the contribution of fine-tuning to each response of an LLM (TuCo).

Public API (imported lazily, so ``import tuco`` does not import torch):

    pair = tuco.load_pair("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B-Instruct")
    tuco.score(pair, ["How do I bake bread?"])          # -> [Score(tuco=..., preco=..., ...)]
    tuco.generate(pair, ["Hi"], alpha=1.1)               # -> [Generation(text=..., token_tuco=[...])]
    with tuco.steer(pair, alpha=0.9): pair.tuned.generate(...)
    tuco.score_to(pair, prompts, "runs/x", resume=True)  # rows on disk, resumable, data-parallel
    tuco.load_run("runs/x").to_pandas()                 # a run's rows back in Python (torch-free)
    chain = tuco.load_chain(["base", "sft", "dpo"])      # one share per training stage
    tuco.TucoCallback({"harmful": [...]}, every=50).attach(trainer)   # TuCo while you train
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_pair": "tuco.models.pair",
    "ModelPair": "tuco.models.pair",
    "score": "tuco.measures.scoring",
    "Score": "tuco.measures.scoring",
    "generate": "tuco.measures.generation",
    "Generation": "tuco.measures.generation",
    "steer": "tuco.models.steering",
    "RowAlphas": "tuco.engine.alpha",
    "load_chain": "tuco.models.chain",
    "ModelChain": "tuco.models.chain",
    "score_to": "tuco.runs.jobs",
    "generate_to": "tuco.runs.jobs",
    "load_run": "tuco.runs",
    "RunResults": "tuco.runs",
    "Prompt": "tuco.measures.prompts",
    "read_prompts": "tuco.measures.prompts",
    "TucoError": "tuco.errors",
    "TucoCallback": "tuco.training",
    "Watch": "tuco.training",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    import importlib
    import importlib.util

    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if not name.startswith("_") and importlib.util.find_spec(f"tuco.{name}") is not None:
        return importlib.import_module(f"tuco.{name}")  # subpackages too: tuco.demo, tuco.experiments, ...
    raise AttributeError(f"module 'tuco' has no attribute {name!r}")
