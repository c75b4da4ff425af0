"""Read what a run left on disk: result rows, manifests, metrics and plots. No torch, no model.

Three shapes: a results file (``scores.jsonl`` + its manifest), a run directory (rows, manifest,
``metrics.json``, PNGs), and a suite: a directory of run directories (``tuco demo``'s output).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuco.errors import InputError, RunError
from tuco.runs import SUFFIXES, manifest_path, read_rows


@dataclass
class RunFile:
    """One results file of a run with its manifest (empty when there is none)."""

    path: Path
    rows: list[dict[str, Any]]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file name."""
        return self.path.name


@dataclass
class Run:
    """Everything a report shows: result files, a metrics JSON, PNG plots, and (a suite) its runs."""

    source: Path
    files: list[RunFile]
    metrics: dict[str, Any] = field(default_factory=dict)
    plots: list[tuple[str, bytes]] = field(default_factory=list)
    children: list[Run] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The run's name: the experiment's, else the file or directory name."""
        return str(self.metrics.get("experiment") or self.source.name)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row of every file."""
        return [r for f in self.files for r in f.rows]


def _is_result(p: Path) -> bool:
    name = p.name
    return p.suffix in SUFFIXES and ".part-" not in name and not name.endswith(".partial.jsonl")


def _load_file(p: Path) -> RunFile:
    try:
        rows = read_rows(p)
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read results file {str(p)!r}: {err}") from err
    except RunError:
        raise
    except Exception as err:  # noqa: BLE001 - pyarrow raises its own errors on a broken Parquet file
        raise InputError(f"cannot read results file {str(p)!r}: {type(err).__name__}: {err}") from err
    mp = manifest_path(p)
    manifest = _json(mp) if mp.exists() else {}
    return RunFile(path=p, rows=rows, manifest=manifest)


def _json(p: Path) -> dict[str, Any]:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {str(p)!r}: {err}") from err
    return data if isinstance(data, dict) else {}


def _has_results(f: RunFile) -> bool:
    """A manifest or TuCo fields: a prompt file lying in the run directory is not a result."""
    return bool(f.manifest) or any(k in r for r in f.rows[:50] for k in ("tuco", "prompt_tuco", "mean_tuco"))


def _load_dir(p: Path) -> Run:
    files = [f for f in (_load_file(f) for f in sorted(p.iterdir()) if f.is_file() and _is_result(f)) if _has_results(f)]
    metrics_file = p / "metrics.json"
    metrics = _json(metrics_file) if metrics_file.exists() else {}
    plots = [(f.name, f.read_bytes()) for f in sorted(p.glob("*.png"))]
    return Run(source=p, files=files, metrics=metrics, plots=plots)


def _started(run: Run) -> float:
    """When a run began (its manifest's ``started_at``): a suite is shown in the order it was run."""
    try:
        return float(run.files[0].manifest.get("started_at") or 0.0) if run.files else 0.0
    except (TypeError, ValueError):
        return 0.0


def load_run(source: str | Path) -> Run:
    """A run from a results file, a run directory, or a directory of run directories (a suite)."""
    p = Path(source).expanduser()
    if not p.exists():
        raise InputError(f"run {str(source)!r} does not exist: give a run directory or a .jsonl/.parquet results file")
    if p.is_file():
        if not _is_result(p):
            raise InputError(f"{str(source)!r} is not a results file (.jsonl or .parquet)")
        return Run(source=p, files=[_load_file(p)])
    run = _load_dir(p)
    if not run.files and not run.metrics:
        children = [_load_dir(d) for d in sorted(p.iterdir()) if d.is_dir() and manifest_path(d).exists()]
        children = sorted((c for c in children if c.files or c.metrics), key=_started)
        if children:
            return Run(source=p, files=[], children=children)
    if not run.files and not run.metrics and not run.plots:
        raise InputError(f"run directory {str(source)!r} holds no results (.jsonl/.parquet), metrics.json, plots or runs")
    return run
