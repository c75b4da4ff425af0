"""Findings: an experiment's claims, each tested on its interval, and the verdict that says direction AND
magnitude against what the paper reports. Torch-free.

An experiment declares its claims (``Claim``): the interval (``tuco.stats``), which side of the null the
paper expects, whether the claim is PRIMARY (the paper's claim, or the labelled control that isolates it)
or exploratory, where the paper reports a number on the same scale that range, and the inputs its interval
was computed from (``inputs``: ``tuco.stats.recompute`` computes it again from them, so a finding can be
re-derived from a snapshot). ``judge`` turns claims into ``Finding``s: the primary claims are
Holm-corrected together, over one run or, through ``judge_suite``, over every primary claim of a suite of
analyses run on one pair (a family-wise error of 5% for the whole suite). Verdicts of primary claims:

- "reproduced": significant (Holm) in the paper's direction AND the estimate inside the paper's range;
- "direction reproduced, weaker than the paper" / "... stronger than the paper": significant in the
  paper's direction, the estimate outside its range (below it / beyond it, in the paper's direction);
- "direction consistent": significant in the paper's direction where the paper gives no number on the
  claim's scale (never "reproduced": there is nothing to reproduce the size of);
- "opposite": significant in the other direction;
- "not reproduced": not significant, and the interval excludes the paper's range;
- "inconclusive": not significant, and the interval still includes part of the paper's range;
- "not significant": not significant, and the paper gives no range;
- "not testable on this pair": the pair cannot show what the claim needs (e.g. a jailbreak claim on a pair
  that never refuses: the behaviour part of an intersection-union test cannot fire), or the design has
  fewer units than it needs to reach p < 0.05 at all (many-shot: 6 targets, shots and topics);
- "too few to tell (n < 10)": fewer independent units than the claim's design needs; "not measured".

Exploratory claims never say "reproduced": their label is "exploratory: as stated (p ...)", "exploratory: the
opposite (p ...)" or "exploratory: not significant (p ...)", on their own p-value (each claim is a statement
with a direction: "Random-token suffixes alone lower TuCo").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuco.stats.intervals import Interval, detectable_effect, holm

MIN_N = 10
TOO_FEW_PREFIX = "too few to tell"  # every "too few to tell (n < N)" verdict starts so, whatever N
TOO_FEW = f"{TOO_FEW_PREFIX} (n < {MIN_N})"
NOT_MEASURED = "not measured"
NOT_TESTABLE = "not testable on this pair"
SIGNIFICANCE = 0.05
REPRODUCED = "reproduced"
WEAKER = "direction reproduced, weaker than the paper"
STRONGER = "direction reproduced, stronger than the paper"
CONSISTENT = "direction consistent"
#: A synthesis's verdict where the claim fires significantly more often than 5% on null adapters of the same
#: pair (``tuco.stats.nulls``): what it found is not specific to fine-tuning there (``calibrate_synthesis``).
FAILS_CALIBRATION = "fails null calibration"
VERDICTS = (
    REPRODUCED,
    WEAKER,
    STRONGER,
    CONSISTENT,
    "opposite",
    "not reproduced",
    "inconclusive",
    "not significant",
    NOT_TESTABLE,
    TOO_FEW,
    NOT_MEASURED,
    FAILS_CALIBRATION,
)
EXPLORATORY = "exploratory"


@dataclass(frozen=True)
class Claim:
    """One claim an experiment tests: ``interval`` (None: not measured, ``reason`` says why), the side of
    the null the paper expects (``expect``: "above" or "below"), ``what`` the number is ("AUC", "TuCo
    change k=0 -> k=16" ...), the paper's statement and, on the same scale, its range.

    ``inputs``: what the interval was computed from (``tuco.stats.recompute``); ``min_n``: the fewest
    independent units per group the design needs for a verdict (designs whose inference is exact at small
    n, a permutation test over languages or a crossed design over stimuli, set their own); ``testable``:
    False when the pair cannot show what the claim needs, or the design has fewer units than it needs to
    reach p < 0.05 at all (``reason`` says why; judged "not testable on this pair" with or without an
    interval)."""

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
    inputs: dict[str, Any] | None = None
    min_n: int = MIN_N
    testable: bool = True


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
    inputs: dict[str, Any] | None = None
    min_n: int = MIN_N
    holm_family: int | None = None  # how many primary claims the Holm correction ran over


def _direction(interval: Interval, p: float) -> str | None:
    """ "above" / "below" when ``p`` is significant and the interval excludes the null on that side."""
    if p >= SIGNIFICANCE:
        return None
    if interval.low > interval.null:
        return "above"
    if interval.high < interval.null:
        return "below"
    return None


def verdict(
    interval: Interval,
    expect: str,
    p: float,
    paper_range: tuple[float, float] | None = None,
    *,
    primary: bool = True,
    min_n: int = MIN_N,
    testable: bool = True,
) -> str:
    """The label of a claim from its interval, the p-value that decides significance (Holm-adjusted for
    primary claims) and the paper's range (module docstring)."""
    if expect not in ("above", "below"):
        raise ValueError(f"expect must be 'above' or 'below', got {expect!r}")
    if not testable:
        return NOT_TESTABLE
    if min(interval.n) < min_n:
        return f"{TOO_FEW_PREFIX} (n < {min_n})"
    side = _direction(interval, p)
    if not primary:  # its own p, never "reproduced"
        where = "not significant" if side is None else "as stated" if side == expect else "the opposite"
        return f"{EXPLORATORY}: {where} (p {p:.2g})"
    if side == expect:
        if paper_range is None:
            return CONSISTENT
        lo, hi = paper_range
        if lo <= interval.estimate <= hi:
            return REPRODUCED
        below_range = interval.estimate < lo
        weaker = below_range if expect == "above" else not below_range
        return WEAKER if weaker else STRONGER
    if side is not None:
        return "opposite"
    if paper_range is None:
        return "not significant"
    lo, hi = paper_range
    return "inconclusive" if interval.low <= hi and interval.high >= lo else "not reproduced"


def _n_text(interval: Interval, paired: bool) -> str:
    if len(interval.n) == 1:
        return f"{'paired ' if paired else ''}n={interval.n[0]}"
    return " vs ".join(str(k) for k in interval.n)


def judge(claims: Sequence[Claim], *, holm_p: Mapping[int, float] | None = None, family: int | None = None) -> list[Finding]:
    """Findings of a run's claims: primary ones first, Holm-corrected together (or with ``holm_p``, the
    adjusted p-values a suite computed over a larger family of ``family`` claims: ``judge_suite``);
    exploratory ones after, on their own p-values."""
    measured = [c for c in claims if c.interval is not None and c.testable]
    primary = [c for c in measured if c.primary]
    if holm_p is None:
        holm_p = dict(zip(map(id, primary), holm([c.interval.p for c in primary]))) if primary else {}  # type: ignore[union-attr]
        family = len(primary)
    out = []
    for c in sorted(claims, key=lambda c: not c.primary):
        if c.interval is None:
            out.append(
                Finding(
                    c.claim,
                    c.primary,
                    NOT_MEASURED if c.testable else NOT_TESTABLE,
                    None,
                    None,
                    None,
                    [],
                    c.paper,
                    c.reason or "not measured",
                    "",
                    extra=c.extra,
                    min_n=c.min_n,
                )
            )
            continue
        iv = c.interval
        p_used = holm_p.get(id(c), iv.p)
        fmt = f"{{:+.{c.digits}f}}" if iv.null == 0.0 else f"{{:.{c.digits}f}}"
        measured_text = f"{c.what} {fmt.format(iv.estimate)} [{fmt.format(iv.low)}, {fmt.format(iv.high)}]"
        out.append(
            Finding(
                claim=c.claim,
                primary=c.primary,
                verdict=verdict(iv, c.expect, p_used, c.paper_range, primary=c.primary, min_n=c.min_n, testable=c.testable),
                estimate=iv.estimate,
                low=iv.low,
                high=iv.high,
                n=list(iv.n),
                paper=c.paper,
                measured=measured_text + ("" if c.testable else f" ({c.reason})" if c.reason else ""),
                n_text=_n_text(iv, "paired" in iv.method.lower() or "Bonett" in iv.method or c.extra.get("paired", False)),
                p=iv.p,
                p_holm=holm_p.get(id(c)),
                paper_range=list(c.paper_range) if c.paper_range else None,
                method=iv.method,
                expect=c.expect,
                null=iv.null,
                mde=detectable_effect(iv) if c.mde else None,
                extra=c.extra,
                inputs=c.inputs,
                min_n=c.min_n,
                holm_family=family if c.primary and c.testable else None,
            )
        )
    return out


def judge_suite(claims: Mapping[str, Sequence[Claim]]) -> dict[str, list[Finding]]:
    """Findings of several analyses run on one pair: every measured, testable primary claim of every
    analysis in one Holm family (the suite's family-wise error is 5%), exploratory claims on their own."""
    primary = [c for cs in claims.values() for c in cs if c.primary and c.interval is not None and c.testable]
    adjusted = dict(zip(map(id, primary), holm([c.interval.p for c in primary]))) if primary else {}  # type: ignore[union-attr]
    return {name: judge(cs, holm_p=adjusted, family=len(primary)) for name, cs in claims.items()}


def rejudge_suite(findings: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """``judge_suite`` for findings already recorded (metrics.json dicts, each analysis judged on its own):
    the measured, testable primary findings of every analysis in one Holm family, their ``p_holm``,
    ``holm_family`` and verdicts recomputed from their recorded numbers; exploratory findings unchanged."""
    copies = {name: [dict(f) for f in fs] for name, fs in findings.items()}
    family = [
        f for fs in copies.values() for f in fs if f.get("primary") and f.get("estimate") is not None and f["verdict"] != NOT_TESTABLE
    ]
    for f, p_holm in zip(family, holm([float(f["p"]) for f in family])):
        iv = Interval(f["estimate"], f["low"], f["high"], f["p"], tuple(f["n"]), f.get("method", ""), f.get("null") or 0.0)
        paper_range = tuple(f["paper_range"]) if f.get("paper_range") else None
        f["p_holm"], f["holm_family"] = p_holm, len(family)
        f["verdict"] = verdict(iv, f["expect"], p_holm, paper_range, min_n=int(f.get("min_n") or MIN_N))
    return copies
