"""Read what a run left on disk: result rows, manifests, metrics and plots. No torch, no model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuco.errors import TucoError
from tuco.runs import manifest_path, read_rows

RESULT_SUFFIXES = (".jsonl", ".parquet")


@dataclass
class RunFile:
    """One results file of a run with its manifest (empty when there is none)."""

    path: Path
    rows: list[dict[str, Any]]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Run:
    """Everything a report shows: result files, a metrics JSON, and PNG plots of an experiment."""

    source: Path
    files: list[RunFile]
    metrics: dict[str, Any] = field(default_factory=dict)
    plots: list[tuple[str, bytes]] = field(default_factory=list)


def _is_result(p: Path) -> bool:
    name = p.name
    return p.suffix in RESULT_SUFFIXES and ".part-" not in name and not name.endswith(".partial.jsonl")


def _load_file(p: Path) -> RunFile:
    try:
        rows = read_rows(p)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise TucoError(f"cannot read results file {str(p)!r}: {err}") from err
    mp = manifest_path(p)
    manifest = json.loads(mp.read_text(encoding="utf-8")) if mp.exists() else {}
    return RunFile(path=p, rows=rows, manifest=manifest)


def _has_results(f: RunFile) -> bool:
    """A manifest or TuCo fields: a prompt file lying in the run directory is not a result."""
    return bool(f.manifest) or any(k in r for r in f.rows[:50] for k in ("tuco", "prompt_tuco", "mean_tuco"))


def load_run(source: str | Path) -> Run:
    """A run from a results file (``scores.jsonl``) or a run directory (every results file in it,
    ``metrics.json`` and ``*.png``)."""
    p = Path(source).expanduser()
    if not p.exists():
        raise TucoError(f"run {str(source)!r} does not exist: give a run directory or a .jsonl/.parquet results file")
    if p.is_file():
        if not _is_result(p):
            raise TucoError(f"{str(source)!r} is not a results file (.jsonl or .parquet)")
        return Run(source=p, files=[_load_file(p)])
    files = [f for f in (_load_file(f) for f in sorted(p.iterdir()) if f.is_file() and _is_result(f)) if _has_results(f)]
    metrics_file = p / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
    plots = [(f.name, f.read_bytes()) for f in sorted(p.glob("*.png"))]
    if not files and not metrics and not plots:
        raise TucoError(f"run directory {str(source)!r} holds no results (.jsonl/.parquet), metrics.json or plots")
    return Run(source=p, files=files, metrics=metrics, plots=plots)
