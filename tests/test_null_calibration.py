"""Calibration on null adapters (issue 28): the shipped snapshot docs/findings/demo-nulls.json holds, per null
adapter (a random LoRA at the demo fine-tune's weight norm: no safety training), every primary finding of the
demo suite. Here the false-positive table is recounted from those findings with the verdict labels written
out, and each primary claim's false-positive count is tested against 5% with an exact binomial test written
out here (one-sided, Holm over the claims): the test fails when any claim fires significantly more often
than 5% on nulls ("opposite" counts as firing)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import hand_holm

SNAPSHOT = Path(__file__).resolve().parents[1] / "docs" / "findings" / "demo-nulls.json"
FIRED = {
    "reproduced",
    "direction reproduced, weaker than the paper",
    "direction reproduced, stronger than the paper",
    "direction consistent",
    "opposite",
}
UNTESTABLE = {"not testable on this pair", "not measured"}


def binomial_tail(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.fixture(scope="module")
def snapshot():
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_the_table_is_the_count_of_its_findings(snapshot):
    counts: dict[tuple[str, str], list[str]] = {}
    for null in snapshot["nulls"]:
        for name, findings in snapshot["primaries"][null].items():
            for f in findings:
                counts.setdefault((name, f["claim"]), []).append(f["verdict"])
    rates = {(r["experiment"], r["claim"]): r for r in snapshot["rates"]}
    assert set(rates) == set(counts)
    for key, verdicts in counts.items():
        r = rates[key]
        assert r["nulls"] == len(verdicts) == len(snapshot["nulls"]), key
        assert r["not_testable"] == sum(v in UNTESTABLE for v in verdicts), key
        assert r["testable"] == len(verdicts) - r["not_testable"], key
        assert r["fired"] == sum(v in FIRED for v in verdicts), key


def test_no_primary_claim_fires_significantly_above_five_percent_on_nulls(snapshot):
    tested = [r for r in snapshot["rates"] if r["testable"]]
    assert tested, "no primary claim was testable on any null"
    p = [binomial_tail(r["fired"], r["testable"], 0.05) for r in tested]
    too_high = [f"{r['experiment']}: {r['claim']}: {r['fired']}/{r['testable']}" for r, q in zip(tested, hand_holm(p)) if q < 0.05]
    assert not too_high, too_high
    assert len(snapshot["nulls"]) >= 20
