"""95% intervals and p-values for the quantities tuco's findings rest on, each chosen for its coverage at
the small n an analysis on a CPU affords (checked by simulation in tests/test_intervals.py: >= 93% at
nominal 95% for n = 10, 20 and 40 on skewed and on binary data). Torch-free (numpy).

- a mean of per-item values (continuous): the union of the Student t interval and the studentized
  bootstrap interval (the t interval alone undercovers on skewed data, the bootstrap alone at n = 10);
  items that repeat (clusters) are averaged first, so an item counts once;
- a paired difference of means: the mean of per-item differences (above); binary outcomes on both
  sides: the Bonett-Price adjusted Wald interval for paired proportions;
- a difference between two independent groups: the union of Welch's interval and the two-sample
  studentized bootstrap;
- a proportion: the Clopper-Pearson interval;
- a ROC-AUC (optionally stratified: only pairs within one stratum count; optionally clustered): a
  score-type interval, the AUC values within z standard errors of the estimate, with the larger of the
  leave-one-cluster-out jackknife variance and the Hanley-McNeil variance at each value (sound at
  perfect separation, where a logit-scale interval is not).

Each returns an ``Interval`` with the estimate, the interval, a two-sided p-value against the null and n
(independent units per group). Holm's correction over several p-values is ``holm``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

LEVEL = 0.95
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval, a two-sided p-value against ``null``, and the independent units it
    rests on per group (``n``)."""

    estimate: float
    low: float
    high: float
    p: float
    n: tuple[int, ...]
    method: str
    null: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def significant(self) -> bool:
        """The interval excludes the null."""
        return self.low > self.null or self.high < self.null


def _z(level: float) -> float:
    return _NORMAL.inv_cdf(0.5 + level / 2)


def _t_quantile(q: float, df: float) -> float:
    """Student t quantile (scipy when present; else a Cornish-Fisher expansion, accurate to ~1e-3 for df >= 3)."""
    try:
        from scipy import stats

        return float(stats.t.ppf(q, df))
    except ImportError:  # pragma: no cover - scipy is a dev dependency
        z = _NORMAL.inv_cdf(q)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        return z + g1 / df + g2 / df**2 + g3 / df**3


def _t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t."""
    try:
        from scipy import stats

        return float(stats.t.sf(t, df))
    except ImportError:  # pragma: no cover
        return 1 - _NORMAL.cdf(t * (1 - 1 / (4 * df)) / math.sqrt(1 + t * t / (2 * df)))


def _two_sided(p_upper: float) -> float:
    return min(1.0, 2 * min(p_upper, 1 - p_upper))


def cluster_means(values: Sequence[float], clusters: Sequence[Hashable] | None) -> np.ndarray:
    """Per-cluster means of ``values`` (in first-seen order); the values themselves without clusters."""
    x = np.asarray(values, dtype=float)
    if clusters is None:
        return x
    if len(clusters) != len(x):
        raise ValueError("one cluster label per value")
    order: dict[Hashable, list[float]] = {}
    for c, v in zip(clusters, x):
        order.setdefault(c, []).append(float(v))
    return np.array([sum(v) / len(v) for v in order.values()])


def _is_binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


# --------------------------------------------------------------------------------------------
# Means.
# --------------------------------------------------------------------------------------------


def mean_ci(
    values: Sequence[float],
    *,
    clusters: Sequence[Hashable] | None = None,
    null: float = 0.0,
    level: float = LEVEL,
    n_boot: int = 2000,
    seed: int = 0,
) -> Interval:
    """The mean of per-item values: the union of the t interval and the studentized bootstrap interval
    (p-value: the larger of the two tests'). Repeated items (``clusters``) are averaged first."""
    x = cluster_means(values, clusters)
    n = len(x)
    if n < 2:
        raise ValueError("an interval needs at least two items")
    m, sd = float(x.mean()), float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0:  # every item equal: no spread to estimate (the caller's n rule says whether to trust it)
        return Interval(m, m, m, 0.0 if m != null else 1.0, (n,), "constant", null)
    q = _t_quantile(0.5 + level / 2, n - 1)
    t_lo, t_hi = m - q * se, m + q * se
    t_obs = (m - null) / se
    p_t = min(1.0, 2 * _t_sf(abs(t_obs), n - 1))
    rng = np.random.default_rng(seed)
    xs = x[rng.integers(0, n, (n_boot, n))]
    ms, ses = xs.mean(1), xs.std(1, ddof=1) / math.sqrt(n)
    keep = ses > 0
    t_star = (ms[keep] - m) / ses[keep]
    if len(t_star) < n_boot // 2:  # almost every resample constant (few distinct values): the t interval alone
        return Interval(m, t_lo, t_hi, p_t, (n,), "t", null)
    a = (1 - level) / 2
    lo_q, hi_q = np.quantile(t_star, [a, 1 - a])
    b_lo, b_hi = m - hi_q * se, m - lo_q * se
    p_b = _two_sided(float(np.mean(t_star >= t_obs)))
    return Interval(m, min(t_lo, b_lo), max(t_hi, b_hi), max(p_t, p_b), (n,), "t | studentized bootstrap", null)


def paired_diff_ci(
    before: Sequence[float],
    after: Sequence[float],
    *,
    clusters: Sequence[Hashable] | None = None,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """mean(after - before) over items measured under both conditions. Binary outcomes (0/1 on both sides,
    no clusters): the Bonett-Price interval for paired proportions; otherwise ``mean_ci`` of the
    per-item differences (cluster-averaged)."""
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if len(a) != len(b):
        raise ValueError("paired groups must have the same length")
    if clusters is None and _is_binary(a) and _is_binary(b):
        return paired_proportion_diff_ci(a.tolist(), b.tolist(), level=level)
    return mean_ci(b - a, clusters=clusters, level=level, seed=seed)


def paired_proportion_diff_ci(before: Sequence[float], after: Sequence[float], *, level: float = LEVEL) -> Interval:
    """P(after) - P(before) for paired binary outcomes: Bonett & Price (2012), the adjusted Wald interval
    (one pseudo-count added to each discordant cell)."""
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    n = len(a)
    up = float(np.sum((a == 0) & (b == 1)))  # 0 -> 1
    down = float(np.sum((a == 1) & (b == 0)))  # 1 -> 0
    p_up, p_down = (up + 1) / (n + 2), (down + 1) / (n + 2)
    d = p_up - p_down
    se = math.sqrt(max(0.0, p_up + p_down - d * d) / (n + 2))
    z = _z(level)
    est = (up - down) / n if n else 0.0
    p = 2 * (1 - _NORMAL.cdf(abs(d) / se)) if se > 0 else 1.0
    return Interval(est, max(-1.0, d - z * se), min(1.0, d + z * se), p, (n,), "Bonett-Price paired proportions")


def diff_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    clusters_a: Sequence[Hashable] | None = None,
    clusters_b: Sequence[Hashable] | None = None,
    level: float = LEVEL,
    n_boot: int = 2000,
    seed: int = 0,
) -> Interval:
    """mean(b) - mean(a) for two independent groups: the union of Welch's interval and the two-sample
    studentized bootstrap (p-value: the larger of the two tests')."""
    x, y = cluster_means(a, clusters_a), cluster_means(b, clusters_b)
    na, nb = len(x), len(y)
    if na < 2 or nb < 2:
        raise ValueError("an interval needs at least two items per group")
    d = float(y.mean() - x.mean())
    va, vb = float(x.var(ddof=1)) / na, float(y.var(ddof=1)) / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, d, d, 0.0 if d != 0 else 1.0, (na, nb), "constant")
    df = (va + vb) ** 2 / ((va**2 / (na - 1) if va else 0.0) + (vb**2 / (nb - 1) if vb else 0.0))
    q = _t_quantile(0.5 + level / 2, df)
    w_lo, w_hi = d - q * se, d + q * se
    t_obs = d / se
    p_w = min(1.0, 2 * _t_sf(abs(t_obs), df))
    rng = np.random.default_rng(seed)
    xs, ys = x[rng.integers(0, na, (n_boot, na))], y[rng.integers(0, nb, (n_boot, nb))]
    ds = ys.mean(1) - xs.mean(1)
    ses = np.sqrt(xs.var(1, ddof=1) / na + ys.var(1, ddof=1) / nb)
    keep = ses > 0
    t_star = (ds[keep] - d) / ses[keep]
    if len(t_star) < n_boot // 2:
        return Interval(d, w_lo, w_hi, p_w, (na, nb), "Welch", 0.0)
    alpha = (1 - level) / 2
    lo_q, hi_q = np.quantile(t_star, [alpha, 1 - alpha])
    p_b = _two_sided(float(np.mean(t_star >= t_obs)))
    return Interval(d, min(w_lo, d - hi_q * se), max(w_hi, d - lo_q * se), max(p_w, p_b), (na, nb), "Welch | studentized bootstrap")


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    return min(
        1.0, sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq) for i in range(k + 1))
    )


def _solve(f: Callable[[float], float], lo: float, hi: float) -> float:
    """The root of an increasing function on [lo, hi] by bisection."""
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def proportion_ci(values: Sequence[float], *, level: float = LEVEL, null: float = 0.5) -> Interval:
    """A proportion of binary outcomes: the Clopper-Pearson interval (coverage never below the nominal
    level), with the exact two-sided binomial test against ``null``."""
    x = np.asarray(values, dtype=float)
    n, k = len(x), int(x.sum())
    if n == 0:
        raise ValueError("no values")
    a = (1 - level) / 2
    # lower: P(X >= k | t) = a; upper: P(X <= k | t) = a (both sides increasing in t as written)
    lo = 0.0 if k == 0 else _solve(lambda t: (1 - _binom_cdf(k - 1, n, t)) - a, 0.0, 1.0)
    hi = 1.0 if k == n else _solve(lambda t: a - _binom_cdf(k, n, t), 0.0, 1.0)
    p = min(1.0, 2 * min(_binom_cdf(k, n, null), 1 - _binom_cdf(k - 1, n, null)))
    return Interval(k / n, lo, hi, p, (n,), "Clopper-Pearson", null)


# --------------------------------------------------------------------------------------------
# ROC-AUC.
# --------------------------------------------------------------------------------------------


def _pairs_auc(p: np.ndarray, q: np.ndarray, sp: np.ndarray, sq: np.ndarray) -> tuple[float, int]:
    """(AUC over the (positive, negative) pairs within one stratum, number of such pairs)."""
    same = sp[:, None] == sq[None, :]
    psi = (p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :])
    total = int(same.sum())
    return (float((psi * same).sum()) / total if total else float("nan")), total


def auc_ci(
    positives: Sequence[float],
    negatives: Sequence[float],
    *,
    pos_clusters: Sequence[Hashable] | None = None,
    neg_clusters: Sequence[Hashable] | None = None,
    pos_strata: Sequence[Hashable] | None = None,
    neg_strata: Sequence[Hashable] | None = None,
    level: float = LEVEL,
) -> Interval:
    """P(a positive scores above a negative) + 1/2 P(tie), over pairs within one stratum (stratified AUC:
    a confound that differs between strata cannot create separation). The variance is the leave-one-
    cluster-out jackknife (a cluster: one item, whatever rows it has in either group), floored by the
    Hanley-McNeil variance at the estimate; the interval is built on the logit scale. Null: 0.5."""
    p, q = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    m, n = len(p), len(q)
    if m == 0 or n == 0:
        raise ValueError("ROC-AUC needs at least one positive and one negative score")
    codes: dict[Hashable, int] = {}  # any hashable label -> an integer code (clusters, strata)

    def coded(labels: Sequence[Hashable] | None, default: list[Hashable]) -> np.ndarray:
        return np.array([codes.setdefault(("label", x), len(codes)) for x in (default if labels is None else labels)], dtype=np.int64)

    cp = coded(pos_clusters, [("p", i) for i in range(m)])
    cq = coded(neg_clusters, [("n", i) for i in range(n)])
    sp, sq = coded(pos_strata, [0] * m), coded(neg_strata, [0] * n)
    auc, total = _pairs_auc(p, q, sp, sq)
    if total == 0:
        raise ValueError("no stratum holds both a positive and a negative")
    clusters = list(dict.fromkeys([*cp.tolist(), *cq.tolist()]))
    jack = []
    for c in clusters:
        kp, kq = cp != c, cq != c
        value, pairs = _pairs_auc(p[kp], q[kq], sp[kp], sq[kq])
        if pairs:
            jack.append(value)
    j = np.asarray(jack)
    jackknife = (len(j) - 1) / len(j) * float(((j - j.mean()) ** 2).sum()) if len(j) > 1 else 0.0
    mm, nn = len(set(cp.tolist())), len(set(cq.tolist()))
    z = _z(level)
    # Score-type interval: every AUC value A whose distance from the estimate is within z standard errors,
    # the variance being the jackknife's or the Hanley-McNeil variance AT A, whichever is larger. Like
    # Wilson's interval for a proportion, it neither collapses nor explodes at perfect separation (the
    # delta method on the logit scale does: AUC 1.0 on 32 vs 32 gave [0.03, 1.00]).
    grid = np.linspace(0.0, 1.0, 20001)
    inside = (auc - grid) ** 2 <= z * z * np.maximum(jackknife, _hanley_mcneil(grid, mm, nn))
    i = int(np.clip(np.searchsorted(grid, auc), 0, len(grid) - 1))
    if not inside[i]:  # the estimate itself lies between grid points: take the nearest inside one
        i = int(np.argmin(np.where(inside, np.abs(grid - auc), np.inf)))
    lo_i, hi_i = i, i
    while lo_i > 0 and inside[lo_i - 1]:
        lo_i -= 1
    while hi_i < len(grid) - 1 and inside[hi_i + 1]:
        hi_i += 1
    lo, hi = min(float(grid[lo_i]), auc), max(float(grid[hi_i]), auc)
    # The test of AUC = 0.5: the Mann-Whitney variance under the null, or the jackknife's if larger.
    se0 = math.sqrt(max(jackknife, float(_hanley_mcneil(np.array([0.5]), mm, nn)[0])))
    pval = 2 * (1 - _NORMAL.cdf(abs(auc - 0.5) / se0))
    return Interval(auc, lo, hi, pval, (mm, nn), "score-type AUC interval (jackknife | Hanley-McNeil variance)", 0.5)


def _hanley_mcneil(a: np.ndarray, m: int, n: int) -> np.ndarray:
    """Hanley and McNeil's (1982) variance of an AUC estimate at true AUC ``a`` with m positives and n
    negatives (at a = 0.5: the Mann-Whitney null variance (m + n + 1) / 12mn)."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return np.asarray((a * (1 - a) + (m - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a)) / (m * n))


# --------------------------------------------------------------------------------------------
# Trends, multiplicity, power.
# --------------------------------------------------------------------------------------------


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The least-squares slope of ys on xs (None with fewer than two distinct xs)."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(x) < 2 or float(np.ptp(x)) == 0:
        return None
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down; controls the family-wise error rate), in input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [1.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def detectable_effect(interval: Interval, *, power: float = 0.8, level: float = LEVEL) -> float:
    """The smallest true effect a test at this interval's width detects with ``power`` (two-sided):
    (z_{1-a/2} + z_power) * SE, with SE read off the interval's half-width."""
    z = _z(level)
    se = (interval.high - interval.low) / (2 * z)
    return (z + _NORMAL.inv_cdf(power)) * se
