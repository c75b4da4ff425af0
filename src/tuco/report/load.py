"""What a report reads from disk: a rows file, a run directory (its rows files, ``metrics.json``, PNG
plots), a suite (a directory of run directories, ``tuco demo``'s output), or a synthesis directory (its
``synthesis.json``, written by ``tuco synthesize --out DIR`` or ``tuco demo --seeds``: the report shows it
first). Built on ``tuco.load_run``; no torch, no model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuco.errors import InputError
from tuco.runs import SUFFIXES, RunResults, load_run, manifest_path
from tuco.runs.results import NotARun, read_metrics

SYNTHESIS = "synthesis.json"
NOTES_KEY = "null_calibration"  # in a suite's suite.json: the caveats its report shows under the summary


@dataclass
class Source:
    """Everything one report argument holds: rows files (each a loaded run), an experiment's metrics and
    plots, (a suite) its runs, or (a synthesis directory) the synthesis over adapters."""

    path: Path
    files: list[RunResults]
    metrics: dict[str, Any] = field(default_factory=dict)
    plots: list[tuple[str, bytes]] = field(default_factory=list)
    children: list[Source] = field(default_factory=list)
    synthesis: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # a suite's caveats (its suite.json's null_calibration lines)

    @property
    def name(self) -> str:
        """The experiment's name, else the file or directory name."""
        return str(self.metrics.get("experiment") or self.path.name)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row of every file."""
        return [r for f in self.files for r in f.rows]

    @property
    def runs(self) -> list[Source]:
        """The runs shown: a suite's, else this one."""
        return self.children or [self]


def _is_rows_file(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in SUFFIXES and ".part-" not in p.name and not p.name.endswith(".partial.jsonl")


def _runs_in(files: list[Path]) -> list[RunResults]:
    out = []
    for f in files:
        try:
            out.append(load_run(f))
        except NotARun:  # a prompt file lying in the run directory is not a result
            continue
    return out


def _directory(p: Path) -> Source:
    files = _runs_in(sorted(f for f in p.iterdir() if _is_rows_file(f)))
    return Source(p, files, read_metrics(p), [(f.name, f.read_bytes()) for f in sorted(p.glob("*.png"))])


def _started(source: Source) -> float:
    """When a run began (its manifest's ``started_at``): a suite is shown in the order it was run."""
    try:
        return float(source.files[0].manifest.get("started_at") or 0.0) if source.files else 0.0
    except (TypeError, ValueError):
        return 0.0


def read_synthesis(folder: Path) -> dict[str, Any]:
    """A synthesis directory's ``synthesis.json`` ({} when there is none); a file that is not one is refused."""
    p = folder / SYNTHESIS
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {str(p)!r}: {err}; write it again with tuco synthesize RUN... --out DIR") from err
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise InputError(f"{str(p)!r} holds no synthesis (no 'claims' list); write it with tuco synthesize RUN... --out DIR")
    return data


def suite_notes(folder: Path) -> list[str]:
    """The caveats a suite's ``suite.json`` keeps for its report (``tuco demo``'s null-calibration lines);
    [] when it has none or cannot be read (the report does not depend on it)."""
    try:
        notes = json.loads((folder / "suite.json").read_text(encoding="utf-8")).get(NOTES_KEY)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return []
    return [str(n) for n in notes] if isinstance(notes, list) else []


def open_source(path: str | Path) -> Source:
    """A report's source from a rows file, a run directory, a directory of run directories, or a synthesis
    directory (``synthesis.json``; its runs, when it holds them, are shown below the synthesis)."""
    p = Path(path).expanduser()
    if p.is_file() or not p.exists():
        return Source(p, [load_run(p)])  # refuses a missing path, another suffix, a file that is not a run
    synthesis = read_synthesis(p)
    if synthesis:
        children = [_directory(d) for d in sorted(p.iterdir()) if d.is_dir() and manifest_path(d).exists()]
        return Source(p, [], children=sorted((c for c in children if c.files or c.metrics), key=_started), synthesis=synthesis)
    source = _directory(p)
    if not source.files and not source.metrics:
        children = [_directory(d) for d in sorted(p.iterdir()) if d.is_dir() and manifest_path(d).exists()]
        children = sorted((c for c in children if c.files or c.metrics), key=_started)
        if children:
            return Source(p, [], children=children, notes=suite_notes(p))
    if not source.files and not source.metrics and not source.plots:
        raise InputError(f"run directory {str(path)!r} holds no results (.jsonl/.parquet rows), metrics.json, plots or runs")
    return source
