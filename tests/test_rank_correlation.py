"""Spearman's rho for a handful of units: hand-computed answers, the exact permutation p (type-I error <=
alpha by construction: checked by enumerating every ordering), the floor of the p-value at 4 units, and
the interval's coverage at n = 6, 7, 8 under Gaussian copulas. Coverage is computed over the lattice of
possible rho values (the interval is a function of rho when there are no ties), weighted by their
probabilities from 40000 simulated samples: Monte-Carlo SE about 0.001."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest

from tuco.stats.correlation import _fisher_interval, spearman_exact


def test_hand_computed_rho_and_exact_p():
    """x = 1..5, y = 2 1 4 3 5: d = -1 1 -1 1 0, sum d^2 = 4, rho = 1 - 6 * 4 / (5 * 24) = 0.8. Orderings with
    sum d^2 <= 4: the identity, 4 adjacent swaps, 3 pairs of disjoint adjacent swaps = 8 of 120; as many
    with rho <= -0.8. Two-sided p = 16/120, greater 8/120."""
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    iv = spearman_exact(x, y)
    assert iv.estimate == pytest.approx(0.8) and iv.p == pytest.approx(16 / 120) and iv.n == (5,)
    assert spearman_exact(x, y, alternative="greater").p == pytest.approx(8 / 120)
    assert spearman_exact(x, y, alternative="less").p == pytest.approx(115 / 120)  # all but the 5 with sum d^2 < 4
    assert iv.extra["exact"] == 1.0 and iv.extra["pairings"] == 120


def test_ties_use_average_ranks_and_permute_them():
    """x = 1 2 2 3 has ranks 1 2.5 2.5 4; with y = 1 3 2 4: rho = 4.5 / sqrt(4.5 * 5) = 0.948683. Of the 24
    pairings, |rho| >= 0.9487 for 4 (y's ranks 1 and 4 at the ends, either way round, the middle two in
    either order), so p = 4/24."""
    iv = spearman_exact([1, 2, 2, 3], [1, 3, 2, 4])
    assert iv.estimate == pytest.approx(4.5 / math.sqrt(22.5))
    assert iv.p == pytest.approx(4 / 24) and iv.extra["ties"] == 1.0
    from scipy import stats

    assert iv.estimate == pytest.approx(stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4])[0])


def test_four_units_never_reach_p_below_one_twelfth():
    ps = [spearman_exact([1, 2, 3, 4], list(p)).p for p in permutations([1, 2, 3, 4])]
    assert min(ps) == pytest.approx(1 / 12) and sum(p < 0.05 for p in ps) == 0
    greater = [spearman_exact([1, 2, 3, 4], list(p), alternative="greater").p for p in permutations([1, 2, 3, 4])]
    assert min(greater) == pytest.approx(1 / 24)


@pytest.mark.parametrize("y", [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.1, 0.2, 0.2, 0.4, 0.5, 0.5]])
@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_type_one_error_is_at_most_alpha_exactly(y, alternative):
    """Under independence each of the 720 orderings of y is equally likely: the share with p <= alpha is at
    most alpha for every alpha (with and without ties)."""
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    ps = np.array([spearman_exact(x, list(p), alternative=alternative).p for p in permutations(y)])
    for alpha in (0.01, 0.05, 0.1, 0.2):
        assert np.mean(ps <= alpha + 1e-12) <= alpha + 1e-12, (alpha, np.mean(ps <= alpha))


def test_monte_carlo_above_nine_units_keeps_its_level():
    """n = 10 (Monte Carlo, 2000 pairings each): rejection rate at 0.05 over 400 null samples 0.053 (SE
    0.011; bound 0.075); the (1 + hits) / (1 + draws) estimate never reaches 0; a fixed seed gives a fixed p; 200000
    pairings agree with 2000 to Monte-Carlo error."""
    rng = np.random.default_rng(0)
    ps = np.array([spearman_exact(rng.normal(size=10), rng.normal(size=10), mc_draws=2000, seed=s).p for s in range(400)])
    assert np.mean(ps < 0.05) <= 0.075 and ps.min() >= 1 / 2001
    x = rng.normal(size=12)
    y = x + 2 * rng.normal(size=12)
    a = spearman_exact(x, y)
    assert a.extra["exact"] == 0.0 and "Monte-Carlo" in a.method and a == spearman_exact(x, y)
    assert spearman_exact(x, y, mc_draws=2000).p == pytest.approx(a.p, abs=4 * math.sqrt(a.p * (1 - a.p) / 2000) + 1e-3)
    assert spearman_exact(x, x**3).p == pytest.approx(1 / 200001 * 2, abs=2e-5)  # rho = 1: only ~2/12! pairings as extreme


def _lattice_representatives(n: int) -> dict[int, tuple[int, ...]]:
    reps: dict[int, tuple[int, ...]] = {}
    for p in permutations(range(n)):
        reps.setdefault(sum((i - j) ** 2 for i, j in enumerate(p)), p)
    return reps


def _coverage(n: int, r: float, seed: int) -> tuple[float, float]:
    """(coverage of the returned interval, coverage of the Fisher z / Bonett-Wright interval) for the
    population Spearman rho of a Gaussian copula with parameter r."""
    intervals = {d: spearman_exact(np.arange(n), np.array(p, dtype=float)) for d, p in _lattice_representatives(n).items()}
    rng = np.random.default_rng(seed)
    draws = 40000
    z1 = rng.normal(size=(draws, n))
    y = r * z1 + math.sqrt(1 - r * r) * rng.normal(size=(draws, n))
    rx, ry = np.argsort(np.argsort(z1, 1), 1), np.argsort(np.argsort(y, 1), 1)
    ds, counts = np.unique(((rx - ry) ** 2).sum(1), return_counts=True)
    truth = 6 / math.pi * math.asin(r / 2)
    ours = sum(c * (intervals[d].low - 1e-9 <= truth <= intervals[d].high + 1e-9) for d, c in zip(ds, counts)) / draws
    bw = sum(c * (lambda lo, hi: lo <= truth <= hi)(*_fisher_interval(n, 1 - 6 * d / (n**3 - n), 0.025, 0.025)) for d, c in zip(ds, counts))
    return float(ours), float(bw / draws)


@pytest.mark.parametrize("n", [6, 7, 8])
def test_interval_covers_at_six_to_eight_units(n):
    """Measured (Gaussian copula r = 0, 0.3, 0.5, 0.7, 0.9): n = 6: 0.967 0.972 0.967 0.978 0.978; n = 7:
    0.950 0.967 0.963 0.970 0.977; n = 8: 0.954 0.949 0.957 0.960 0.977. The Fisher z interval with the
    Bonett-Wright variance: 0.852 at n = 6, r = 0.9 (0.919 at n = 7)."""
    covs = [_coverage(n, r, seed=10 * n + i) for i, r in enumerate([0.0, 0.3, 0.5, 0.7, 0.9])]
    assert min(c for c, _ in covs) >= 0.93, covs
    if n == 6:
        assert covs[-1][1] < 0.9, covs  # why not Bonett-Wright


def test_interval_and_p_agree_and_one_sided_intervals():
    for d, p in _lattice_representatives(6).items():
        iv = spearman_exact(np.arange(6), np.array(p, dtype=float))
        assert (iv.low > 0 or iv.high < 0) == (iv.p < 0.05), (d, iv)
        assert iv.low <= iv.estimate <= iv.high
    g = spearman_exact([1, 2, 3, 4, 5, 6, 7], [1, 3, 2, 4, 6, 5, 7], alternative="greater")
    two = spearman_exact([1, 2, 3, 4, 5, 6, 7], [1, 3, 2, 4, 6, 5, 7])
    assert g.high == 1.0 and g.low > two.low and g.p < two.p and g.low > 0
    lo = spearman_exact([1, 2, 3, 4, 5, 6, 7], [7, 5, 6, 4, 2, 3, 1], alternative="less")
    assert lo.low == -1.0 and lo.high < 0


def test_bad_inputs_raise():
    for x, y, match in [
        ([1, 2], [1, 2], "at least 3"),
        ([1, 2, 3], [1, 2], "pair up"),
        ([1, 1, 1], [1, 2, 3], "all equal"),
        ([1, 2, float("nan")], [1, 2, 3], "finite"),
    ]:
        with pytest.raises(ValueError, match=match):
            spearman_exact(x, y)
    with pytest.raises(ValueError, match="alternative"):
        spearman_exact([1, 2, 3], [1, 2, 3], alternative="both")  # type: ignore[arg-type]
