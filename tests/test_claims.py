"""Verdicts say direction AND magnitude against the paper, primary claims are Holm-corrected together,
exploratory ones are labelled, and a verdict needs n >= 10."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from tuco.stats.claims import MIN_N, Claim, judge, judge_suite, rejudge_suite, verdict
from tuco.stats.intervals import Interval, holm


def iv(est, lo, hi, p=0.001, n=(40, 40), null=0.5):
    return Interval(est, lo, hi, p, n, "test", null)


@pytest.mark.parametrize(
    ("interval", "expect", "paper_range", "label"),
    [
        (iv(0.95, 0.90, 0.99), "above", (0.93, 1.0), "reproduced"),  # the estimate inside the paper's range
        # the review's cases: an interval that only overlaps the range is not "reproduced"
        (iv(0.62, 0.501, 0.935), "above", (0.93, 1.0), "direction reproduced, weaker than the paper"),
        (iv(0.30, 0.04, 0.56, null=0.0), "above", (0.0, 0.05), "direction reproduced, stronger than the paper"),
        (iv(-0.0005, -0.0009, -0.0001, null=0.0), "below", None, "direction consistent"),  # no paper number: never "reproduced"
        (iv(-0.30, -0.40, -0.20, null=0.0), "below", (-0.10, -0.05), "direction reproduced, stronger than the paper"),
        (iv(-0.02, -0.03, -0.01, null=0.0), "below", (-0.10, -0.05), "direction reproduced, weaker than the paper"),
        (iv(0.72, 0.60, 0.80), "above", (0.83, 0.94), "direction reproduced, weaker than the paper"),
        (iv(0.98, 0.96, 0.99), "above", (0.83, 0.94), "direction reproduced, stronger than the paper"),
        (iv(0.30, 0.20, 0.40), "above", (0.83, 0.94), "opposite"),
        (iv(0.55, 0.45, 0.65, p=0.3), "above", (0.83, 0.94), "not reproduced"),  # excludes the paper's range
        (iv(0.70, 0.45, 0.88, p=0.1), "above", (0.83, 0.94), "inconclusive"),  # cannot exclude it
        (iv(0.55, 0.45, 0.65, p=0.3), "above", None, "not significant"),
        (iv(0.90, 0.85, 0.95, n=(9, 40)), "above", (0.83, 0.94), "too few to tell (n < 10)"),
    ],
)
def test_verdict_labels(interval, expect, paper_range, label):
    assert verdict(interval, expect, interval.p, paper_range) == label


@pytest.mark.parametrize(
    ("interval", "label"),
    [
        (iv(-0.02, -0.03, -0.01, p=0.003, null=0.0), "exploratory: as stated (p 0.003)"),
        (iv(0.02, 0.01, 0.03, p=0.0004, null=0.0), "exploratory: the opposite (p 0.0004)"),
        (iv(0.0, -0.01, 0.01, p=0.41, null=0.0), "exploratory: not significant (p 0.41)"),
        (iv(0.95, 0.90, 0.99, p=1e-9), "exploratory: the opposite (p 1e-09)"),  # AUC above 0.5 stated "below": the opposite
    ],
)
def test_exploratory_claims_never_say_reproduced(interval, label):
    expect = "below"
    assert verdict(interval, expect, interval.p, (0.9, 1.0), primary=False) == label


def test_not_testable_and_small_designs():
    good = iv(-0.02, -0.03, -0.01, null=0.0, n=(6,))
    assert verdict(good, "below", 0.001, None, testable=False) == "not testable on this pair"
    assert verdict(good, "below", 0.001, None) == "too few to tell (n < 10)"  # 6 units: not enough by default
    assert verdict(good, "below", 0.001, None, min_n=4) == "direction consistent"  # a design exact at small n


def test_suite_holm_runs_over_every_primary_claim_of_every_analysis():
    a = Claim("a", iv(-0.02, -0.03, -0.01, p=0.02, null=0.0), "below", "x", None, primary=True)
    b = Claim("b", iv(-0.02, -0.03, -0.01, p=0.04, null=0.0), "below", "x", None, primary=True)
    c = Claim("c", iv(-0.02, -0.03, -0.01, p=0.001, null=0.0), "below", "x", None)  # exploratory: not in the family
    alone = judge([a])  # one analysis alone: its own family of one
    assert alone[0].verdict == "direction consistent" and alone[0].p_holm == pytest.approx(0.02)
    suite = judge_suite({"one": [a, c], "two": [b]})
    assert [f.p_holm for f in suite["one"][:1] + suite["two"]] == pytest.approx([0.04, 0.04])
    assert [f.verdict for f in suite["one"] + suite["two"]] == [
        "direction consistent",
        "exploratory: as stated (p 0.001)",
        "direction consistent",
    ]
    assert suite["one"][0].holm_family == 2
    d = Claim("d", iv(-0.02, -0.03, -0.01, p=0.03, null=0.0), "below", "x", None, primary=True)
    suite = judge_suite({"one": [a], "two": [b], "three": [d]})
    assert [f.verdict for fs in suite.values() for f in fs] == ["not significant"] * 3  # 0.02 * 3 = 0.06
    recorded = {name: [asdict(f) for f in fs] for name, fs in judge_suite({"one": [a, c], "two": [b]}).items()}
    again = rejudge_suite({"one": [asdict(f) for f in judge([a, c])], "two": [asdict(f) for f in judge([b])]})
    assert again == recorded


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
    assert [f.verdict for f in got] == ["not significant", "not significant", "exploratory: as stated (p 0.04)", "not measured"]
    assert got[2].p_holm is None and not got[2].primary and got[0].primary
    assert got[0].measured == "AUC 0.600 [0.520, 0.700]" and got[0].n == [40, 40] and got[0].n_text == "40 vs 40"
    assert MIN_N == 10
