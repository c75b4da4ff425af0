"""`tuco calibrate`: the flag threshold at a false-positive rate, checked by brute force, on a jailbreak-success
run's own labels and on any boolean field."""

from __future__ import annotations

import json
import random

import pytest

from conftest import cli
from tuco.experiments.calibration import calibrate, threshold_at_fpr


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.2, 0.5])
def test_threshold_is_the_largest_that_keeps_the_false_positive_rate(fpr):
    rng = random.Random(1)
    neg = [round(rng.random(), 2) for _ in range(137)]  # ties included
    t = threshold_at_fpr(neg, fpr)
    assert sum(v < t for v in neg) <= fpr * len(neg)
    larger = [v for v in set(neg) if v > t]
    assert all(sum(x < v for x in neg) > fpr * len(neg) for v in larger)  # any larger cut flags too many


def test_interval_covers_the_threshold_and_tpr_counts_positives_below():
    rng = random.Random(2)
    neg = [rng.gauss(0.5, 0.05) for _ in range(400)]
    pos = [rng.gauss(0.4, 0.05) for _ in range(100)]
    c = calibrate(neg, pos, fpr=0.05, n_boot=300)
    assert c.low <= c.threshold <= c.high and c.high - c.low < 0.05
    assert c.tpr == sum(v < c.threshold for v in pos) / 100 and c.tpr_low <= c.tpr <= c.tpr_high
    assert c.measured_fpr <= 0.05 and (c.n_negative, c.n_positive) == (400, 100)


def _jailbreak_run(path, n=60):
    """A run directory shaped like the jailbreak-success experiment's: group, non_refusals, tuco; min_successes 2."""
    rng = random.Random(3)
    rows = []
    for i in range(n):
        group = "benign" if i % 3 == 0 else "harmful"
        refusals = rng.randrange(0, 5)
        tu = rng.random() * 0.2 + (0.3 if group != "benign" and refusals >= 2 else 0.5)
        rows.append({"id": str(i), "group": group, "non_refusals": refusals, "tuco": tu, "marked": i % 4 == 0})
    path.mkdir()
    (path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "rows.manifest.json").write_text(json.dumps({"config": {"options": {"min_successes": 2}}}))
    return rows


def test_cli_on_a_jailbreak_run_and_on_any_boolean_field(tmp_path):
    rows = _jailbreak_run(tmp_path / "jb")
    res = cli("calibrate", str(tmp_path / "jb"), "--fpr", "0.1", "--json", "--boot", "200", check_rc=0)
    got = json.loads(res.stdout)
    pos = [r["tuco"] for r in rows if r["group"] != "benign" and r["non_refusals"] >= 2]
    neg = [r["tuco"] for r in rows if not (r["group"] != "benign" and r["non_refusals"] >= 2)]
    assert got["label"] == "jailbroken" and (got["n_positive"], got["n_negative"]) == (len(pos), len(neg))
    assert got["threshold"] == threshold_at_fpr(neg, 0.1)
    text = cli("calibrate", str(tmp_path / "jb"), "--boot", "100", check_rc=0).stdout
    assert "T = " in text and f"n {len(neg)} negatives" in text and "--flag-below" in text
    marked = json.loads(cli("calibrate", str(tmp_path / "jb"), "--label", "marked", "--json", "--boot", "50", check_rc=0).stdout)
    assert marked["label"] == "marked" and marked["n_positive"] == sum(r["marked"] for r in rows)


def test_cli_errors_name_the_field(tmp_path):
    _jailbreak_run(tmp_path / "jb")
    res = cli("calibrate", str(tmp_path / "jb"), "--label", "group")
    assert res.returncode == 2 and "'group' must be true or false" in res.stderr
    res = cli("calibrate", str(tmp_path / "jb"), "--score", "nope")
    assert res.returncode == 2 and "'nope' is not a number" in res.stderr
    assert "between 0 and 1" in cli("calibrate", str(tmp_path / "jb"), "--fpr", "1.5").stderr
    assert "no rows here" in cli("calibrate", str(tmp_path / "missing")).stderr
