"""Random-effects synthesis of one finding over adapters (independent training runs).

A finding measured on one fine-tuned adapter speaks for that training run. Several runs (seeds, recipes)
each give an estimate with its standard error; the question for a verdict is whether the effect holds for
the population of runs the recipe produces, a NEW adapter included. The model::

    estimate_i = mu + u_i + e_i,   u_i ~ N(0, tau^2) (between adapters),   e_i ~ N(0, se_i^2) (within)

Choices (by simulation at k = 3, 5, 8 adapters, 20000 data sets per cell; docs/stats-methods-draft.md):

- tau^2 by Paule-Mandel (the generalised Q set to its expectation k - 1): recommended over DerSimonian-
  Laird by the methods literature for small k (Veroniki et al. 2016), never negative, and the same
  coverage as REML here without iterating a likelihood;
- the interval for mu by Knapp-Hartung (Sidik-Jonkman) on k - 1 df with the "ad hoc" correction
  max(1, q) of the variance factor (the modified Knapp-Hartung of Roever et al. 2015): without it the
  interval is too narrow when the estimates agree more closely than their standard errors say (with
  Paule-Mandel's tau^2 > 0, q = 1 exactly, so the correction only acts when tau^2 = 0). Measured coverage
  at k = 5: >= 0.937 whenever the largest standard error is at most 5 times the smallest; at a ratio of
  20 it falls to 0.88 (the weights then trust one adapter), so above a ratio of 5 the interval is the
  union with the equal-weight t interval (mean of the estimates, their SD / sqrt(k), k - 1 df), which
  covered >= 0.948 in every cell: coverage >= 0.934 everywhere simulated;
- a prediction interval for a new adapter's effect: mu_hat +- t_{k-2} sqrt(tau^2 + SE^2) (Higgins,
  Thompson & Spiegelhalter 2009); undefined for k < 3 (None, and a note says so). It is approximate:
  coverage 0.89-1.0 at k = 5 (lowest when tau is about the size of the standard errors);
- Cochran's Q, its chi-square p on k - 1 df, and I^2 = max(0, (Q - (k - 1)) / Q) as a fraction.

``synthesize_intervals`` pools ``tuco.intervals.Interval`` objects: the standard error is read off the
interval's width. AUC-type estimates (bounded in [0, 1]) are pooled on the identity scale by default and
the pooled bounds clipped to [0, 1]; the logit scale is an option, not the default, because the score-
type AUC interval reaches 1.0 at (near-)perfect separation, where no logit exists, and because pooling
logits estimates the median adapter's AUC, not the mean (see ``synthesize_intervals``).

Numpy only; scipy's t and chi-square distributions are used when present (the ``tuco.intervals``
fallbacks otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Literal

import numpy as np

from tuco.stats.intervals import LEVEL, Interval, _t_quantile, _t_sf

__all__ = ["SE_RATIO_FOR_UNION", "Synthesis", "se_from_interval", "synthesize", "synthesize_intervals"]

#: Above this ratio of the largest to the smallest standard error, the weighted interval is widened to
#: the union with the equal-weight t interval (the weighted one undercovers there: 0.88 at a ratio of 20).
SE_RATIO_FOR_UNION = 5.0


@dataclass(frozen=True)
class Synthesis:
    """A random-effects synthesis over k adapters. On the ``scale`` the pooling used ("logit": estimate,
    bounds and prediction interval transformed back to [0, 1]; tau2, tau and q stay on the logit scale)."""

    estimate: float
    low: float
    high: float
    p: float
    k: int
    tau2: float
    tau: float
    i2: float
    q: float
    q_p: float
    pred_low: float | None
    pred_high: float | None
    method: str
    null: float = 0.0
    level: float = LEVEL
    scale: str = "identity"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def interval(self) -> Interval:
        """The pooled estimate as a ``tuco.intervals.Interval`` (n = (k,); heterogeneity in ``extra``)."""
        extra = {"tau2": self.tau2, "tau": self.tau, "i2": self.i2, "q": self.q, "q_p": self.q_p}
        if self.pred_low is not None and self.pred_high is not None:
            extra |= {"pred_low": self.pred_low, "pred_high": self.pred_high}
        return Interval(self.estimate, self.low, self.high, self.p, (self.k,), self.method, self.null, extra)

    @property
    def significant(self) -> bool:
        return self.low > self.null or self.high < self.null


def _chi2_sf(x: float, df: float) -> float:
    """P(X > x) for a chi-square on df (scipy when present; else the Wilson-Hilferty approximation)."""
    try:
        from scipy import stats

        return float(stats.chi2.sf(x, df))
    except ImportError:  # pragma: no cover - scipy is a dev dependency
        if x <= 0:
            return 1.0
        z = ((x / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
        return 1 - NormalDist().cdf(z)


def _paule_mandel(y: np.ndarray, v: np.ndarray) -> float:
    """tau^2 with sum w_i (y_i - mu(tau^2))^2 = k - 1, w_i = 1 / (v_i + tau^2); 0 when Q <= k - 1. The left
    side falls monotonically in tau^2, so bisection finds the root."""
    k = len(y)

    def gen_q(t2: float) -> float:
        w = 1 / (v + t2)
        mu = float((w * y).sum() / w.sum())
        return float((w * (y - mu) ** 2).sum())

    if gen_q(0.0) <= k - 1:
        return 0.0
    hi = float(np.var(y, ddof=1)) + float(v.max())
    while gen_q(hi) > k - 1:
        hi *= 2
    lo = 0.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if gen_q(mid) > k - 1:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, hi):
            break
    return (lo + hi) / 2


def synthesize(
    estimates: Sequence[float],
    std_errors: Sequence[float],
    *,
    level: float = LEVEL,
    null: float = 0.0,
) -> Synthesis:
    """Pool k >= 2 per-adapter estimates with their standard errors (random effects: Paule-Mandel tau^2,
    modified Knapp-Hartung interval on k - 1 df, prediction interval on k - 2 df; see the module doc).

    Raises ValueError for fewer than 2 estimates, mismatched lengths, non-finite values or a standard
    error <= 0.
    """
    y = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errors, dtype=float)
    k = len(y)
    if k != len(se):
        raise ValueError(f"one standard error per estimate: {k} estimates, {len(se)} standard errors")
    if k < 2:
        raise ValueError(f"a synthesis needs at least 2 adapters, got {k}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(se))):
        raise ValueError("estimates and standard errors must be finite")
    if np.any(se <= 0):
        raise ValueError(f"standard errors must be > 0, got {se.tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    v = se**2
    w0 = 1 / v
    mu0 = float((w0 * y).sum() / w0.sum())
    q_stat = float((w0 * (y - mu0) ** 2).sum())
    q_p = _chi2_sf(q_stat, k - 1)
    i2 = max(0.0, (q_stat - (k - 1)) / q_stat) if q_stat > 0 else 0.0
    tau2 = _paule_mandel(y, v)
    w = 1 / (v + tau2)
    mu = float((w * y).sum() / w.sum())
    factor = float((w * (y - mu) ** 2).sum()) / (k - 1)
    se_mu = math.sqrt(max(1.0, factor) / float(w.sum()))
    qt = _t_quantile(0.5 + level / 2, k - 1)
    low, high = mu - qt * se_mu, mu + qt * se_mu
    p = min(1.0, 2 * _t_sf(abs(mu - null) / se_mu, k - 1))
    method = "random effects: Paule-Mandel tau^2, modified Knapp-Hartung t (k - 1 df)"
    notes: list[str] = []
    ratio = float(se.max() / se.min())
    if ratio > SE_RATIO_FOR_UNION:
        mean, sd = float(y.mean()), float(y.std(ddof=1))
        if sd > 0:
            se_eq = sd / math.sqrt(k)
            low, high = min(low, mean - qt * se_eq), max(high, mean + qt * se_eq)
            p = max(p, min(1.0, 2 * _t_sf(abs(mean - null) / se_eq, k - 1)))
        method += " | equal-weight t"
        notes.append(f"standard errors differ {ratio:.1f}-fold (> {SE_RATIO_FOR_UNION:g}): the interval is widened to the equal-weight t's")
    pred_low = pred_high = None
    if k >= 3:
        half = _t_quantile(0.5 + level / 2, k - 2) * math.sqrt(tau2 + se_mu**2)
        pred_low, pred_high = mu - half, mu + half
    else:
        notes.append("no prediction interval with fewer than 3 adapters (t on k - 2 df)")
    return Synthesis(
        mu, low, high, p, k, tau2, math.sqrt(tau2), i2, q_stat, q_p, pred_low, pred_high, method, null, level, "identity", tuple(notes)
    )


def se_from_interval(low: float, high: float, level: float = LEVEL) -> float:
    """The standard error a symmetric normal interval [low, high] at ``level`` implies: width / (2 z)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"interval bounds must be finite, got [{low}, {high}]")
    if high < low:
        raise ValueError(f"high < low: [{low}, {high}]")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return (high - low) / (2 * NormalDist().inv_cdf(0.5 + level / 2))


def _logit(x: float) -> float:
    return math.log(x / (1 - x))


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def synthesize_intervals(
    intervals: Sequence[Interval],
    *,
    level: float = LEVEL,
    interval_level: float = LEVEL,
    scale: Literal["identity", "logit"] = "identity",
) -> Synthesis:
    """Pool per-adapter ``Interval`` objects (each at ``interval_level``): the standard error from each
    interval's width, the null from the intervals (they must agree).

    ``scale="identity"`` (the default, AUCs included): estimates and widths as they are; when every
    estimate and bound lies in [0, 1] (an AUC, a proportion) the pooled interval and prediction interval
    are clipped to [0, 1]. ``scale="logit"``: each adapter contributes its estimate's logit with the
    standard error logit-width / (2 z), and the results are transformed back; the estimand is then the
    median adapter's value (the back-transformed mean logit), not the mean; every estimate and bound must
    lie strictly inside (0, 1).

    Why identity for AUCs: the score-type AUC interval reaches 1.0 whenever the separation is perfect or
    nearly so (10% to 100% of the syntheses in the simulation of docs/stats-methods-draft.md), where no
    logit exists, and a scale that switched with the data would switch the estimand with it; on the
    identity scale the pooled interval covered the mean AUC of 5 adapters 0.93-0.99 of the time (true AUCs
    0.7-0.95, between-adapter SD up to 0.5 on the logit scale).
    """
    if len(intervals) < 2:
        raise ValueError(f"a synthesis needs at least 2 intervals, got {len(intervals)}")
    if scale not in ("identity", "logit"):
        raise ValueError(f"scale must be 'identity' or 'logit', got {scale!r}")
    nulls = {iv.null for iv in intervals}
    if len(nulls) != 1:
        raise ValueError(f"the intervals test different nulls: {sorted(nulls)}")
    null = nulls.pop()
    values = [x for iv in intervals for x in (iv.estimate, iv.low, iv.high)]
    if scale == "logit":
        if not all(0.0 < x < 1.0 for x in values):
            raise ValueError("the logit scale needs every estimate and bound strictly inside (0, 1) (a perfect separation has no logit)")
        got = synthesize(
            [_logit(iv.estimate) for iv in intervals],
            [se_from_interval(_logit(iv.low), _logit(iv.high), interval_level) for iv in intervals],
            level=level,
            null=_logit(null),
        )
        return replace(
            got,
            estimate=_expit(got.estimate),
            low=_expit(got.low),
            high=_expit(got.high),
            pred_low=None if got.pred_low is None else _expit(got.pred_low),
            pred_high=None if got.pred_high is None else _expit(got.pred_high),
            null=null,
            scale="logit",
            method=got.method + ", pooled on the logit scale",
        )
    ses = [se_from_interval(iv.low, iv.high, interval_level) for iv in intervals]
    if any(s <= 0 for s in ses):
        raise ValueError("an interval of zero width (a constant interval) has no standard error to pool")
    got = synthesize([iv.estimate for iv in intervals], ses, level=level, null=null)
    if not all(0.0 <= x <= 1.0 for x in values):
        return got
    clip = lambda x: min(1.0, max(0.0, x))
    clipped = replace(
        got,
        low=clip(got.low),
        high=clip(got.high),
        pred_low=None if got.pred_low is None else clip(got.pred_low),
        pred_high=None if got.pred_high is None else clip(got.pred_high),
    )
    if clipped != got:
        clipped = replace(clipped, notes=got.notes + ("bounded estimates: the pooled bounds are clipped to [0, 1]",))
    return clipped
