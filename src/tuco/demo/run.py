"""`tuco demo`: the paper's analyses on a shipped pair, as presets of the experiments.

Each preset is a list of (experiment, options) tuned to run in minutes on 2 CPU cores; every
experiment writes its own run directory under the demo's (``OUT/web-vs-chat/``, ...), and the demo's
report puts their findings first. Nothing here measures anything itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

# (experiment, options): the paper's seven analyses, each with its control, sized for 2 CPU cores (gcg,
# the slowest, last). The shipped 5.8M demo pair (a few minutes) ...
DEMO = [
    (
        "web-vs-chat",
        dict(
            web="builtin:web-docs", chat="builtin:chat", n=40, web_tokens=97, window_sweep=[48, 192], without_template=True, batch_size=32
        ),
    ),
    (  # the translations are of the broad test split; the encodings of the demo's own requests
        "conjugate",
        dict(translations="builtin:translations-broad", harmful="builtin:harmful", benign="builtin:benign", n=40, batch_size=32),
    ),
    (
        "many-shot",
        dict(requests="builtin:harmful", ks=[0, 1, 2, 4, 8, 16], targets=16, max_new_tokens=24, batch_size=16),
    ),
    (
        "jailbreak-success",
        dict(harmful="builtin:harmful", benign="builtin:benign", n=40, samples=8, max_new_tokens=24, batch_size=8),
    ),
    (
        "alpha-sweep",
        dict(  # the primary: the default behaviours and tasks (the paper's claim); alpha 0 a labelled control
            harmful="builtin:harmful",
            benign="builtin:chat",
            n=40,
            max_new_tokens=24,
            alphas=[0.0, 0.75, 0.9, 1.0, 1.1, 1.25],
            limit=0,
            batch_size=32,
        ),
    ),
    ("output-vs-tuco", dict()),
    (
        "gcg",
        dict(
            harmful="builtin:harmful",
            train_requests="builtin:harmful-train",
            n=40,
            optimize=10,  # a sample of suffixes (docs/method.md 9.3): 10 x 15 steps cost what 5 x 30 did
            gcg_steps=15,
            gcg_search_width=128,
            gcg_topk=64,
            max_new_tokens=24,
            batch_size=16,
        ),
    ),
]
# ... and the realistic pair (Gemma-3-270M + tuco's safety LoRA; about an hour). Its prompts are the TEST
# split (builtin:harmful-broad, benign-broad, everyday): the recipe was chosen on the validation split,
# and GCG suffixes are optimised on training requests.
GEMMA = [
    (
        "web-vs-chat",
        dict(
            web="builtin:web-docs",
            chat="builtin:everyday",
            n=40,
            web_tokens=97,
            window_sweep=[48, 192],
            without_template=True,
            batch_size=16,
        ),
    ),
    (  # 80 requests per set in each of 7 languages (all 80 benign, 80 of 120 harmful), 40 per set in each of 6
        # encodings: about 8 minutes on 2 cores (estimated from the token counts and the encodings' 174 s)
        "conjugate",
        dict(
            translations="builtin:translations-broad",
            harmful="builtin:harmful-broad",
            benign="builtin:benign-broad",
            n=80,
            n_encoded=40,
            batch_size=16,
        ),
    ),
    (
        "many-shot",
        dict(requests="builtin:harmful-broad", ks=[0, 1, 2, 4, 8, 16], targets=16, max_new_tokens=24, batch_size=8),
    ),
    (
        "jailbreak-success",
        dict(harmful="builtin:harmful-broad", benign="builtin:benign-broad", n=32, samples=6, max_new_tokens=24, batch_size=4),
    ),
    (
        "alpha-sweep",
        dict(  # the primary: the default behaviours and tasks (the paper's claim); alpha 0 a labelled control
            harmful="builtin:harmful-broad",
            benign="builtin:benign-broad",
            n=32,
            max_new_tokens=24,
            alphas=[0.0, 0.75, 1.0, 1.25],  # four alphas: each costs 64 generated responses on CPU
            limit=0,
            batch_size=16,
        ),
    ),
    ("output-vs-tuco", dict()),
    (
        "gcg",
        dict(
            harmful="builtin:harmful-broad",
            train_requests="builtin:harmful-broad-train",
            n=32,
            # a sample of suffixes; the word control (exploratory) left out to pay for the second 5. 10 steps of 32
            # candidates, a third of 15 x 64 (set before any Gemma run of these designs finished): 5 suffixes at 15 x 64
            # took 66 min of 2 cores, and five adapters are the unit; the optimisation-success finding says how it went
            optimize=10,
            gcg_steps=10,
            gcg_search_width=32,
            gcg_topk=64,
            word_controls=False,
            max_new_tokens=24,
            batch_size=8,
        ),
    ),
]
PRESETS = {"demo": DEMO, "gemma": GEMMA}


def quick(preset: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The same analyses on a handful of prompts (seconds; for tests). gcg optimises ``MIN_SUFFIXES``
    suffixes with 1 step of 8 candidates each: few steps (its optimisation-success finding says how well that went), but
    enough suffixes that the primary claim is testable."""
    from tuco.experiments.gcg import MIN_SUFFIXES

    out = []
    for name, o in preset:
        small = dict(o)
        quick_values: tuple[tuple[str, Any], ...] = (
            ("n", 4),
            ("limit", 5),  # alpha-sweep: 5 items per behaviour / task (one per fold)
            ("n_encoded", 4),
            ("targets", 3),
            ("max_new_tokens", 6),
            ("optimize", MIN_SUFFIXES),  # the fewest suffixes a verdict needs: the analysis runs as it does in full
            ("word_controls", False),
            ("gcg_steps", 1),
            ("gcg_search_width", 8),
            ("gcg_topk", 16),
            ("samples", 2),
            ("window_sweep", []),
        )
        for key, value in quick_values:
            if key in small:
                small[key] = value
        if "ks" in small:
            small["ks"] = [0, 2]
        out.append((name, small))
    return out


def run_demo(
    model: Decomposable,
    out_dir: str | Path,
    preset: str = "demo",
    *,
    is_quick: bool = False,
    seed: int = 0,
    suffixes: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    skip: Sequence[str] = (),
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Run a preset's analyses on ``model`` as one suite into ``out_dir/<experiment>/`` (every primary claim
    judged in one Holm family; ``out_dir/suite.json``); returns their metrics. ``suffixes``: a file of
    adversarial strings gcg evaluates instead of optimising its own against ``model`` (e.g. another adapter's
    ``gcg/suffixes.json``: a transfer attack, labelled as such); ``skip``: analyses of the preset left out
    (e.g. gcg on many null adapters, for CPU time: say so where the results are reported); ``kwargs``:
    ``run_experiment``'s ranks, progress and on_measurement."""
    from tuco.errors import ConfigError
    from tuco.experiments import run_suite

    if preset not in PRESETS:
        raise ConfigError(f"unknown demo preset {preset!r}: choose from {', '.join(PRESETS)}")
    plan = quick(PRESETS[preset]) if is_quick else PRESETS[preset]
    unknown = sorted(set(skip) - {name for name, _ in plan})
    if unknown:
        raise ConfigError(f"skip {', '.join(unknown)}: not an analysis of the {preset} preset ({', '.join(n for n, _ in plan)})")
    plan = [(name, o) for name, o in plan if name not in skip]
    if suffixes is not None:  # gcg evaluates these strings instead of optimising its own
        plan = [(name, dict(o, suffixes=str(suffixes), optimize=0) if name == "gcg" else o) for name, o in plan]
    plan = [(name, dict(o, seed=seed)) for name, o in plan]
    return run_suite(plan, model, out_dir, resume=resume, overwrite=overwrite, **kwargs)
