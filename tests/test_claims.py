"""Verdicts say direction AND magnitude against the paper, primary claims are Holm-corrected together,
exploratory ones are labelled, and a verdict needs n >= 10."""

from __future__ import annotations

import pytest

from tuco.stats.claims import MIN_N, TOO_FEW, Claim, judge, verdict
from tuco.stats.intervals import Interval, holm


def iv(est, lo, hi, p=0.001, n=(40, 40), null=0.5):
    return Interval(est, lo, hi, p, n, "test", null)


@pytest.mark.parametrize(
    ("interval", "expect", "paper_range", "label"),
    [
        (iv(0.90, 0.85, 0.95), "above", (0.83, 0.94), "reproduced"),
        (iv(0.72, 0.60, 0.80), "above", (0.83, 0.94), "direction reproduced, weaker than the paper"),
        (iv(0.98, 0.96, 0.99), "above", (0.83, 0.94), "direction reproduced, stronger than the paper"),
        (iv(0.30, 0.20, 0.40), "above", (0.83, 0.94), "opposite"),
        (iv(0.55, 0.45, 0.65, p=0.3), "above", (0.83, 0.94), "not reproduced"),  # excludes the paper's range
        (iv(0.70, 0.45, 0.88, p=0.1), "above", (0.83, 0.94), "inconclusive"),  # cannot exclude it
        (iv(0.55, 0.45, 0.65, p=0.3), "above", None, "not significant"),
        (iv(-0.02, -0.03, -0.01, null=0.0), "below", None, "reproduced"),
        (iv(0.90, 0.85, 0.95, n=(9, 40)), "above", (0.83, 0.94), TOO_FEW),
    ],
)
def test_verdict_labels(interval, expect, paper_range, label):
    assert verdict(interval, expect, interval.p, paper_range) == label


def test_a_significant_interval_with_a_large_holm_p_is_not_reproduced():
    assert verdict(iv(0.6, 0.52, 0.7, p=0.04), "above", 0.12) == "not significant"


def test_judge_holm_corrects_primary_claims_only_and_puts_them_first():
    a = Claim("a", iv(0.6, 0.52, 0.7, p=0.03), "above", "AUC", None, primary=True)
    b = Claim("b", iv(0.6, 0.52, 0.7, p=0.04), "above", "AUC", None, primary=True)
    c = Claim("c", iv(0.6, 0.52, 0.7, p=0.04), "above", "AUC", None)  # exploratory: its own p
    d = Claim("d", None, "above", "AUC", None, reason="a group is empty")
    got = judge([c, d, a, b])
    assert [f.claim for f in got] == ["a", "b", "c", "d"]
    assert [f.p_holm for f in got[:2]] == pytest.approx(holm([0.03, 0.04]))
    assert holm([0.03, 0.04]) == pytest.approx([0.06, 0.06])
    assert [f.verdict for f in got] == ["not significant", "not significant", "reproduced", "not measured"]
    assert got[2].p_holm is None and not got[2].primary and got[0].primary
    assert got[0].measured == "AUC 0.600 [0.520, 0.700]" and got[0].n == [40, 40] and got[0].n_text == "40 vs 40"
    assert MIN_N == 10
