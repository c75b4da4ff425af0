"""The small statistics (TPR at FPR, k-fold alpha, quantile, bootstrap difference) against brute force."""

from __future__ import annotations

import random

import pytest

from tuco.stats.summary import bootstrap_mean_diff, cross_validated_alpha, fold_ids, quantile, tpr_at_fpr


def test_tpr_at_fpr():
    assert tpr_at_fpr([0.9, 0.8, 0.1], [0.5, 0.4, 0.3, 0.2], 0.0) == pytest.approx(2 / 3)


def test_bootstrap_mean_diff_is_the_difference_and_pairing_narrows_it():
    """The estimate is mean(b) - mean(a); a constant paired shift has a zero-width interval at the shift;
    pairing removes the between-item spread that the unpaired interval keeps."""
    rng = random.Random(1)
    a = [rng.gauss(0, 1) for _ in range(30)]
    d, lo, hi = bootstrap_mean_diff(a, [x + 0.5 for x in a], paired=True, n_boot=200)
    assert d == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    b = [x + 0.5 + rng.gauss(0, 0.05) for x in a]
    d, lo, hi = bootstrap_mean_diff(a, b, paired=True, n_boot=500)
    assert d == pytest.approx(sum(b) / 30 - sum(a) / 30) and lo < d < hi and lo > 0.45 and hi < 0.55
    _, ulo, uhi = bootstrap_mean_diff(a, b, paired=False, n_boot=500)
    assert uhi - ulo > 5 * (hi - lo) and ulo < 0.5 < uhi
    with pytest.raises(ValueError, match="same length"):
        bootstrap_mean_diff([1.0], [1.0, 2.0], paired=True)


def test_quantile_interpolates_linearly():
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert quantile([0.0, 10.0], 0.25) == pytest.approx(2.5)
    assert quantile([5.0], 0.9) == 5.0


def test_cross_validated_alpha_matches_a_brute_force_loop():
    rng = random.Random(3)
    for seed in range(5):
        grid = [0.75, 1.0, 1.25]
        correct = {a: [rng.random() < 0.5 + 0.1 * (a == 1.25) for _ in range(20)] for a in grid}
        got = cross_validated_alpha(correct, 5, seed, "max")
        fold = fold_ids(20, 5, seed)
        hits = ref = 0
        for f in range(5):
            train = [i for i in range(20) if fold[i] != f]
            acc = {a: sum(correct[a][i] for i in train) / len(train) for a in grid}
            best = max(grid, key=lambda a: (acc[a], -abs(a - 1.0), -a))
            hits += sum(correct[best][i] for i in range(20) if fold[i] == f)
            ref += sum(correct[1.0][i] for i in range(20) if fold[i] == f)
        assert got["delta"] == pytest.approx((hits - ref) / 20)
        assert sum(got["item_delta"]) / 20 == pytest.approx(got["delta"])
