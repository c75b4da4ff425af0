"""What the verbs print: spinners and progress bars on stderr, tables whose ids and numbers are never cut,
findings one line per primary claim (the full tables one flag away), JSON summaries for scripts. Imports
nothing heavy at module level."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from tuco.measures.prompts import BadRow

err_console = Console(stderr=True, soft_wrap=True, highlight=False)
SHOWN_BAD = 10  # skipped rows printed one per line; the rest are counted (a run's manifest lists the first 50)


@contextmanager
def spinner(text: str, quiet: bool = False) -> Iterator[None]:
    """A status line on stderr while something runs (nothing when ``quiet``)."""
    if quiet:
        yield
        return
    with err_console.status(text):
        yield


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr; yields the ``progress(done, total)`` callback the jobs call."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err_console, disable=not enabled)
    task: Any = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:  # shown from the first report on: a run refused while opening prints its error alone
            bar.start()
            task = bar.add_task(label, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        bar.stop()


@contextmanager
def measurement_progress(label: str, enabled: bool = True) -> Iterator[tuple[Callable[[int, int], None], Callable[[str, int], None]]]:
    """A progress bar with an ETA per measurement of an experiment, on stderr; yields the ``progress`` and
    ``on_measurement`` callbacks ``tuco.runs.jobs.Job`` calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err_console, disable=not enabled
    )
    task: Any = None

    def start(tag: str, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
        elif task is not None:
            bar.update(task, visible=False)
        task = bar.add_task(f"{label}: {tag}" if tag else label, total=max(1, total))

    def update(done: int, total: int) -> None:
        if task is not None:
            bar.update(task, completed=done, total=max(1, total))

    try:
        yield update, start
    finally:
        bar.stop()


def report_bad(bad: list[BadRow]) -> None:
    """Print the first ``SHOWN_BAD`` skipped rows on stderr, then how many more there are."""
    for row in bad[:SHOWN_BAD]:
        where = f"line {row.line}: " if row.line > 0 else ""
        err_console.print(f"[yellow]skipped[/yellow] {where}{row.reason}", markup=True)
    if len(bad) > SHOWN_BAD:
        err_console.print(f"[yellow]skipped {len(bad) - SHOWN_BAD} more rows[/yellow] (a run's manifest lists the first 50)", markup=True)


def quiet(args: argparse.Namespace) -> bool:
    """True when the verb should print no spinner, progress or tables (--quiet, or --json)."""
    return bool(getattr(args, "quiet", False) or getattr(args, "json", False))


def rows_table(
    rows: list[dict[str, Any]], numbers: list[tuple[str, str, str]], text: tuple[str, str], *, fold: bool = False, width: int | None = None
) -> Any:
    """A rich table of rows: ``id``, then ``numbers`` ((key, header, format) of each number column), then one
    text column. Ids and numbers are never cut: each column is as wide as its widest cell, and the text
    takes what is left of ``width`` (default: the error console's), cut with an ellipsis (``fold``: wrapped)."""
    from rich.table import Table

    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        v = row.get(key)
        return "" if v is None else (format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v))

    body = [[str(r.get("id", "")), *(cell(r, k, f) for k, _, f in numbers)] for r in rows]
    heads = ["id", *(h for _, h, _ in numbers)]
    widths = [max([len(head), *(len(b[i]) for b in body)]) for i, head in enumerate(heads)]
    left = max(8, (width or err_console.width) - sum(widths) - 3 * len(widths) - 2)  # " │ " between columns, edges
    t = Table(show_edge=False, show_lines=fold)
    for i, head in enumerate(heads):
        t.add_column(head, justify="left" if i == 0 else "right", no_wrap=True, width=widths[i])
    t.add_column(text[1], width=left, no_wrap=not fold, overflow="fold" if fold else "ellipsis")
    for r, b in zip(rows, body):
        value = str(r.get(text[0]) or "")
        if not fold:
            value = value.replace("\n", " ")
            value = value if len(value) <= left else value[: left - 1] + "…"
        t.add_row(*b, value)
    return t


def json_summary(measured: list[dict[str, Any]], /, **fields: Any) -> dict[str, Any]:
    """What ``--json`` prints: ``fields`` (out, counts) and, per alpha, the count and the mean, median, min
    and max of each TuCo the rows hold (``tuco``; ``tuco_response``/``mean_tuco`` where present)."""
    import statistics

    by_alpha: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys(str(r.get("alpha", 1)) for r in measured):
        mine = [r for r in measured if str(r.get("alpha", 1)) == label]
        entry: dict[str, Any] = {"n": len(mine)}
        for key in ("tuco", "tuco_response", "mean_tuco"):
            values = [float(r[key]) for r in mine if isinstance(r.get(key), (int, float))]
            if values:
                entry[key] = {"mean": statistics.fmean(values), "median": statistics.median(values), "min": min(values), "max": max(values)}
        by_alpha[label] = entry
    return {**fields, "alphas": by_alpha}


def print_json(data: dict[str, Any]) -> None:
    """A JSON document on stdout (one line)."""
    import json
    import sys

    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
