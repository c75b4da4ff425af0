"""Separation statistics and intervals, against brute force and simulation."""

from __future__ import annotations

import random

import pytest

from conftest import brute_auc
from tuco.stats import bootstrap_auc, bootstrap_mean, bootstrap_mean_diff, cross_validated_alpha, fold_ids, roc_auc, tpr_at_fpr, verdict


def test_auc_equals_pair_enumeration_with_ties():
    rng = random.Random(0)
    for _ in range(20):
        pos = [rng.choice([0.1, 0.2, 0.3, 0.5]) for _ in range(rng.randint(1, 9))]
        neg = [rng.choice([0.1, 0.2, 0.4]) for _ in range(rng.randint(1, 9))]
        assert roc_auc(pos, neg) == pytest.approx(brute_auc(pos, neg))


def test_tpr_at_fpr():
    assert tpr_at_fpr([0.9, 0.8, 0.1], [0.5, 0.4, 0.3, 0.2], 0.0) == pytest.approx(2 / 3)


def test_intervals_cover_and_verdicts_follow_them():
    rng = random.Random(1)
    pos = [rng.gauss(1.0, 1) for _ in range(60)]
    neg = [rng.gauss(0.0, 1) for _ in range(60)]
    lo, hi = bootstrap_auc(pos, neg, n_boot=500)
    assert lo < roc_auc(pos, neg) < hi and lo > 0.5 and verdict(lo, hi, 0.5, "above") == "reproduced"
    assert verdict(lo, hi, 0.5, "below") == "opposite"
    same = [rng.gauss(0, 1) for _ in range(30)]
    d, lo, hi = bootstrap_mean_diff(same, [x + rng.gauss(0, 0.01) for x in same], paired=True, n_boot=500)
    assert lo < 0.02 and hi > -0.02
    m, lo, hi = bootstrap_mean([1.0, 2.0, 3.0], n_boot=200)
    assert m == 2.0 and lo <= m <= hi
    assert verdict(-0.1, 0.1, 0.0, "above") == "not significant"


def test_interval_coverage_is_about_95_percent():
    """Simulation: the mean's interval covers the true mean in about 95% of samples."""
    rng = random.Random(5)
    covered = 0
    for trial in range(300):
        sample = [rng.gauss(0.3, 1) for _ in range(40)]
        _, lo, hi = bootstrap_mean(sample, n_boot=400, seed=1000 + trial)
        covered += lo <= 0.3 <= hi
    assert 0.90 <= covered / 300 <= 0.98


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
