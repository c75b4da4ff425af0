"""How a report splits and orders rows, and the statistics it shows per part: strata (one per condition,
split further by alpha or row kind only where those vary inside a condition), natural order, the spread
of the headline TuCo, what an overall row may pool, and rankings. Pure Python.

Rows at different alphas are never pooled or ranked together: alpha changes the model (at alpha 0 every
row's TuCo is 0 by definition), so "the least fine-tuning-driven prompt" across alphas is an alpha-0 row.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuco.runs.schema import headline, kind_of
from tuco.stats.summary import quantile

_NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"


def natural_key(text: object) -> tuple[tuple[int, Any], ...]:
    """Sort key that orders numbers inside text by value: k=2 before k=16, alpha=0.5 before alpha=1."""
    # a minus sign only where no word character precedes it: suffix-10 is suffix, 10 (not -10); alpha=-1 is -1
    parts = re.split(r"((?:(?<![\w.])-)?\d+(?:\.\d+)?(?:e-?\d+)?)", str(text))
    return tuple((0, float(p)) if re.fullmatch(_NUMBER, p) else (1, p) for p in parts if p != "")


def alpha_of(row: dict[str, Any]) -> str:
    """A row's alpha as text (``1``, ``0.5``, ``1:1:0.5``, ``1/0``); rows without one were measured at 1."""
    a = row.get("alpha", 1.0)
    return f"{a:g}" if isinstance(a, (int, float)) and not isinstance(a, bool) else str(a)


@dataclass(frozen=True)
class Spread:
    """The headline TuCo of some rows: n, mean, quartiles, extremes."""

    n: int
    mean: float
    median: float
    q1: float
    q3: float
    low: float
    high: float


def spread(values: Sequence[float]) -> Spread | None:
    """The spread of ``values`` (None when there are none)."""
    if not values:
        return None
    s = sorted(values)
    return Spread(len(s), statistics.fmean(s), quantile(s, 0.5), quantile(s, 0.25), quantile(s, 0.75), s[0], s[-1])


@dataclass(frozen=True)
class Stratum:
    """Rows measured the same way: one condition (or alpha) of a run, at one alpha, of one kind."""

    label: str
    rows: list[dict[str, Any]]
    alpha: str

    @property
    def values(self) -> list[float]:
        """The rows' headline TuCo (rows without one left out)."""
        return [v for r in self.rows if (v := headline(r)) is not None]


def strata(rows: Sequence[dict[str, Any]], group: str | None) -> list[Stratum]:
    """Rows by ``group`` value in natural order, each split by alpha and by row kind where those vary
    inside it (labels say so: ``k=0 · alpha 0.5``); one stratum ``all`` without a group field."""
    keys: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        name = alpha_of(r) if group == "alpha" else str(r.get(group)) if group else "all"
        keys.setdefault((name, alpha_of(r), kind_of(r)), []).append(r)
    split_alpha = group != "alpha" and any(len({a for g, a, _ in keys if g == name}) > 1 for name, _, _ in keys)
    split_kind = any(len({k for g, a, k in keys if (g, a) == (name, al)}) > 1 for name, al, _ in keys)
    out = []
    for name, alpha, kind in sorted(keys, key=lambda k: (natural_key(k[0]), natural_key(k[1]), k[2])):
        label = name + (f" · alpha {alpha}" if split_alpha else "") + (f" · {kind}" if split_kind else "")
        out.append(Stratum(label, keys[(name, alpha, kind)], alpha))
    return out


@dataclass(frozen=True)
class Summary:
    """Per-stratum spreads, and an overall row only where pooling means something (``pooled`` says what
    it pools; ``note`` says why there is none)."""

    header: str
    lines: list[tuple[str, Spread | None]]
    overall: Spread | None
    pooled: str
    note: str


def summary(parts: list[Stratum], group: str | None) -> Summary:
    """The summary table's data. The overall row pools strata only when they share one alpha and one row
    kind (one model, one measurement): rows at different alphas are not averaged together."""
    header = group or "group"
    lines = [(s.label, spread(s.values)) for s in parts]
    alphas = list(dict.fromkeys(s.alpha for s in parts))
    kinds = list(dict.fromkeys(kind_of(s.rows[0]) for s in parts))
    if len(parts) < 2:
        return Summary(header, lines, None, "", "")
    if len(alphas) > 1:
        return Summary(header, lines, None, "", f"No overall row: rows at different alphas ({', '.join(alphas)}) are not pooled.")
    if len(kinds) > 1:
        return Summary(header, lines, None, "", f"No overall row: rows of different kinds ({', '.join(kinds)}) are not pooled.")
    pooled = f"all: pools {len(parts)} {header} groups at alpha {alphas[0]}"
    return Summary(header, lines, spread([v for s in parts for v in s.values]), pooled, "")


def ranked(rows: Sequence[dict[str, Any]], k: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``k`` most and ``k`` least fine-tuning-driven of ``rows`` (one stratum's: never rank across
    alphas) by headline TuCo: most first, least lowest first, disjoint. When every value is the same
    (alpha 0, a single row) there is no ranking: the first ``k`` rows and no "least"."""
    scored = [r for r in rows if headline(r) is not None]
    if len({headline(r) for r in scored}) < 2:
        return scored[:k], []
    order = sorted(scored, key=lambda r: -(headline(r) or 0.0))
    top = order[:k]
    chosen = {id(r) for r in top}
    return top, [r for r in reversed(order[-k:]) if id(r) not in chosen]
