"""Findings that can be re-derived: every interval a claim rests on is computed through ``compute(fn,
**inputs)``, which returns the interval AND the inputs (plain JSON: the per-item values, their groups), so a
finding in a run's metrics.json or a shipped snapshot carries what it was computed from and
``recompute(inputs)`` gives the same interval again (tests/test_snapshots.py does it for every finding
shipped). Torch-free.

An intersection-union test (a claim of the form "A and B", each with its own direction) is
``intersection(parts, sides)``: its interval is the first part's, its p-value the largest of the parts'
(a part on the wrong side of its null counts as p = 1), a valid level-5% test of "both" with no correction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tuco.stats import correlation, crossed, intervals, strata

FUNCTIONS: dict[str, Callable[..., intervals.Interval]] = {
    "mean_ci": intervals.mean_ci,
    "paired_diff_ci": intervals.paired_diff_ci,
    "paired_proportion_diff_ci": intervals.paired_proportion_diff_ci,
    "diff_ci": intervals.diff_ci,
    "proportion_ci": intervals.proportion_ci,
    "auc_ci": intervals.auc_ci,
    "stratified_auc_ci": lambda *a, **k: strata.stratified_auc_ci(*a, **k)[0],
    "clustered_auc_ci": strata.clustered_auc_ci,
    "crossed_mean_ci": crossed.crossed_mean_ci,
    "crossed_slope_ci": crossed.crossed_slope_ci,
    "crossed_difference_ci": crossed.crossed_difference_ci,
    "spearman_exact": correlation.spearman_exact,
}


def _plain(value: object) -> object:
    """JSON-ready: tuples and sets as lists, numpy scalars as Python numbers, mappings with string keys."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def compute(fn: str, **inputs: Any) -> tuple[intervals.Interval, dict[str, Any]]:
    """``FUNCTIONS[fn](**inputs)`` and the inputs that give it again (``recompute``)."""
    if fn not in FUNCTIONS:
        raise ValueError(f"unknown interval function {fn!r}: one of {', '.join(FUNCTIONS)}")
    record = {"fn": fn, **{k: _plain(v) for k, v in inputs.items()}}
    return recompute(record), record


def intersection(
    parts: Sequence[tuple[intervals.Interval, dict[str, Any]]], sides: Sequence[str]
) -> tuple[intervals.Interval, dict[str, Any]]:
    """The intersection-union test of the parts (each ``(interval, inputs)`` from ``compute``), each
    expected on its ``side`` ("above" or "below" its null): the first part's interval with the largest
    one-part p (a part whose estimate is on the wrong side counts as 1)."""
    record = {"fn": "intersection", "parts": [inputs for _, inputs in parts], "sides": list(sides)}
    return recompute(record), record


def _on_side(iv: intervals.Interval, side: str) -> bool:
    return iv.estimate > iv.null if side == "above" else iv.estimate < iv.null


def recompute(inputs: dict[str, Any]) -> intervals.Interval:
    """The interval a finding's ``inputs`` give."""
    args = dict(inputs)
    fn = args.pop("fn")
    if fn == "intersection":
        got = [recompute(p) for p in args["parts"]]
        p = max(iv.p if _on_side(iv, side) else 1.0 for iv, side in zip(got, args["sides"]))
        first = got[0]
        return replace(first, p=p, method=f"intersection-union test ({first.method}; p: the largest of {len(got)})")
    return FUNCTIONS[fn](**args)
