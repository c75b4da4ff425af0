"""The report's tables as data: the rows table (columns from the row schema) and the comparison's
prompt-by-prompt table share one ``Table`` (one template draws both), and a run's configuration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuco.report.text import clip, fmt, number
from tuco.runs.schema import TEXTS, columns

MAX_TABLE_ROWS = 3000  # more rows stay in the run file; the page says so
VISIBLE_ROWS = 12  # rows shown before "show all"
TEXT_CHARS = 240  # prompt/response text in a table


@dataclass(frozen=True)
class Cell:
    """A cell's text, for numbers the value it sorts by, and whether it holds a long text (prompt, response)."""

    text: str
    sort: float | None = None
    long: bool = False


@dataclass(frozen=True)
class Table:
    """A sortable, filterable table: ``rows`` holds at most MAX_TABLE_ROWS of ``total``."""

    columns: list[str]
    rows: list[list[Cell]]
    total: int
    visible: int = VISIBLE_ROWS

    @property
    def cut(self) -> bool:
        """True when the page holds fewer rows than the run."""
        return self.total > len(self.rows)


def cell(value: object, *, text: bool = False) -> Cell:
    """A row value as a cell (``text``: a prompt or response, cut with an ellipsis)."""
    if text:
        return Cell(clip(value, TEXT_CHARS), long=True)
    return Cell(fmt(value), number(value))


def rows_table(rows: Sequence[dict[str, Any]], group: str | None) -> Table:
    """A run's rows under the schema's columns (``tuco.runs.schema.columns``: empty ones hidden)."""
    cols = columns(rows, group)
    body = [[cell(r.get(c), text=c in TEXTS) for c in cols] for r in rows[:MAX_TABLE_ROWS]]
    return Table(cols, body, len(rows))


def signed(value: float) -> Cell:
    """A difference as a cell (+0.1000)."""
    return Cell(f"{value:+.4f}", value)


@dataclass(frozen=True)
class Config:
    """One rows file's manifest as key-value tables (configuration, options, status, versions)."""

    name: str
    tables: list[list[tuple[str, str]]]


STATUS = ("status", "n_rows", "n_prompts", "n_skipped", "schema", "created", "seconds")


def config(name: str, manifest: dict[str, Any]) -> Config | None:
    """A manifest's tables (None without a manifest)."""
    if not manifest:
        return None
    cfg = dict(manifest.get("config") or {})
    options = cfg.pop("options", None)
    parts = [cfg, options if isinstance(options, dict) else {}, {k: manifest[k] for k in STATUS if k in manifest}]
    parts.append(manifest.get("versions") or {})
    return Config(name, [[(str(k), fmt(v)) for k, v in p.items()] for p in parts if p])
