"""Findings: an experiment's claims, each tested on its interval, and the verdict that says direction AND
magnitude against what the paper reports. Torch-free.

An experiment declares its claims (``Claim``): the interval (``tuco.stats.intervals``), which side of the null
the paper expects, whether the claim is PRIMARY (the controlled comparison the experiment exists for) or
exploratory, and, where the paper reports a number on the same scale, that range. ``judge`` turns a
run's claims into ``Finding``s: primary claims are Holm-corrected together (family-wise error 5% per
run); exploratory ones keep their own p-value and are labelled as such. Verdicts:

- "reproduced": the paper's direction, significant (Holm for primary claims), within the paper's range
  where it gives one; "direction reproduced, weaker / stronger than the paper" when the interval lies
  wholly below / above that range;
- "opposite": significant in the other direction;
- "not reproduced": not significant, and the interval excludes the paper's effect (needs its range);
- "inconclusive": not significant, and the interval still includes the paper's effect;
- "not significant": not significant, and the paper gives no magnitude to compare with;
- "too few to tell (n < 10)": a group has fewer than 10 independent items (intervals that small are
  not trusted); "not measured": nothing to compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuco.stats.intervals import Interval, detectable_effect, holm

MIN_N = 10
TOO_FEW = f"too few to tell (n < {MIN_N})"
NOT_MEASURED = "not measured"
SIGNIFICANCE = 0.05
VERDICTS = (
    "reproduced",
    "direction reproduced, weaker than the paper",
    "direction reproduced, stronger than the paper",
    "opposite",
    "not reproduced",
    "inconclusive",
    "not significant",
    TOO_FEW,
    NOT_MEASURED,
)


@dataclass(frozen=True)
class Claim:
    """One claim an experiment tests: ``interval`` (None: not measured, ``reason`` says why), the side of
    the null the paper expects (``expect``: "above" or "below"), ``what`` the number is ("AUC", "TuCo
    change k=0 -> k=16" ...), the paper's statement and, on the same scale, its range."""

    claim: str
    interval: Interval | None
    expect: str
    what: str
    paper: str | None
    primary: bool = False
    paper_range: tuple[float, float] | None = None
    reason: str = ""
    mde: bool = False  # report the minimum detectable effect at this n (claims a small n may miss)
    digits: int = 3
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """A judged claim, as metrics.json ``findings`` records it (and the report and the CLI show it)."""

    claim: str
    primary: bool
    verdict: str
    estimate: float | None
    low: float | None
    high: float | None
    n: list[int]
    paper: str | None
    measured: str
    n_text: str
    p: float | None = None
    p_holm: float | None = None
    paper_range: list[float] | None = None
    method: str = ""
    expect: str = ""
    null: float | None = None
    mde: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def verdict(interval: Interval, expect: str, p: float, paper_range: tuple[float, float] | None = None) -> str:
    """The label of a claim from its interval, the p-value that decides significance (Holm-adjusted for
    primary claims) and the paper's range (module docstring)."""
    if expect not in ("above", "below"):
        raise ValueError(f"expect must be 'above' or 'below', got {expect!r}")
    if min(interval.n) < MIN_N:
        return TOO_FEW
    above, below = interval.low > interval.null, interval.high < interval.null
    significant = p < SIGNIFICANCE and (above or below)
    if significant and (above if expect == "above" else below):
        if paper_range is not None:
            lo, hi = paper_range
            if interval.high < lo:
                return "direction reproduced, " + ("weaker" if expect == "above" else "stronger") + " than the paper"
            if interval.low > hi:
                return "direction reproduced, " + ("stronger" if expect == "above" else "weaker") + " than the paper"
        return "reproduced"
    if significant:
        return "opposite"
    if paper_range is None:
        return "not significant"
    lo, hi = paper_range
    return "inconclusive" if interval.low <= hi and interval.high >= lo else "not reproduced"


def _n_text(interval: Interval, paired: bool) -> str:
    if len(interval.n) == 1:
        return f"{'paired ' if paired else ''}n={interval.n[0]}"
    return " vs ".join(str(k) for k in interval.n)


def judge(claims: Sequence[Claim]) -> list[Finding]:
    """Findings of a run's claims: primary ones first, Holm-corrected together; exploratory ones after."""
    measured = [c for c in claims if c.interval is not None]
    primary = [c for c in measured if c.primary]
    adjusted = dict(zip(map(id, primary), holm([c.interval.p for c in primary]))) if primary else {}  # type: ignore[union-attr]
    out = []
    for c in sorted(claims, key=lambda c: not c.primary):
        if c.interval is None:
            out.append(
                Finding(c.claim, c.primary, NOT_MEASURED, None, None, None, [], c.paper, c.reason or "not measured", "", extra=c.extra)
            )
            continue
        iv = c.interval
        p_used = adjusted.get(id(c), iv.p)
        fmt = f"{{:+.{c.digits}f}}" if iv.null == 0.0 else f"{{:.{c.digits}f}}"
        measured_text = f"{c.what} {fmt.format(iv.estimate)} [{fmt.format(iv.low)}, {fmt.format(iv.high)}]"
        out.append(
            Finding(
                claim=c.claim,
                primary=c.primary,
                verdict=verdict(iv, c.expect, p_used, c.paper_range),
                estimate=iv.estimate,
                low=iv.low,
                high=iv.high,
                n=list(iv.n),
                paper=c.paper,
                measured=measured_text,
                n_text=_n_text(iv, "paired" in iv.method.lower() or "Bonett" in iv.method or c.extra.get("paired", False)),
                p=iv.p,
                p_holm=adjusted.get(id(c)),
                paper_range=list(c.paper_range) if c.paper_range else None,
                method=iv.method,
                expect=c.expect,
                null=iv.null,
                mde=detectable_effect(iv) if c.mde else None,
                extra=c.extra,
            )
        )
    return out
