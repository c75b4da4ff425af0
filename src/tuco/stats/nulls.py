"""Calibration on null adapters: how often each primary claim fires on fine-tunes that carry nothing for it to
find (random LoRAs at a real fine-tune's weight norm, LoRAs trained on prose: no safety training). A claim
"fires" when its verdict is significant in EITHER direction (an "opposite" verdict is a false positive too);
"not testable on this pair", "not measured" and "too few to tell" are counted apart, never as passes. Per claim: the
false-positive count, its rate with an exact (Clopper-Pearson) 95% interval, the one-sided exact binomial
p-value of "the rate exceeds 5%", Holm over the claims, and the smallest rate this many nulls would catch
with 80% power. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tuco.stats.claims import (
    CONSISTENT,
    FAILS_CALIBRATION,
    NOT_MEASURED,
    NOT_TESTABLE,
    REPRODUCED,
    STRONGER,
    TOO_FEW_PREFIX,
    WEAKER,
)
from tuco.stats.intervals import holm, proportion_ci

NOMINAL = 0.05
FIRED = frozenset({REPRODUCED, WEAKER, STRONGER, CONSISTENT, "opposite"})


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly."""
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(0, k), n + 1)))


def critical_count(n: int, level: float, p0: float = NOMINAL) -> int:
    """The smallest count c with P(X >= c | p0) <= level: a count of at least c rejects "rate <= p0"."""
    return next(c for c in range(n + 2) if c > n or binom_sf(c, n, p0) <= level)


def detectable_rate(n: int, level: float, power: float = 0.8, p0: float = NOMINAL) -> float:
    """The smallest false-positive rate that n nulls detect with ``power`` at ``level`` (one-sided exact test)."""
    c = critical_count(n, level, p0)
    if c > n:
        return 1.0
    lo, hi = p0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if binom_sf(c, n, mid) >= power:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass
class NullRate:
    """One primary claim over the nulls."""

    experiment: str
    claim: str
    nulls: int
    testable: int
    fired: int
    not_testable: int
    rate: float | None
    low: float | None
    high: float | None
    p: float | None
    p_holm: float | None = None
    too_high: bool = False
    detectable: float | None = None
    verdicts: dict[str, int] | None = None
    estimates: list[float] | None = None


def _untestable(verdict: str) -> bool:
    """A verdict that cannot fire: not testable, not measured, or too few units to tell."""
    return verdict in (NOT_TESTABLE, NOT_MEASURED) or verdict.startswith(TOO_FEW_PREFIX)


def false_positive_rates(runs: Sequence[Mapping[str, Sequence[Mapping[str, Any]]]]) -> list[NullRate]:
    """Per primary claim over null runs (each: analysis name -> its findings, as metrics.json holds them),
    Holm over the claims; ``too_high`` when the Holm-adjusted p of "rate > 5%" is below 0.05; ``estimates``:
    the claim's estimate on each null that could test it."""
    claims: dict[tuple[str, str], list[str]] = {}
    estimates: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        for name, findings in run.items():
            for f in findings:
                if f.get("primary"):
                    claims.setdefault((name, str(f["claim"])), []).append(str(f["verdict"]))
                    if f.get("estimate") is not None and not _untestable(str(f["verdict"])):
                        estimates.setdefault((name, str(f["claim"])), []).append(float(f["estimate"]))
    rates = []
    for (name, claim), verdicts in claims.items():
        untestable = sum(_untestable(v) for v in verdicts)
        testable = len(verdicts) - untestable
        fired = sum(v in FIRED for v in verdicts)
        counts = {v: verdicts.count(v) for v in sorted(set(verdicts))}
        if testable:
            iv = proportion_ci([1.0] * fired + [0.0] * (testable - fired))
            rate = NullRate(
                name,
                claim,
                len(verdicts),
                testable,
                fired,
                untestable,
                fired / testable,
                iv.low,
                iv.high,
                binom_sf(fired, testable, NOMINAL),
                verdicts=counts,
                estimates=estimates.get((name, claim), []),
            )
        else:
            rate = NullRate(name, claim, len(verdicts), 0, 0, untestable, None, None, None, None, verdicts=counts, estimates=[])
        rates.append(rate)
    tested = [r for r in rates if r.p is not None]
    for r, p_holm in zip(tested, holm([r.p for r in tested])):  # type: ignore[misc]
        r.p_holm = p_holm
        r.too_high = p_holm < NOMINAL
        r.detectable = detectable_rate(r.testable, NOMINAL / max(1, len(tested)))
    return rates


def calibrate(verdict: str, rate: Mapping[str, Any] | None) -> str:
    """A verdict judged against its claim's rate on null adapters (a ``NullRate`` as a dict): a verdict that
    fires (``FIRED``) becomes ``FAILS_CALIBRATION`` when the claim fires significantly more often than 5% on
    the nulls (``too_high``); any other verdict, or a claim without a measured rate, is left as it is."""
    if rate is not None and rate.get("too_high") and verdict in FIRED:
        return FAILS_CALIBRATION
    return verdict


def as_dicts(rates: Sequence[NullRate]) -> list[dict[str, Any]]:
    """The rates as JSON-ready dicts."""
    return [asdict(r) for r in rates]
