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
    from tuco.runs.parallel import Ranks

BUILTIN: dict[str, str] = {
    "web-vs-chat": "tuco.experiments.web_vs_chat",
    "gcg": "tuco.experiments.gcg",
    "conjugate": "tuco.experiments.conjugate",
    "many-shot": "tuco.experiments.many_shot",
    "many-shot-persona": "tuco.experiments.many_shot_persona",
    "jailbreak-success": "tuco.experiments.jailbreak_success",
    "alpha-sweep": "tuco.experiments.alpha_sweep",
    "output-vs-tuco": "tuco.experiments.output_vs_tuco",
}
ENTRY_POINTS = "tuco.experiments"  # a package's own analyses: [project.entry-points."tuco.experiments"] NAME = "module:OBJECT"


class Registry:
    """The analyses by name, open to outsiders: the built-in modules (imported when first used), analyses
    registered in Python (``register``) and, from installed packages, the entry points of the group
    ``tuco.experiments`` (``NAME = "package.module:EXPERIMENT"``)."""

    def __init__(self, builtin: dict[str, str]) -> None:
        self._paths: dict[str, str] = dict(builtin)
        self._loaded: dict[str, Experiment] = {}
        self._entry_points_read = False

    def register(self, experiment: Experiment) -> Experiment:
        """Add an analysis (its ``name`` must be new); returns it, so a module can write
        ``EXPERIMENT = register(Experiment(...))``."""
        if not isinstance(experiment, Experiment):
            raise ConfigError(f"register() takes a tuco.experiments.base.Experiment, got {type(experiment).__name__}")
        self._read_entry_points()
        if experiment.name in self._paths or experiment.name in self._loaded:
            known = self._loaded.get(experiment.name)
            if known is experiment:
                return experiment
            raise ConfigError(f"an experiment named {experiment.name!r} exists already; give yours another name")
        self._loaded[experiment.name] = experiment
        return experiment

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINTS):
            if ep.name not in self._paths:
                self._paths[ep.name] = ep.value

    @property
    def names(self) -> tuple[str, ...]:
        """Every analysis's name, built-in ones first."""
        self._read_entry_points()
        return tuple(dict.fromkeys([*self._paths, *self._loaded]))

    def get(self, name: str) -> Experiment:
        """The analysis called ``name`` (imports its module the first time)."""
        self._read_entry_points()
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._paths:
            raise ConfigError(f"unknown experiment {name!r}: choose from {', '.join(self.names)}")
        module, _, attr = self._paths[name].partition(":")
        found = getattr(importlib.import_module(module), attr or "EXPERIMENT")
        if not isinstance(found, Experiment):
            raise ConfigError(f"{self._paths[name]} is not a tuco Experiment (a {type(found).__name__})")
        self._loaded[name] = found
        return found


REGISTRY = Registry(BUILTIN)
NAMES = tuple(BUILTIN)  # the built-in analyses (REGISTRY.names adds registered ones)


def register(experiment: Experiment) -> Experiment:
    """Add an analysis to the registry (``tuco experiment NAME`` and ``run_experiment`` then find it)."""
    return REGISTRY.register(experiment)


def get(name: str) -> Experiment:
    """The experiment called ``name`` (imports its module)."""
    return REGISTRY.get(name)


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
    ranks: Ranks | None = None,
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


def run_suite(
    plan: list[tuple[str, dict[str, Any]]],
    model: Decomposable,
    out_dir: str | Path,
    *,
    on_measurement: Callable[[str, int], None] | None = None,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Run several analyses on one pair into ``out_dir/<name>/`` and judge them together: every primary
    claim of the suite in ONE Holm family (the suite's family-wise error is 5%), each run's metrics.json
    rewritten with the suite's verdicts, and ``out_dir/suite.json`` with one line per analysis (its primary
    claims: estimate, interval, verdict). ``kwargs``: ``run_experiment``'s (resume, overwrite, ranks,
    progress, seed)."""
    import json

    from tuco.runs import atomic_write_text
    from tuco.stats.claims import rejudge_suite

    out = Path(out_dir)
    results: dict[str, dict[str, Any]] = {}
    for k, (name, options) in enumerate(plan, start=1):

        def told(tag: str, total: int, name: str = f"analysis {k}/{len(plan)} {name}") -> None:
            if on_measurement is not None:  # each measurement's bar (with its ETA) says which analysis of how many
                on_measurement(f"{name} {tag}".strip(), total)

        results[name] = run_experiment(name, model, out / name, on_measurement=told, **kwargs, **options)
    if not any(results.values()):  # not the main rank
        return results
    judged = rejudge_suite({name: m.get("findings", []) for name, m in results.items()})
    for name, findings in judged.items():
        results[name]["findings"] = findings
        atomic_write_text(out / name / "metrics.json", json.dumps(results[name], indent=1, default=str) + "\n")
    summary = {
        "analyses": [name for name, _ in plan],
        "holm_family": next((f["holm_family"] for fs in judged.values() for f in fs if f.get("holm_family")), 0),
        "primary": [
            {"experiment": name, **{k: f.get(k) for k in ("claim", "measured", "estimate", "low", "high", "n_text", "verdict", "p_holm")}}
            for name, fs in judged.items()
            for f in fs
            if f.get("primary")
        ],
        "exploratory": sum(1 for fs in judged.values() for f in fs if not f.get("primary")),
    }
    atomic_write_text(out / "suite.json", json.dumps(summary, indent=1, default=str) + "\n")
    return results
