"""Several runs side by side, as data: the headline TuCo per prompt aligned by id (by id and alpha when a
run holds several alphas), each run's mean and its paired difference to the first run with a bootstrap
interval, a scatter per run, and the prompt-by-prompt table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from tuco.report import charts
from tuco.report.groups import alpha_of
from tuco.report.load import Source
from tuco.report.tables import MAX_TABLE_ROWS, Cell, Table, cell, signed
from tuco.runs.schema import headline
from tuco.stats.summary import bootstrap_mean_diff


@dataclass(frozen=True)
class Line:
    """One run in the comparison: its rows, mean over the shared prompts, difference to run 1."""

    name: str
    n_rows: int
    mean: float | None
    diff: tuple[float, float, float] | None  # (difference, low, high), paired over the shared prompts


@dataclass(frozen=True)
class Comparison:
    """Runs aligned prompt by prompt."""

    lines: list[Line]
    n_shared: int
    scatters: list[tuple[str, charts.Scatter]]
    table: Table | None


def keyed(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A run's rows with a headline TuCo by prompt id; by id and alpha when the run holds several alphas
    (a generate run with --alpha 0 1), so two runs at different alphas still align prompt by prompt."""
    several = len({alpha_of(r) for r in rows}) > 1
    return {str(r.get("id")) + (f" @ alpha {alpha_of(r)}" if several else ""): r for r in rows if headline(r) is not None}


def comparison(sources: list[Source]) -> Comparison:
    """The comparison of ``sources`` (the first is the reference)."""
    names = [f"{k + 1}: {s.path.name}" for k, s in enumerate(sources)]
    tables = [keyed(s.rows) for s in sources]
    shared = [k for k in tables[0] if all(k in t for t in tables[1:])]
    if not shared:
        return Comparison([Line(n, len(t), None, None) for n, t in zip(names, tables)], 0, [], None)
    values = [[headline(t[k]) or 0.0 for k in shared] for t in tables]
    lines, scatters = [], []
    for j, (name, t, vals) in enumerate(zip(names, tables, values)):
        diff = bootstrap_mean_diff(values[0], vals, paired=True) if j else None
        lines.append(Line(name, len(t), statistics.fmean(vals), diff))
        if j:
            scatters.append((f"{name} vs {names[0]}", charts.scatter(list(zip(values[0], vals)), names[0], name)))
    columns = ["id", *names, *(f"{n} − 1" for n in names[1:]), "prompt"]
    body = []
    for i, key in enumerate(shared[:MAX_TABLE_ROWS]):
        row = [Cell(key), *(cell(v[i]) for v in values), *(signed(v[i] - values[0][i]) for v in values[1:])]
        body.append([*row, cell(tables[0][key].get("prompt"), text=True)])
    return Comparison(lines, len(shared), scatters, Table(columns, body, len(shared)))
