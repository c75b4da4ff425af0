"""TuCo while the shipped pairs train: the probe sets ``tuco demo-train --probe-every N`` measures (harmful
requests ending with a refusal both recipes train on, so the run has a response TuCo; benign requests;
web prose scored raw), from each recipe's held-out prompts, and the callback the recipes drive by hand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tuco.training.callback import TucoCallback

REFUSAL = "Sorry, I can't assist with that."  # in the refusals of both recipes' safety data
SOURCES = {  # held out from each recipe's training data (test splits)
    "demo": {"harmful": "builtin:harmful", "benign": "builtin:benign", "web": "builtin:web-prose"},
    "gemma": {"harmful": "builtin:harmful-broad", "benign": "builtin:benign-broad", "web": "builtin:web-prose"},
}
RUN_DIR = "tuco"  # the run's directory inside the recipe's output


@dataclass(frozen=True)
class Probing:
    """Measure TuCo while a recipe trains: every ``every`` optimizer steps (and at the start and the end), on
    ``n`` probes split evenly over the groups (harmful, benign, web)."""

    every: int
    n: int = 48

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError(f"--probe-every {self.every}: give N >= 1 optimizer steps (or leave the flag out: no probes)")
        if self.n < len(SOURCES["demo"]):
            raise ConfigError(f"--probes {self.n}: give at least {len(SOURCES['demo'])} (one per group: harmful, benign, web)")


def recipe_probes(recipe: str, n: int) -> dict[str, list[Any]]:
    """``n`` held-out probes of a recipe split evenly over its groups (the first groups get one more)."""
    from tuco.data.sources import load_prompts

    sources = SOURCES[recipe]
    sizes = [n // len(sources) + (k < n % len(sources)) for k in range(len(sources))]
    groups: dict[str, list[Any]] = {}
    for (name, spec), size in zip(sources.items(), sizes):
        prompts = load_prompts(spec, limit=size)
        if name == "harmful":
            prompts = [[{"role": "user", "content": str(p)}, {"role": "assistant", "content": REFUSAL}] for p in prompts]
        groups[name] = list(prompts)
    return groups


def recipe_callback(recipe: str, out: str | Path, probing: Probing, tokenizer: PreTrainedTokenizerBase) -> TucoCallback:
    """The TucoCallback a recipe drives from its own loop (run in ``out/tuco``, replaced when the recipe re-runs)."""
    from tuco.training import TucoCallback

    return TucoCallback(
        recipe_probes(recipe, probing.n),
        every=probing.every,
        out=Path(out) / RUN_DIR,
        tokenizer=tokenizer,
        chat={"web": False},
        overwrite=True,
    )


def record(probe: TucoCallback) -> dict[str, Any]:
    """What recipe.json notes of a recipe's probing: the run, its schedule, the time it took."""
    return {
        "run": RUN_DIR,
        "every": probe.every,
        "probes": len(probe.probes),
        "measurements": [m.step for m in probe.measurements],
        "measure_seconds": round(probe.seconds, 1),
    }
