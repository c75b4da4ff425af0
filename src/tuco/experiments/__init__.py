"""The paper's analyses (docs/method.md section 5), one plugin module each, run on any pair into a run
directory. The registry is lazy: naming the experiments imports nothing; ``get`` imports one module
(torch-free at import; torch loads when a measurement runs).

    from tuco.experiments import run_experiment
    metrics = run_experiment("web-vs-chat", pair, "runs/wvc", n=100)
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from tuco.errors import ConfigError
from tuco.experiments.base import Experiment

MODULES: dict[str, str] = {
    "web-vs-chat": "tuco.experiments.web_vs_chat",
    "gcg": "tuco.experiments.gcg",
    "conjugate": "tuco.experiments.conjugate",
    "many-shot": "tuco.experiments.many_shot",
    "jailbreak-success": "tuco.experiments.jailbreak_success",
    "alpha-sweep": "tuco.experiments.alpha_sweep",
    "output-vs-tuco": "tuco.experiments.output_vs_tuco",
}
NAMES = tuple(MODULES)


def get(name: str) -> Experiment:
    """The experiment called ``name`` (imports its module)."""
    if name not in MODULES:
        raise ConfigError(f"unknown experiment {name!r}: choose from {', '.join(MODULES)}")
    return importlib.import_module(MODULES[name]).EXPERIMENT  # type: ignore[no-any-return]


def validate(name: str, **options: Any) -> list[str]:
    """Check an experiment's options, data sources and judge before any model loads; returns what was
    checked (one line each). Raises a TucoError naming the first problem."""
    from tuco.data.sources import check_source
    from tuco.judges import check_judge

    exp = get(name)
    opts = exp.make_options(**options)
    done = [f"options of {name}: valid"]
    for kind, spec in exp.sources(opts):
        done.append(check_source(kind, spec))
    judge = exp.judge(opts)
    if judge:
        done.append(check_judge(judge))
    return done


def run_experiment(
    name: str, model: Any, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False, **options: Any
) -> dict[str, Any]:
    """Run experiment ``name`` on ``model``; rows, manifest, metrics.json and PNGs go to ``out_dir``.

    ``options`` are the fields of the experiment's options (see ``tuco experiment NAME --help``);
    ``resume`` continues an interrupted run with the same options (rows already written are kept and
    their work skipped); ``overwrite`` replaces an existing run.
    """
    from tuco.experiments.base import RunDir

    exp = get(name)
    opts = exp.make_options(**options)
    rd = RunDir(out_dir, exp, opts, model, resume=resume, overwrite=overwrite)
    try:
        exp.run(model, opts, rd)
        return rd.finish()
    except KeyboardInterrupt:
        rd.stop("interrupted")
        raise
    except Exception as err:
        rd.stop(f"failed: {type(err).__name__}: {str(err)[:300]}")
        raise
