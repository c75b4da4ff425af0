"""The intervals tuco's verdicts rest on: known answers, and coverage checked by simulation (>= 93% at
nominal 95% for n = 10, 20 and 40 on skewed and on binary data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import brute_auc
from tuco.stats.intervals import (
    auc_ci,
    detectable_effect,
    diff_ci,
    holm,
    mean_ci,
    paired_diff_ci,
    paired_proportion_diff_ci,
    proportion_ci,
    slope,
)

NS = (10, 20, 40)


def _coverage(make, truth, interval, sims, seed):
    rng = np.random.default_rng(seed)
    hits = 0
    for s in range(sims):
        got = interval(*make(rng), s)
        hits += got.low - 1e-12 <= truth <= got.high + 1e-12
    return hits / sims


@pytest.mark.slow
@pytest.mark.parametrize("n", NS)
def test_mean_interval_covers_skewed_data(n):
    """Exponential values (skewness 2) and differences of exponentials: the union of t and studentized
    bootstrap covers the true mean at least 93% of the time (percentile bootstrap: ~87% at n = 10)."""
    cov = _coverage(lambda r: (r.exponential(1.0, n),), 1.0, lambda x, s: mean_ci(x, seed=s, n_boot=1000), 800, n)
    assert cov >= 0.93, cov
    cov = _coverage(
        lambda r: (r.exponential(1.0, n), r.exponential(1.0, n) * 0.5 + r.exponential(0.5, n)),
        0.0,
        lambda a, b, s: paired_diff_ci(a, b, seed=s),
        800,
        n + 1,
    )
    assert cov >= 0.93, cov


@pytest.mark.slow
@pytest.mark.parametrize("n", NS)
def test_difference_of_independent_means_covers_skewed_data(n):
    cov = _coverage(
        lambda r: (r.exponential(2.0, n), r.exponential(1.0, n)), -1.0, lambda a, b, s: diff_ci(a, b, seed=s, n_boot=1000), 600, n
    )
    assert cov >= 0.93, cov


# (P(before=1, after=1), P(1, 0), P(0, 1), P(0, 0)): moderate change, rare change, near-complete change,
# symmetric churn (no change on average)
CELLS = [(0.3, 0.05, 0.3, 0.35), (0.5, 0.0, 0.05, 0.45), (0.0, 0.0, 0.8, 0.2), (0.2, 0.3, 0.3, 0.2)]


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("cells", CELLS)
def test_paired_binary_interval_covers(n, cells):
    """Exact coverage: every table (n11, n10, n01, n00) of n items, weighted by its multinomial probability."""
    truth, cover = cells[2] - cells[1], 0.0
    for n11 in range(n + 1):
        for n10 in range(n + 1 - n11):
            for n01 in range(n + 1 - n11 - n10):
                n00 = n - n11 - n10 - n01
                counts = (n11, n10, n01, n00)
                if any(c and not q for c, q in zip(counts, cells)):
                    continue
                prob = math.exp(math.lgamma(n + 1) + sum(c * math.log(q) - math.lgamma(c + 1) for c, q in zip(counts, cells) if c))
                before = [1] * (n11 + n10) + [0] * (n01 + n00)
                after = [1] * n11 + [0] * n10 + [1] * n01 + [0] * n00
                got = paired_diff_ci(before, after)
                cover += prob * (got.low - 1e-12 <= truth <= got.high + 1e-12)
    assert cover >= 0.93, cover


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_proportion_interval_covers(n, p):
    """Exact coverage over k = 0..n (Clopper-Pearson never undercovers)."""
    cover = sum(
        math.comb(n, k) * p**k * (1 - p) ** (n - k) * (lambda g: g.low <= p <= g.high)(proportion_ci([1] * k + [0] * (n - k)))
        for k in range(n + 1)
    )
    assert cover >= 0.95 - 1e-9, cover


@pytest.mark.slow
@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("shift", [0.0, 0.954, 1.812])  # true AUC 0.5, 0.75, 0.9
def test_auc_interval_covers(n, shift):
    truth = 0.5 * (1 + math.erf(shift / 2))  # P(N(shift,1) > N(0,1))
    cov = _coverage(lambda r: (r.normal(shift, 1, n), r.normal(0, 1, n)), truth, lambda a, b, s: auc_ci(a, b), 500, n)
    assert cov >= 0.93, cov


def test_stratified_auc_ignores_what_separates_strata():
    """Strata far apart (an encoding shifts TuCo for everyone): within strata the groups do not separate, so
    the stratified AUC stays near 0.5 while the pooled AUC is far from it."""
    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1], 30)
    pos = rng.normal(0, 1, 60) + 3 * strata  # positives mostly in stratum 1
    neg = rng.normal(0, 1, 60) + 3 * strata
    pos_strata, neg_strata = strata, strata
    keep_pos = (strata == 1) | (rng.random(60) < 0.2)
    keep_neg = (strata == 0) | (rng.random(60) < 0.2)
    pooled = auc_ci(pos[keep_pos], neg[keep_neg])
    strat = auc_ci(pos[keep_pos], neg[keep_neg], pos_strata=pos_strata[keep_pos], neg_strata=neg_strata[keep_neg])
    assert pooled.low > 0.7  # pooled: "separates", by stratum composition alone
    assert strat.low < 0.5 < strat.high


def test_known_answers():
    x = [1.0, 2.0, 3.0, 4.0, 10.0]
    got = mean_ci(x)
    from scipy import stats

    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(x), scale=stats.sem(x))
    assert got.estimate == pytest.approx(4.0) and got.low <= lo + 1e-9 and got.high >= hi - 1e-9  # contains the t interval
    assert got.p >= stats.ttest_1samp(x, 0).pvalue - 1e-12
    assert mean_ci([0.0, 0.0, 0.0, 1.0], clusters=["a", "a", "b", "b"]).n == (2,)  # items counted once
    pos, neg = [0.9, 0.8, 0.8, 0.3], [0.7, 0.8, 0.1]
    assert auc_ci(pos, neg).estimate == pytest.approx(brute_auc(pos, neg))
    for a, b in (([0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]), ([0.1, 0.2], [0.5, 0.6, 0.7])):  # perfect separation
        iv = auc_ci(a, b)
        assert iv.estimate in (0.0, 1.0) and iv.low <= iv.estimate <= iv.high and iv.high - iv.low > 0.2
    # Bonett-Price by hand: 10 items, 4 go 0 -> 1, 1 goes 1 -> 0
    before = [0, 0, 0, 0, 1, 1, 1, 0, 0, 1]
    after = [1, 1, 1, 1, 0, 1, 1, 0, 0, 1]
    bp = paired_proportion_diff_ci(before, after)
    p_up, p_down = 5 / 12, 2 / 12
    se = math.sqrt((p_up + p_down - (p_up - p_down) ** 2) / 12)
    assert bp.estimate == pytest.approx(0.3)
    assert (bp.low, bp.high) == pytest.approx((p_up - p_down - 1.959964 * se, p_up - p_down + 1.959964 * se), abs=1e-5)
    assert paired_diff_ci(before, after).method.startswith("Bonett")
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0) and slope([1, 1], [0, 5]) is None
    wide = mean_ci(np.random.default_rng(1).normal(0, 1, 10))
    assert detectable_effect(wide) == pytest.approx((1.959964 + 0.841621) * (wide.high - wide.low) / (2 * 1.959964), rel=1e-5)


def test_auc_interval_at_perfect_separation():
    """Perfectly separated groups (common on small pairs): a tight interval below 1 and a tiny p-value, not
    the [0.03, 1.00] a logit-scale delta method gives; the lower bound falls as n shrinks."""
    iv = auc_ci(np.linspace(1, 2, 32), np.linspace(0, 0.9, 32))
    assert iv.estimate == 1.0 and iv.high == 1.0 and 0.9 < iv.low < 0.97 and iv.p < 1e-6
    small = auc_ci(np.linspace(1, 2, 6), np.linspace(0, 0.9, 6))
    assert small.low < iv.low and small.p > iv.p
    # the test and the interval agree: 0.5 is outside exactly when p < 0.05
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = auc_ci(rng.normal(0.6, 1, 12), rng.normal(0, 1, 12))
        assert (a.low > 0.5 or a.high < 0.5) == (a.p < 0.05)
