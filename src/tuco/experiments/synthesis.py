"""Adapters as samples: each primary claim of an analysis, measured on several adapters of one recipe (training
runs that differ only in their seed), synthesised into ONE headline that speaks for a new adapter of the
recipe: a random-effects synthesis (``tuco.stats.synthesis``: pooled estimate, Knapp-Hartung 95% interval,
tau, I^2, a prediction interval for a new adapter) judged under the same rules as a single run (the paper's
range and direction; every synthesised primary claim of the suite in one Holm family). Torch-free.

    synthesis = synthesize_runs(["runs/gemma-seed0", "runs/gemma-seed1", ...])   # suites or analysis runs

An input is a suite directory (``tuco demo``: one run per analysis) or one analysis's run directory. A
claim made of two parts (an intersection-union test: "TuCo falls AND the harmful rate rises") is
synthesised part by part from the per-item values its findings carry (``tuco.stats.recompute``) and
judged on the larger of the parts' p-values. Adapters on which a claim was not testable or not measured
are left out of that claim's synthesis (its ``k`` says how many remain).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tuco.errors import InputError
from tuco.stats.claims import NOT_MEASURED, NOT_TESTABLE, verdict
from tuco.stats.intervals import Interval, holm
from tuco.stats.nulls import calibrate
from tuco.stats.recompute import compute, recompute
from tuco.stats.synthesis import Synthesis, synthesize_intervals

MIN_ADAPTERS = 3  # a prediction interval for a new adapter needs k >= 3
#: What each adapter's row keeps of its finding: enough to show it and to synthesise the claim again from
#: the rows alone (``synthesize_findings``; tests/test_snapshots.py re-derives shipped syntheses so).
ADAPTER_FIELDS = (
    "claim", "estimate", "low", "high", "p", "n", "method", "null", "verdict", "measured", "n_text",
    "expect", "paper", "paper_range", "inputs",
)  # fmt: skip


@dataclass
class ClaimSynthesis:
    """One primary claim over adapters: the headline (pooled, its interval, the prediction interval for a new
    adapter, heterogeneity) and each adapter's own finding below it."""

    experiment: str
    claim: str
    verdict: str
    k: int
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    p_holm: float | None = None
    pred_low: float | None = None
    pred_high: float | None = None
    tau: float | None = None
    i2: float | None = None
    null: float = 0.0
    expect: str = ""
    paper: str | None = None
    paper_range: list[float] | None = None
    measured: str = ""
    parts: list[dict[str, Any]] = field(default_factory=list)
    adapters: list[dict[str, Any]] = field(default_factory=list)


def _analyses(path: Path) -> dict[str, dict[str, Any]]:
    """metrics.json of each analysis under ``path`` (a suite) or of ``path`` itself (one analysis)."""
    if (path / "metrics.json").is_file():
        found = [path]
    else:
        found = sorted(d for d in path.iterdir() if (d / "metrics.json").is_file()) if path.is_dir() else []
    if not found:
        raise InputError(f"{path}: no metrics.json in it or in its subfolders; give a finished run or a tuco demo directory")
    return {json.loads((d / "metrics.json").read_text(encoding="utf-8"))["experiment"]: _load(d) for d in found}


def _load(d: Path) -> dict[str, Any]:
    return dict(json.loads((d / "metrics.json").read_text(encoding="utf-8")), _path=str(d))


def _interval(f: dict[str, Any]) -> Interval:
    return Interval(f["estimate"], f["low"], f["high"], f["p"], tuple(f["n"]), f.get("method", ""), f.get("null") or 0.0)


def _pooled(intervals: Sequence[Interval]) -> Synthesis:
    return synthesize_intervals(list(intervals))


#: Estimands with a bounded range (the pooled interval, on the identity scale, is cut at the bounds).
BOUNDED = {"spearman_exact": (-1.0, 1.0)}


def _constant(iv: Interval) -> bool:
    """No standard error to pool it with (zero width, to rounding)."""
    return not iv.high - iv.low > 1e-12 * max(1.0, abs(iv.estimate))


def _on_side(estimate: float, null: float, side: str) -> bool:
    return estimate > null if side == "above" else estimate < null


def _part_p(intervals: Sequence[Interval], side: str) -> float:
    """One part of an intersection-union claim over adapters: its pooled p when on the claim's side, else 1.
    A part that is constant on every adapter (zero-width intervals, e.g. a harmful-answer rate of 0 at every
    k) has no standard error to pool: on the claim's side everywhere it is 0 (as a constant interval's p),
    otherwise 1. Constant on some adapters only: no common scale to pool them on, so 1 (the claim cannot be
    supported through that part)."""
    if all(_constant(iv) for iv in intervals):
        return 0.0 if all(_on_side(iv.estimate, iv.null, side) for iv in intervals) else 1.0
    if any(_constant(iv) for iv in intervals):
        return 1.0
    s = _pooled(intervals)
    return s.p if _on_side(s.estimate, s.null, side) else 1.0


def _part_record(intervals: Sequence[Interval], side: str) -> dict[str, Any]:
    if any(_constant(iv) for iv in intervals):  # not pooled (see _part_p)
        return {"side": side, "estimates": [iv.estimate for iv in intervals], "p": _part_p(intervals, side), "pooled": False}
    return asdict(_pooled(intervals)) | {"side": side}


def _text(s: Synthesis, digits: int = 3) -> str:
    fmt = f"{{:+.{digits}f}}" if s.null == 0.0 else f"{{:.{digits}f}}"
    pred = f"; a new adapter: [{fmt.format(s.pred_low)}, {fmt.format(s.pred_high)}]" if s.pred_low is not None else ""
    return f"{fmt.format(s.estimate)} [{fmt.format(s.low)}, {fmt.format(s.high)}]{pred} (k={s.k}, tau {s.tau:.3g}, I2 {s.i2:.0%})"


def synthesize_claim(experiment: str, findings: Sequence[tuple[str, dict[str, Any]]]) -> tuple[ClaimSynthesis, float | None]:
    """One claim's synthesis from (adapter label, finding) pairs; returns it and its unadjusted p (None: not
    synthesised)."""
    first = findings[0][1]
    usable = [(label, f) for label, f in findings if f.get("estimate") is not None and f.get("verdict") != NOT_TESTABLE]
    out = ClaimSynthesis(
        experiment=experiment,
        claim=first["claim"],
        verdict=NOT_MEASURED,
        k=len(usable),
        expect=first.get("expect", ""),
        paper=first.get("paper"),
        paper_range=first.get("paper_range"),
        adapters=[{"adapter": label, **{k: f.get(k) for k in ADAPTER_FIELDS}} for label, f in findings],
    )
    if len(usable) < MIN_ADAPTERS:
        out.verdict = NOT_TESTABLE if any(f.get("verdict") == NOT_TESTABLE for _, f in findings) else NOT_MEASURED
        out.measured = f"{len(usable)} of {len(findings)} adapters measured it (a synthesis needs {MIN_ADAPTERS})"
        return out, None
    inputs = [f.get("inputs") or {} for _, f in usable]
    try:
        if all(i.get("fn") == "intersection" for i in inputs):  # synthesise each part over adapters, p = the larger
            sides = inputs[0]["sides"]
            per_part = [[recompute(i["parts"][j]) for i in inputs] for j in range(len(sides))]
            p = max(_part_p(ivs, side) for ivs, side in zip(per_part, sides))
            head = _pooled(per_part[0])
            out.parts = [_part_record(ivs, side) for ivs, side in zip(per_part, sides)]
        else:
            head = _pooled([_interval(f) for _, f in usable])
            p = head.p
    except ValueError as err:  # e.g. zero-width intervals: no standard error to weigh the adapters by
        out.measured = f"not synthesised: {err}"
        return out, None
    if all(i.get("fn") in BOUNDED for i in inputs):  # a correlation's interval stops at its bounds
        lo, hi = BOUNDED[str(inputs[0]["fn"])]
        cut = lambda v: min(hi, max(lo, v))  # noqa: E731
        pred = {} if head.pred_low is None or head.pred_high is None else {"pred_low": cut(head.pred_low), "pred_high": cut(head.pred_high)}
        head = replace(head, low=cut(head.low), high=cut(head.high), **pred)
    out.estimate, out.low, out.high, out.p = head.estimate, head.low, head.high, p
    out.pred_low, out.pred_high, out.tau, out.i2, out.null = head.pred_low, head.pred_high, head.tau, head.i2, head.null
    out.measured = _text(head)
    return out, p


def synthesize_runs(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The synthesis over adapters of every primary claim the runs share (see the module docstring): a dict
    with ``adapters`` (labels and paths), ``claims`` (one ``ClaimSynthesis`` each, as dicts, primary claims in
    suite order) and ``holm_family``."""
    if len(paths) < 2:
        raise InputError("a synthesis over adapters needs at least 2 runs (one per adapter); give more run directories")
    labels = list(labels or [Path(p).name for p in paths])
    runs = [_analyses(Path(p)) for p in paths]
    names = [n for n in runs[0] if all(n in r for r in runs)]
    if not names:
        raise InputError("the runs share no analysis; give runs of the same analysis (or suites of the same preset)")
    per_claim: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    for name in names:
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for label, run in zip(labels, runs):
            for f in run[name].get("findings", []):
                if f.get("primary"):
                    found.setdefault(f["claim"], []).append((label, f))
        per_claim += [(name, fs) for fs in found.values() if len(fs) == len(runs)]
    return {
        "adapters": [{"label": label, "path": str(p)} for label, p in zip(labels, paths)],
        "analyses": names,
        **synthesize_findings(per_claim),
    }


def synthesize_findings(per_claim: Sequence[tuple[str, Sequence[tuple[str, dict[str, Any]]]]]) -> dict[str, Any]:
    """Every claim's synthesis from its (experiment, [(adapter label, finding)]) and their verdicts, the
    synthesised claims in one Holm family: ``{"holm_family": k, "claims": [ClaimSynthesis as dicts]}``. A
    synthesis's own ``adapters`` rows are findings again: ``synthesize_findings`` on them gives it back."""
    claims = [synthesize_claim(name, fs) for name, fs in per_claim]
    family = [(c, p) for c, p in claims if p is not None]
    for (c, _), p_holm in zip(family, holm([p for _, p in family])):
        c.p_holm = p_holm
        assert c.estimate is not None and c.low is not None and c.high is not None  # set with p
        iv = Interval(c.estimate, c.low, c.high, p_holm, (c.k,), "random-effects synthesis", c.null)
        paper_range = (c.paper_range[0], c.paper_range[1]) if c.paper_range else None
        c.verdict = verdict(iv, c.expect, p_holm, paper_range, min_n=MIN_ADAPTERS)
    return {"holm_family": len(family), "claims": [asdict(c) for c, _ in claims]}


def _beyond(claim: dict[str, Any], rate: dict[str, Any]) -> dict[str, Any] | None:
    """Exploratory: the adapters' mean estimate minus the nulls' (Welch | studentized bootstrap over adapters;
    ``diff_ci``), with its inputs; None without two estimates on each side."""
    ours = [float(a["estimate"]) for a in claim.get("adapters") or [] if a.get("estimate") is not None and a.get("verdict") != NOT_TESTABLE]
    theirs = [float(e) for e in rate.get("estimates") or []]
    if len(ours) < 2 or len(theirs) < 2:
        return None
    iv, inputs = compute("diff_ci", a=theirs, b=ours)
    return {"estimate": iv.estimate, "low": iv.low, "high": iv.high, "p": iv.p, "n": list(iv.n), "method": iv.method, "inputs": inputs}


def calibrate_synthesis(synthesis: dict[str, Any], nulls: dict[str, Any], source: str) -> dict[str, Any]:
    """``synthesis`` judged against null adapters of the same pair (``nulls``: a ``tuco demo --nulls``
    nulls.json or its snapshot, with ``rates`` per primary claim, ``tuco.stats.nulls``): each claim carries
    its false-positive rate on the nulls (``calibration``), and a claim that fires significantly more often
    than 5% there has its fired verdict replaced by "fails null calibration" (the verdict it had is kept as
    ``uncalibrated_verdict``). A claim the nulls did not run keeps its verdict with ``calibration``
    ``{"missing": True}`` (shown as such). Numbers and the Holm family are unchanged. Each claim's ``calibration`` also
    holds ``beyond_nulls``, an exploratory comparison chosen after the nulls were seen: the adapters' mean
    estimate minus the nulls'. Applying it twice is applying it once."""
    keep = ("nulls", "testable", "fired", "not_testable", "rate", "low", "high", "p", "p_holm", "too_high", "detectable")
    rates = nulls.get("rates")
    if not isinstance(rates, list) or not all(isinstance(r, dict) and {"experiment", "claim", *keep} <= set(r) for r in rates):
        raise InputError(
            f"{source}: not a nulls table (a 'rates' list of claims with their counts); give the nulls.json of tuco demo --nulls"
        )
    by_claim = {(r["experiment"], r["claim"]): r for r in rates}
    claims = []
    for c in synthesis["claims"]:
        rate = by_claim.get((c["experiment"], c["claim"]))
        before = c.get("uncalibrated_verdict", c["verdict"])
        try:
            calibration = {k: rate[k] for k in keep} | {"beyond_nulls": _beyond(c, rate)} if rate else {"missing": True}
        except (TypeError, ValueError) as err:
            raise InputError(f"{source}: the nulls' estimates of {c['claim']!r} are not numbers ({err})") from err
        claims.append(dict(c, uncalibrated_verdict=before, verdict=calibrate(before, rate), calibration=calibration))
    record = {"source": source, "null": nulls.get("null"), "nulls": len(nulls.get("nulls") or [])}
    return dict(synthesis, claims=claims, calibration=record)
