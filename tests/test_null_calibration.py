"""Calibration on null adapters (issue 28): the shipped snapshot docs/findings/demo-nulls.json holds, per null
adapter (a random LoRA at the demo fine-tune's per-module update norm: no safety training), every primary
finding of the demo suite. Here, with the statistics written out independently of tuco.stats.nulls:

- the false-positive table is the count of those findings ("opposite" fires too; "not testable" and "not
  measured" are counted apart, never as passes), its exact (Clopper-Pearson) intervals, the one-sided exact
  binomial p of "the rate exceeds 5%", Holm over the claims, and the rate 80% power detects;
- every null's recorded verdicts follow from its recorded numbers, judged in that null's suite Holm family;
- each claim's exploratory "adapters - nulls" difference is the difference of the mean estimates, its
  interval at least as wide as Welch's (scipy);
- the headline honours the calibration: a claim whose count is significantly above 5% is exactly a claim
  that the shipped synthesis (demo-synthesis.json, the README's headline) labels "fails null calibration"
  (or that does not fire there anyway); a claim that passes keeps its verdict. So the test fails when a
  claim fires too often on nulls and the documents still report what it found.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from conftest import hand_holm

FINDINGS = Path(__file__).resolve().parents[1] / "docs" / "findings"
SNAPSHOT = FINDINGS / "demo-nulls.json"
FIRED = {
    "reproduced",
    "direction reproduced, weaker than the paper",
    "direction reproduced, stronger than the paper",
    "direction consistent",
    "opposite",
}
UNTESTABLE = {"not testable on this pair", "not measured"}


def untestable(verdict: str) -> bool:
    return verdict in UNTESTABLE or verdict.startswith("too few to tell")


def binomial_tail(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.fixture(scope="module")
def snapshot():
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def _verdicts(snapshot) -> dict[tuple[str, str], list[str]]:
    counts: dict[tuple[str, str], list[str]] = {}
    for null in snapshot["nulls"]:
        for name, findings in snapshot["primaries"][null].items():
            for f in findings:
                counts.setdefault((name, f["claim"]), []).append(f["verdict"])
    return counts


def test_at_least_twenty_nulls_each_with_every_primary_claim(snapshot):
    assert snapshot["kind"] == "nulls" and len(snapshot["nulls"]) >= 20
    assert set(snapshot["primaries"]) == set(snapshot["nulls"])
    claims = {k: len(v) for k, v in _verdicts(snapshot).items()}
    assert claims and set(claims.values()) == {len(snapshot["nulls"])}, claims


def test_the_table_is_the_count_of_its_findings(snapshot):
    counts = _verdicts(snapshot)
    rates = {(r["experiment"], r["claim"]): r for r in snapshot["rates"]}
    assert set(rates) == set(counts)
    for key, verdicts in counts.items():
        r = rates[key]
        assert r["nulls"] == len(verdicts) == len(snapshot["nulls"]), key
        assert r["not_testable"] == sum(untestable(v) for v in verdicts), key
        assert r["testable"] == len(verdicts) - r["not_testable"], key
        assert r["fired"] == sum(v in FIRED for v in verdicts), key


def test_exact_intervals_binomial_p_holm_and_power(snapshot):
    tested = [r for r in snapshot["rates"] if r["testable"]]
    assert tested, "no primary claim was testable on any null"
    for r in tested:
        k, n = r["fired"], r["testable"]
        low = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
        high = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
        assert r["rate"] == pytest.approx(k / n) and r["low"] == pytest.approx(low, abs=1e-6) and r["high"] == pytest.approx(high, abs=1e-6)
        assert r["p"] == pytest.approx(binomial_tail(k, n, 0.05), rel=1e-9)
        # power: the smallest count rejecting at the first Holm step, and the rate that reaches it 80% of the time
        level = 0.05 / len(tested)
        c = next(c for c in range(n + 2) if c > n or binomial_tail(c, n, 0.05) <= level)
        if c > n:  # no count can reject at this n
            assert r["detectable"] == 1.0
            continue
        assert binomial_tail(c, n, r["detectable"]) == pytest.approx(0.8, abs=1e-6)
        assert binomial_tail(c, n, r["detectable"] - 0.005) < 0.8
    for r, q in zip(tested, hand_holm([binomial_tail(r["fired"], r["testable"], 0.05) for r in tested])):
        assert r["p_holm"] == pytest.approx(q, rel=1e-9) and r["too_high"] == (q < 0.05), r["claim"]


def test_every_null_verdict_follows_from_its_numbers(snapshot):
    from tuco.stats.claims import NOT_TESTABLE, rejudge_suite

    for null in snapshot["nulls"]:
        runs = snapshot["primaries"][null]
        judged = rejudge_suite(runs)
        for name, findings in runs.items():
            for old, new in zip(findings, judged[name]):
                if old["estimate"] is None or old["verdict"] == NOT_TESTABLE:
                    continue
                assert new["verdict"] == old["verdict"], (null, name, old["claim"])
                assert new["p_holm"] == pytest.approx(old["p_holm"], rel=1e-6), (null, name, old["claim"])


def test_a_claim_that_fires_too_often_on_nulls_is_not_reported_as_found(snapshot):
    tested = [r for r in snapshot["rates"] if r["testable"]]
    too_high = {
        (r["experiment"], r["claim"])
        for r, q in zip(tested, hand_holm([binomial_tail(r["fired"], r["testable"], 0.05) for r in tested]))
        if q < 0.05
    }
    synthesis = json.loads((FINDINGS / "demo-synthesis.json").read_text(encoding="utf-8"))
    calibration = synthesis.get("calibration") or {}
    assert calibration.get("source") == SNAPSHOT.stem, (
        "the headline is not calibrated: python docs/findings.py calibrate demo-synthesis --nulls demo-nulls"
    )
    assert calibration["nulls"] == len(snapshot["nulls"])
    for c in synthesis["claims"]:
        key = (c["experiment"], c["claim"])
        if key in too_high and c["uncalibrated_verdict"] in FIRED:
            assert c["verdict"] == "fails null calibration", key
        else:
            assert c["verdict"] == c["uncalibrated_verdict"], key
        rate = next((r for r in snapshot["rates"] if (r["experiment"], r["claim"]) == key), None)
        assert rate is not None, f"{key}: a headline claim the nulls did not run (uncalibrated)"
        assert all(c["calibration"][k] == rate[k] for k in c["calibration"] if k != "beyond_nulls"), key
        beyond = c["calibration"]["beyond_nulls"]
        ours = [a["estimate"] for a in c["adapters"] if a.get("estimate") is not None and a["verdict"] != "not testable on this pair"]
        if len(ours) < 2 or len(rate["estimates"]) < 2:
            assert beyond is None, key
            continue
        # the adapters' mean minus the nulls'; its interval at least as wide as Welch's, written out here
        theirs = rate["estimates"]
        if len(set(ours + theirs)) == 1:  # the same constant on every adapter and null: no spread to compare
            assert beyond["low"] == beyond["high"] == beyond["estimate"] == 0.0 and beyond["p"] == 1.0, key
            continue
        assert beyond["estimate"] == pytest.approx(sum(ours) / len(ours) - sum(theirs) / len(theirs), abs=1e-12), key
        welch = stats.ttest_ind(ours, theirs, equal_var=False)
        lo, hi = welch.confidence_interval(0.95)
        assert beyond["low"] <= lo + 1e-9 and beyond["high"] >= hi - 1e-9 and beyond["p"] >= welch.pvalue - 1e-9, key


def test_the_shipped_package_table_is_the_snapshots_and_tuco_demo_prints_the_failing_claims(snapshot):
    """`tuco demo` on the shipped demo pair prints, after its summary, one line per primary claim that
    fails null calibration (from the package's copy of the rates, the same as the snapshot's); nothing for
    another checkpoint (the nulls are drawn at the shipped fine-tune's norm) or another pair."""
    from tuco.demo.calibration import null_calibration_lines, shipped_rates

    shipped = shipped_rates()
    assert shipped is not None, "src/tuco/demo/null_calibration.json is missing: docs/null_calibration.py collect ... --package"
    assert shipped["nulls"] == snapshot["nulls"]
    assert shipped["rates"] == [{k: v for k, v in r.items() if k != "estimates"} for r in snapshot["rates"]]
    lines = null_calibration_lines("demo", True)
    failing = [r for r in snapshot["rates"] if r["too_high"]]
    assert len(lines) == len(failing)
    for line, r in zip(lines, failing):
        assert line.startswith(f"null calibration: {r['experiment']} fires on {r['fired']}/{r['testable']} null adapters")
    assert null_calibration_lines("demo", False) == [] and null_calibration_lines("gemma", True) == []
