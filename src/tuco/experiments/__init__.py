"""The paper's analyses (docs/method.md section 5), one plugin module each, run on any pair into a run
directory. The registry is lazy: naming the experiments imports nothing; ``get`` imports one module
(torch-free at import; torch loads when a measurement runs).

    from tuco.experiments import run_experiment
    metrics = run_experiment("web-vs-chat", pair, "runs/wvc", n=100)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.errors import ConfigError
from tuco.experiments.base import Experiment

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

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
    from tuco.data.judges import check_judge
    from tuco.data.sources import check_source

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
    name: str,
    model: Decomposable,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    ranks: Any = None,
    progress: Callable[[int, int], None] | None = None,
    on_measurement: Callable[[str, int], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run experiment ``name`` on ``model``; rows, manifest, metrics.json and PNGs go to ``out_dir``.

    ``options`` are the fields of the experiment's options (see ``tuco experiment NAME --help``);
    ``resume`` continues an interrupted run with the same options (rows already written are kept and
    their work skipped); ``overwrite`` replaces an existing run. Under torchrun (or ``--processes N``)
    every rank calls this with the same arguments: each measures its share of every measurement's
    batches, and rank 0 merges, computes the metrics and returns them (the other ranks return {}).
    """
    import json
    from dataclasses import asdict

    from tuco.data import sources
    from tuco.experiments.base import ExperimentRun
    from tuco.runs import atomic_write_text, check_output, mode_of, open_run
    from tuco.runs.jobs import Job, model_config

    exp = get(name)
    opts = exp.make_options(**options)
    mode = mode_of(resume, overwrite)
    path = check_output(out_dir, file_ok=False)
    data = {spec: digest for _, spec in exp.sources(opts) if (digest := sources.source_digest(spec)) is not None}
    config = {"experiment": exp.name, "options": asdict(opts), **model_config(model), "seed": getattr(opts, "seed", None), "data": data}
    metrics: dict[str, Any] = {}

    def finalize(rows: list[dict[str, Any]]) -> dict[str, Any]:
        from tuco.stats.claims import judge

        found = {"experiment": exp.name, "question": exp.question, "paper": exp.paper, **exp.metrics(rows, opts)}
        found["findings"] = [asdict(f) for f in judge(exp.claims(rows, opts, found))]
        atomic_write_text(path / "metrics.json", json.dumps(found, indent=1, default=str) + "\n")
        exp.plots(rows, found, path)
        metrics.update(found)
        return {"n_prompts": len(rows), "data_revisions": dict(sources.REVISIONS)}

    info = {"question": exp.question}
    with open_run(path, config, mode=mode, ranks=ranks, info=info, device=str(model.device), finalize=finalize) as run:
        if run.is_main and mode == "overwrite":  # a previous run's metrics and plots would be stale
            for stale in [path / "metrics.json", *path.glob("*.png")]:
                stale.unlink(missing_ok=True)
        sources.REVISIONS.clear()
        job = Job(model, run, progress=progress, on_measurement=on_measurement)
        exp.run(model, opts, ExperimentRun(path, opts, model, job))
    return metrics
