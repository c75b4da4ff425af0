"""A finished (or interrupted) run read back into Python: its rows, manifest and metrics. Torch-free.

    run = tuco.load_run("runs/qwen")                 # a run directory, or a .jsonl/.parquet rows file
    len(run), run.rows[0]["tuco"], run.manifest["config"], run.metrics.get("findings")
    df = run.to_pandas()                             # pandas optional

A file that holds neither a manifest beside it nor TuCo in its rows (a prompt file, say) is not a run and
is refused in one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuco.errors import InputError, RunError
from tuco.runs.manifest import read_manifest
from tuco.runs.schema import KINDS, headline
from tuco.runs.store import ROWS, SUFFIXES, existing_rows, is_results_file, manifest_path, rows_path

METRICS = "metrics.json"
_SNIFF = 50  # rows looked at to tell a rows file from another JSONL file


@dataclass
class RunResults:
    """The rows of one run with what made them: ``rows`` (dicts, as written), ``manifest`` (configuration,
    versions, status; {} when there is none) and ``metrics`` (an experiment's metrics.json, else {})."""

    path: Path
    rows: list[dict[str, Any]]
    manifest: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    @property
    def name(self) -> str:
        """The rows file's name (``rows.jsonl``, ``scores.jsonl`` ...)."""
        return self.path.name

    @property
    def schema(self) -> int:
        """The row schema version the manifest records (1 for runs written before it was recorded)."""
        return int(self.manifest.get("schema") or 1)

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame (one column per field; list fields stay lists)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise InputError("to_pandas() needs pandas: `pip install pandas` (run.rows is a list of dicts without it)") from err
        return pd.DataFrame(self.rows)


class NotARun(InputError):
    """A file or directory that exists but holds no run (no manifest, no TuCo in its rows)."""


def is_run_rows(rows: list[dict[str, Any]]) -> bool:
    """True when rows look like tuco's (a row kind or a headline TuCo among the first rows)."""
    return any(r.get("kind") in KINDS or headline(r) is not None for r in rows[:_SNIFF])


def read_metrics(folder: Path) -> dict[str, Any]:
    """An experiment run directory's ``metrics.json`` ({} when there is none)."""
    p = folder / METRICS
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {str(p)!r}: {err}") from err
    return data if isinstance(data, dict) else {}


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        return existing_rows(path)
    except RunError:
        raise
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read rows file {str(path)!r}: {err}") from err
    except Exception as err:  # noqa: BLE001 - pyarrow raises its own errors on a broken Parquet file
        raise InputError(f"cannot read rows file {str(path)!r}: {type(err).__name__}: {err}") from err


def load_run(path: str | Path) -> RunResults:
    """A run from a run directory (``DIR/rows.jsonl``, its manifest and ``metrics.json``) or a .jsonl /
    .parquet rows file (with its manifest beside it). An interrupted run gives the rows it kept."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"run {str(path)!r} does not exist: give a run directory or a .jsonl/.parquet rows file")
    if p.is_dir():
        if not rows_path(p).exists() and not manifest_path(p).exists():
            files = sorted(f.name for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
            runs = sorted(d.name for d in p.iterdir() if d.is_dir() and manifest_path(d).exists())
            hint = f"; load one of its rows files ({', '.join(files[:5])})" if files else ""
            hint += f"; it holds runs: load each ({', '.join(runs[:5])})" if runs else ""
            raise InputError(f"{str(path)!r} is not a run directory (no {ROWS}){hint}")
    elif not is_results_file(p):
        raise InputError(f"{str(path)!r} is not a rows file: give a run directory or a .jsonl/.parquet rows file")
    rows = _rows(p)
    manifest = read_manifest(p)
    if not manifest and not is_run_rows(rows):
        raise NotARun(
            f"{str(path)!r} is not a run: no manifest beside it and no TuCo in its rows (a prompt file?); "
            "give what tuco score/generate/experiment wrote"
        )
    folder = p if p.is_dir() else p.parent
    metrics = read_metrics(folder) if p.is_dir() or p.name == ROWS else {}
    return RunResults(path=rows_path(p), rows=rows, manifest=manifest, metrics=metrics)
