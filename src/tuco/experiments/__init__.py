"""The paper's analyses (METHOD.md section 5), one module each, run on any pair into a run directory.

    from tuco.experiments import run_experiment
    metrics = run_experiment("web-vs-chat", pair, "runs/wvc", n=100)
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

from tuco.errors import ConfigError
from tuco.experiments import alpha_sweep, conjugate, gcg, jailbreak_success, many_shot, output_vs_tuco, web_vs_chat
from tuco.experiments.base import RunDir
from tuco.pair import ModelPair

EXPERIMENTS: dict[str, ModuleType] = {
    m.NAME: m for m in (web_vs_chat, gcg, conjugate, many_shot, jailbreak_success, alpha_sweep, output_vs_tuco)
}


def get(name: str) -> ModuleType:
    """The experiment module called ``name``."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def run_experiment(name: str, pair: ModelPair, out_dir: str | Path, **options: Any) -> dict[str, Any]:
    """Run experiment ``name`` on ``pair``; rows, manifest, metrics.json and PNGs go to ``out_dir``.

    ``options`` are the fields of the experiment's ``Options`` (see ``tuco experiment NAME --help``).
    """
    exp = get(name)
    known = {f.name for f in fields(exp.Options)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"experiment {name!r} has no option {unknown[0]!r}; options: {', '.join(sorted(known))}")
    opts = exp.Options(**options)
    for f in fields(opts):
        if f.type in ("int", int) and isinstance(getattr(opts, f.name), int) and f.name not in ("seed", "optimize", "limit", "shots") \
                and getattr(opts, f.name) < 1:
            raise ConfigError(f"--{f.name.replace('_', '-')} must be >= 1, got {getattr(opts, f.name)}")
    rd = RunDir(out_dir, name, opts, pair)
    try:
        metrics = exp.run(pair, opts, rd)
    except KeyboardInterrupt:
        rd.abort("interrupted")
        raise
    except Exception as err:
        rd.abort(f"failed: {err}")
        raise
    return rd.finish({"experiment": name, "question": exp.QUESTION, **metrics})
