"""ROC-AUC within strata (attack types), with clusters (rows of one request, or requests of one topic),
reported for the strata that can carry it.

Only (positive, negative) pairs within one stratum count: a confound that shifts every score of one
stratum (an attack type that lowers TuCo for everyone) cannot create separation. A stratum speaks only
if both classes have enough independent units in it: the review found an AUC reported with n = (27, 32)
and p = 4.9e-11 where a single stratum held both classes, 27 refused requests against 5 successes, and
the other 27 negatives sat in strata without a single positive. Here that stratum is reported alone,
with n = (27, 5) and the p its 5 successes allow.

Method (chosen over a bootstrap within strata, see docs/stats-methods-draft.md):

- per stratum, the AUC over its (positive, negative) row pairs and its cluster-robust variance: the
  structural components (placements) of each row summed within clusters, with class-specific small-sample
  factors I/(I - 1) (Obuchowski 1997; DeLong et al. 1988 when each cluster is one row). A cluster may hold
  rows of both classes (a topic with refused and complied requests): the covariance term carries it;
- the strata combined with van Elteren's weights, w_h proportional to m_h n_h / (m_h + n_h + 1) over the
  strata's cluster counts (the inverse of each AUC's null variance: the locally most powerful weighting
  against a common shift), the combined variance sum w_h^2 Var_h plus the covariances of clusters that
  appear in several strata;
- the interval score-type, as ``tuco.intervals.auc_ci``: every AUC value A within z standard errors of
  the estimate, the variance being the larger of the cluster-robust one and the Hanley-McNeil variance at
  A for independent clusters (summed over strata with the same weights). It neither collapses nor
  explodes at perfect separation, where the cluster-robust variance is 0. The p-value against 0.5 uses
  the same rule at A = 0.5 (the Mann-Whitney null variance (m + n + 1) / 12mn per stratum as the floor),
  so it agrees with the interval. The floor counts CLUSTERS: with 5 clusters in a class the cluster-robust
  variance alone is too noisy (a floor on row counts rejected a true null 0.07-0.13 of the time in
  tests/test_strata.py's designs; on cluster counts 0.006-0.048). The cost: clusters of several nearly
  independent rows are counted once, which is conservative (null rejection 0.02 with 1-3 rows per cluster).

A bootstrap within strata resamples 5 clusters in the small class of a stratum: its percentile interval
at 5 units collapses onto the observed separation (every resample of a perfectly separated stratum is
perfectly separated), which is the overconfidence this module exists to avoid.

Numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from tuco.stats.intervals import LEVEL, Interval

__all__ = ["StratumRow", "clustered_auc_ci", "stratified_auc_ci"]

_NORMAL = NormalDist()


@dataclass(frozen=True)
class StratumRow:
    """One stratum's part in a stratified AUC: its cluster and row counts per class, its own AUC and
    standard error (None when a class is empty), its weight (0 when dropped), and why it was used or not."""

    stratum: Hashable
    n_pos: int
    n_neg: int
    rows_pos: int
    rows_neg: int
    auc: float | None
    se: float | None
    weight: float
    used: bool
    reason: str


def _hanley_mcneil(a: np.ndarray, m: int, n: int) -> np.ndarray:
    """Hanley & McNeil's (1982) variance of an AUC estimate at true AUC ``a`` with m positive and n negative
    independent units (at 0.5: the Mann-Whitney null variance (m + n + 1) / 12mn)."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return np.asarray((a * (1 - a) + (m - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a)) / (m * n))


@dataclass
class _Stratum:
    auc: float
    var: float
    influence: dict[int, float]  # cluster code -> its summed (centred, scaled) placements
    m: int
    n: int


def _one_stratum(p: np.ndarray, q: np.ndarray, cp: np.ndarray, cq: np.ndarray) -> _Stratum:
    """AUC over all (positive, negative) pairs and its cluster-robust variance (Obuchowski 1997)."""
    psi = (p[:, None] > q[None, :]) + 0.5 * (p[:, None] == q[None, :])
    auc = float(psi.mean())
    big_m, big_n = len(p), len(q)
    v10 = psi.mean(axis=1) - auc  # per positive row
    v01 = psi.mean(axis=0) - auc  # per negative row
    clusters = sorted(set(cp.tolist()) | set(cq.tolist()))
    a = {c: 0.0 for c in clusters}
    b = {c: 0.0 for c in clusters}
    for c, v in zip(cp.tolist(), v10.tolist()):
        a[c] += v
    for c, v in zip(cq.tolist(), v01.tolist()):
        b[c] += v
    i10, i01, i_all = len(set(cp.tolist())), len(set(cq.tolist())), len(clusters)
    av, bv = np.array([a[c] for c in clusters]), np.array([b[c] for c in clusters])
    var = 0.0
    if i10 > 1:
        var += i10 / (i10 - 1) * float(av @ av) / big_m**2
    if i01 > 1:
        var += i01 / (i01 - 1) * float(bv @ bv) / big_n**2
    if i_all > 1:
        var += 2 * i_all / (i_all - 1) * float(av @ bv) / (big_m * big_n)
    influence = {c: a[c] / big_m + b[c] / big_n for c in clusters}
    return _Stratum(auc, max(var, 0.0), influence, i10, i01)


def _score_interval(
    estimate: float, v_emp: float, weights: np.ndarray, counts: list[tuple[int, int]], level: float
) -> tuple[float, float, float]:
    """(low, high, p): the AUC values A with (estimate - A)^2 <= z^2 max(v_emp, sum w^2 HM(A)), and the
    two-sided p against 0.5 with the same variance rule at A = 0.5."""
    z = _NORMAL.inv_cdf(0.5 + level / 2)
    grid = np.linspace(0.0, 1.0, 20001)
    v_hm = sum(w * w * _hanley_mcneil(grid, m, n) for w, (m, n) in zip(weights, counts))
    inside = (estimate - grid) ** 2 <= z * z * np.maximum(v_emp, v_hm)
    i = int(np.clip(np.searchsorted(grid, estimate), 0, len(grid) - 1))
    if not inside[i]:
        i = int(np.argmin(np.where(inside, np.abs(grid - estimate), np.inf)))
    left, right = np.flatnonzero(~inside[:i]), np.flatnonzero(~inside[i + 1 :])  # the run of inside values around i
    lo_i = int(left[-1]) + 1 if len(left) else 0
    hi_i = i + int(right[0]) if len(right) else len(grid) - 1
    low, high = min(float(grid[lo_i]), estimate), max(float(grid[hi_i]), estimate)
    v0 = max(v_emp, float(sum(w * w * _hanley_mcneil(np.array([0.5]), m, n)[0] for w, (m, n) in zip(weights, counts))))
    p = 2 * (1 - _NORMAL.cdf(abs(estimate - 0.5) / math.sqrt(v0)))
    return low, high, min(1.0, p)


def stratified_auc_ci(
    positives: Sequence[float],
    negatives: Sequence[float],
    *,
    pos_strata: Sequence[Hashable],
    neg_strata: Sequence[Hashable],
    pos_clusters: Sequence[Hashable] | None = None,
    neg_clusters: Sequence[Hashable] | None = None,
    min_per_class: int = 5,
    level: float = LEVEL,
) -> tuple[Interval, list[StratumRow]]:
    """P(a positive scores above a negative of the same stratum) + 1/2 P(tie), combined over the strata
    with at least ``min_per_class`` clusters in each class (van Elteren weights), with a cluster-robust
    score-type interval and the two-sided p against 0.5.

    Clusters: rows with the same label are dependent (one request's rows, one topic's requests), in either
    class; without labels each row is its own cluster. A stratum with fewer than ``min_per_class``
    clusters in a class is dropped and its row says so. Returns the ``Interval`` (n = (positive clusters,
    negative clusters) in the strata used; ``extra``: strata used and dropped, the cluster-robust se) and
    one ``StratumRow`` per stratum, in order of first appearance.

    Raises ValueError when no stratum has enough clusters in both classes (naming each stratum's counts),
    for mismatched lengths, or for non-finite scores.
    """
    p, q = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if len(pos_strata) != len(p) or len(neg_strata) != len(q):
        raise ValueError(
            f"one stratum per score: {len(p)} positives / {len(pos_strata)} strata, {len(q)} negatives / {len(neg_strata)} strata"
        )
    if pos_clusters is not None and len(pos_clusters) != len(p):
        raise ValueError(f"one cluster per positive: {len(p)} scores, {len(pos_clusters)} clusters")
    if neg_clusters is not None and len(neg_clusters) != len(q):
        raise ValueError(f"one cluster per negative: {len(q)} scores, {len(neg_clusters)} clusters")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise ValueError("scores must be finite (no NaN or infinity)")
    if min_per_class < 2:
        raise ValueError(f"min_per_class must be at least 2 (a variance needs two clusters per class), got {min_per_class}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    codes: dict[Hashable, int] = {}
    cp = np.array(
        [codes.setdefault(c, len(codes)) for c in (pos_clusters if pos_clusters is not None else [("pos", i) for i in range(len(p))])]
    )
    cq = np.array(
        [codes.setdefault(c, len(codes)) for c in (neg_clusters if neg_clusters is not None else [("neg", i) for i in range(len(q))])]
    )
    cp, cq = cp.astype(np.int64), cq.astype(np.int64)
    strata = list(dict.fromkeys([*pos_strata, *neg_strata]))
    sp, sq = list(pos_strata), list(neg_strata)
    rows: list[StratumRow] = []
    used: list[tuple[Hashable, _Stratum, np.ndarray, np.ndarray]] = []
    for h in strata:
        ip = np.array([s == h for s in sp], dtype=bool)
        iq = np.array([s == h for s in sq], dtype=bool)
        m, n = len(set(cp[ip].tolist())), len(set(cq[iq].tolist()))
        if m < min_per_class or n < min_per_class:
            short = [f"{k} {what} cluster{'s' if k != 1 else ''}" for k, what in ((m, "positive"), (n, "negative")) if k < min_per_class]
            reason = f"dropped: {' and '.join(short)} (< {min_per_class})"
            auc = float(((p[ip][:, None] > q[iq][None, :]) + 0.5 * (p[ip][:, None] == q[iq][None, :])).mean()) if m and n else None
            rows.append(StratumRow(h, m, n, int(ip.sum()), int(iq.sum()), auc, None, 0.0, False, reason))
            continue
        st = _one_stratum(p[ip], q[iq], cp[ip], cq[iq])
        used.append((h, st, cp[ip], cq[iq]))
        rows.append(StratumRow(h, m, n, int(ip.sum()), int(iq.sum()), st.auc, math.sqrt(st.var), 0.0, True, "used"))
    if not used:
        listing = "; ".join(f"{r.stratum!r}: {r.n_pos} positive / {r.n_neg} negative clusters" for r in rows)
        raise ValueError(f"no stratum has at least {min_per_class} clusters in both classes ({listing})")
    raw = np.array([st.m * st.n / (st.m + st.n + 1) for _, st, _, _ in used])
    weights = raw / raw.sum()
    estimate = float(sum(w * st.auc for w, (_, st, _, _) in zip(weights, used)))
    # cluster-robust variance of the combination: per-stratum variances plus covariances through clusters
    # that appear in several strata (a request attacked in two ways)
    v_emp = float(sum(w * w * st.var for w, (_, st, _, _) in zip(weights, used)))
    all_clusters = set().union(*(st.influence for _, st, _, _ in used))
    factor = len(all_clusters) / (len(all_clusters) - 1) if len(all_clusters) > 1 else 1.0
    for i in range(len(used)):
        for j in range(i + 1, len(used)):
            a, b = used[i][1].influence, used[j][1].influence
            shared = set(a) & set(b)
            if shared:
                v_emp += 2 * weights[i] * weights[j] * factor * sum(a[c] * b[c] for c in shared)
    v_emp = max(v_emp, 0.0)
    counts = [(st.m, st.n) for _, st, _, _ in used]
    low, high, pval = _score_interval(estimate, v_emp, weights, counts, level)
    weight_of = {h: float(w) for w, (h, _, _, _) in zip(weights, used)}
    rows = [replace(r, weight=weight_of.get(r.stratum, 0.0)) for r in rows]
    n_pos = len(set().union(*(set(c.tolist()) for _, _, c, _ in used)))
    n_neg = len(set().union(*(set(c.tolist()) for _, _, _, c in used)))
    method = "stratified AUC (van Elteren weights), cluster-robust | Hanley-McNeil variance, score-type interval"
    if len(used) == 1:
        method = "AUC, cluster-robust | Hanley-McNeil variance, score-type interval"
    extra = {"strata_used": float(len(used)), "strata_dropped": float(len(rows) - len(used)), "se_cluster": math.sqrt(v_emp)}
    return Interval(estimate, low, high, pval, (n_pos, n_neg), method, 0.5, extra), rows


def clustered_auc_ci(
    positives: Sequence[float],
    negatives: Sequence[float],
    *,
    pos_clusters: Sequence[Hashable] | None = None,
    neg_clusters: Sequence[Hashable] | None = None,
    min_per_class: int = 5,
    level: float = LEVEL,
) -> Interval:
    """The unstratified, clustered AUC: ``stratified_auc_ci`` with one stratum (the same estimate,
    variance, interval and p). Raises ValueError when a class has fewer than ``min_per_class`` clusters."""
    iv, _ = stratified_auc_ci(
        positives,
        negatives,
        pos_strata=[0] * len(positives),
        neg_strata=[0] * len(negatives),
        pos_clusters=pos_clusters,
        neg_clusters=neg_clusters,
        min_per_class=min_per_class,
        level=level,
    )
    return iv
