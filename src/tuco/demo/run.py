"""`tuco demo`: the paper's analyses on a shipped pair, as presets of the experiments.

Each preset is a list of (experiment, options) tuned to run in minutes on 2 CPU cores; every
experiment writes its own run directory under the demo's (``OUT/web-vs-chat/``, ...), and the demo's
report puts their findings first. Nothing here measures anything itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (experiment, options): the shipped 5.8M demo pair (about a minute) ...
DEMO = [
    ("web-vs-chat", dict(web="builtin:web", chat="builtin:chat", n=40, web_tokens=0, without_template=True, batch_size=32)),
    (
        "many-shot",
        dict(
            mode="jailbreak",
            requests="builtin:harmful",
            shots="compliant",
            ks=[0, 1, 2, 4, 8, 16],
            targets=16,
            max_new_tokens=24,
            batch_size=16,
        ),
    ),
    (
        "alpha-sweep",
        dict(
            behaviours=[],
            tasks=[],
            harmful="builtin:harmful",
            benign="builtin:chat",
            n=40,
            max_new_tokens=24,
            alphas=[0.0, 0.5, 0.75, 1.0, 1.25, 1.5],
            batch_size=32,
        ),
    ),
]
# ... and the realistic pair (Gemma-3-270M + tuco's safety LoRA; a few minutes)
GEMMA = [
    # windows shorter than the paragraphs: like the paper's substrings of long web documents, they rarely end
    # where a text ends (the end of a whole paragraph carries a large fine-tuning share: docs/findings-gemma.md)
    ("web-vs-chat", dict(web="builtin:web-prose", chat="builtin:everyday", n=40, web_tokens=48, without_template=True, batch_size=16)),
    (
        "many-shot",
        dict(
            mode="jailbreak",
            requests="builtin:harmful-broad",
            shots="compliant",
            ks=[0, 2, 8, 16],
            targets=16,
            max_new_tokens=24,
            batch_size=8,
        ),
    ),
    (
        "alpha-sweep",
        dict(
            behaviours=[],
            tasks=[],
            harmful="builtin:harmful-broad",
            benign="builtin:benign-broad",
            n=32,
            max_new_tokens=24,
            alphas=[0.0, 0.5, 1.0, 1.25],
            batch_size=16,
        ),
    ),
]
PRESETS = {"demo": DEMO, "gemma": GEMMA}


def quick(preset: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The same analyses on a handful of prompts (seconds; for tests)."""
    out = []
    for name, o in preset:
        small = dict(o)
        for key, value in (("n", 4), ("targets", 3), ("max_new_tokens", 6)):
            if key in small:
                small[key] = value
        if "ks" in small:
            small["ks"] = [0, 2]
        out.append((name, small))
    return out


def run_demo(
    model: Any,
    out_dir: str | Path,
    preset: str = "demo",
    *,
    is_quick: bool = False,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Run a preset's experiments on ``model`` into ``out_dir/<experiment>/``; returns their metrics
    (``kwargs``: ``run_experiment``'s ranks, progress and on_measurement)."""
    from tuco.errors import ConfigError
    from tuco.experiments import run_experiment

    if preset not in PRESETS:
        raise ConfigError(f"unknown demo preset {preset!r}: choose from {', '.join(PRESETS)}")
    plan = quick(PRESETS[preset]) if is_quick else PRESETS[preset]
    out = Path(out_dir)
    results = {}
    on_measurement = kwargs.pop("on_measurement", None)
    for name, options in plan:

        def told(tag: str, total: int, name: str = name) -> None:
            if on_measurement is not None:
                on_measurement(f"{name} {tag}".strip(), total)

        results[name] = run_experiment(
            name, model, out / name, resume=resume, overwrite=overwrite, seed=seed, on_measurement=told, **kwargs, **options
        )
    return results
