"""What every experiment shares: its options as a dataclass, a run directory, the sweep helpers.

A run directory holds ``rows.jsonl`` (one row per prompt x condition, written as computed),
``rows.manifest.json`` (experiment, options, pair, seed, versions), ``metrics.json`` and PNG plots:
the layout ``tuco report`` reads.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from tuco.errors import ConfigError
from tuco.pair import ModelPair
from tuco.runs import RowWriter, atomic_write_text, write_manifest


class RunDir:
    """Rows appended (and flushed) as they are computed, then metrics and the manifest at the end."""

    def __init__(self, path: str | Path, experiment: str, options: Any, pair: ModelPair) -> None:
        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"run directory {str(path)!r} is a file: give a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.rows_path = self.path / "rows.jsonl"
        if (self.path / "rows.manifest.json").exists():  # a previous run here: its metrics and plots would be stale
            for stale in [self.path / "metrics.json", *self.path.glob("*.png")]:
                stale.unlink(missing_ok=True)
        self.config = {"experiment": experiment, "options": asdict(options), "base": pair.base_name,
                       "tuned": pair.tuned_name, "seed": getattr(options, "seed", None)}
        self._writer = RowWriter(self.rows_path)
        self.rows: list[dict[str, Any]] = []
        write_manifest(self.rows_path, self.config, status="running")

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Append rows (flushed at once: an interrupted run keeps them)."""
        self.rows += rows
        self._writer.write(rows)

    def abort(self, reason: str) -> None:
        """Close the rows (every finished row stays) and mark the manifest with why the run stopped."""
        self._writer.close()
        write_manifest(self.rows_path, self.config, status=reason, n_rows=len(self.rows))

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Write metrics.json and mark the manifest finished."""
        self._writer.close()
        atomic_write_text(self.path / "metrics.json", json.dumps(metrics, indent=1, default=str) + "\n")
        write_manifest(self.rows_path, self.config, status="finished", n_rows=len(self.rows))
        return metrics


def floats(text: str, what: str) -> list[float]:
    """'0.75,1,1.25' -> [0.75, 1.0, 1.25] (a ConfigError naming ``what`` otherwise)."""
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(f"{what} {text!r}: give comma-separated numbers, e.g. 0.75,1,1.25") from err
    if not values:
        raise ConfigError(f"{what} is empty")
    return values


def ints(text: str, what: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4], each >= 0."""
    values = floats(text, what)
    if any(v != int(v) or v < 0 for v in values):
        raise ConfigError(f"{what} {text!r}: give whole numbers >= 0")
    return [int(v) for v in values]


def names(text: str) -> list[str]:
    """'a, b' -> ['a', 'b']."""
    return [v.strip() for v in str(text).split(",") if v.strip()]


def shuffled(items: list, seed: int) -> list:
    """A seeded shuffled copy."""
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


def option_fields(options_cls: type) -> list[Any]:
    """The dataclass fields of an experiment's options (for the CLI)."""
    return list(fields(options_cls))
