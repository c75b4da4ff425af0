"""The shipped numbers re-derive: every finding of every snapshot in docs/findings/*.json is recomputed from
the per-item inputs the snapshot keeps (``tuco.stats.recompute``) and its verdict re-judged with the Holm
family it was judged in (``tuco.stats.claims.rejudge_suite``: the suite's, for a ``tuco demo`` snapshot);
a synthesis snapshot is synthesised again from its adapters' rows. Findings that carry no inputs are
skipped one by one, each with its reason (``pytest -rs`` lists them); a snapshot may lack inputs only
when it is listed in ``PREDATE_INPUTS`` below. The checker itself is shown to catch a changed number or
verdict on a snapshot collected from tiny runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tuco.stats.claims import NOT_TESTABLE, rejudge_suite, verdict
from tuco.stats.intervals import Interval
from tuco.stats.recompute import compute, recompute

ROOT = Path(__file__).resolve().parents[1]
#: Runs and syntheses; the nulls snapshots (no per-item inputs) are re-judged in tests/test_null_calibration.py.
SHIPPED = sorted(p for p in (ROOT / "docs" / "findings").glob("*.json") if json.loads(p.read_text(encoding="utf-8")).get("kind") != "nulls")
#: Snapshots collected before findings carried their per-item inputs (and p, direction, paper range): their
#: numbers cannot be re-derived until the runs are collected again with docs/findings.py collect.
PREDATE_INPUTS = {}
REL, ABS = 1e-6, 1e-9  # the same seeded computations: only floating-point summation order may differ


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _findings_module():
    spec = importlib.util.spec_from_file_location("findings_doc", ROOT / "docs" / "findings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _has_inputs(snapshot: dict) -> bool:
    """Whether the snapshot was collected with inputs (a ``without_inputs`` list), for runs or a synthesis."""
    return "without_inputs" in snapshot


def _close(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a == pytest.approx(b, rel=REL, abs=ABS))


def finding_problems(f: dict) -> list[str]:
    """What differs between a finding's recorded numbers and those its inputs give."""
    iv = recompute(f["inputs"])
    got = {"estimate": iv.estimate, "low": iv.low, "high": iv.high, "p": iv.p}
    out = [f"{k}: recorded {f.get(k)!r}, inputs give {v!r}" for k, v in got.items() if k in f and not _close(f[k], v)]
    if list(iv.n) != list(f["n"]):
        out.append(f"n: recorded {f['n']}, inputs give {list(iv.n)}")
    return out


def _recomputed(f: dict) -> dict:
    if not f.get("inputs") or f.get("estimate") is None:
        return dict(f)
    iv = recompute(f["inputs"])
    return dict(f, estimate=iv.estimate, low=iv.low, high=iv.high, p=iv.p, n=list(iv.n), null=iv.null, method=iv.method)


def verdict_problems(snapshot: dict) -> list[str]:
    """Re-judge every finding from its recomputed numbers: the primaries in the snapshot's Holm family (the
    suite's or each run's), the exploratory ones on their own p; what differs from the recorded labels."""
    runs = {name: [_recomputed(f) for f in run["findings"]] for name, run in snapshot["runs"].items()}
    if snapshot.get("family") == "suite":
        judged = rejudge_suite(runs)
    else:
        judged = {name: rejudge_suite({name: fs})[name] for name, fs in runs.items()}
    out = []
    for name, fs in judged.items():
        for old, new in zip(snapshot["runs"][name]["findings"], fs):
            if old.get("estimate") is None or old["verdict"] == NOT_TESTABLE:
                continue
            if not old.get("primary"):
                iv = Interval(
                    new["estimate"], new["low"], new["high"], new["p"], tuple(new["n"]), new.get("method", ""), new.get("null") or 0.0
                )
                paper_range = tuple(new["paper_range"]) if new.get("paper_range") else None
                new = dict(new, verdict=verdict(iv, new["expect"], new["p"], paper_range, primary=False, min_n=int(new.get("min_n") or 10)))
            where = f"{name}: {old['claim']}"
            if new["verdict"] != old["verdict"]:
                out.append(f"{where}: recorded {old['verdict']!r}, re-judged {new['verdict']!r}")
            if old.get("primary") and not _close(old.get("p_holm"), new.get("p_holm")):
                out.append(f"{where}: Holm p recorded {old.get('p_holm')}, re-judged {new.get('p_holm')}")
            if old.get("primary") and old.get("holm_family") != new.get("holm_family"):
                out.append(f"{where}: Holm family recorded {old.get('holm_family')}, re-judged {new.get('holm_family')}")
    return out


def synthesis_problems(snapshot: dict) -> list[str]:
    """Synthesise every claim again from its adapters' rows (their numbers recomputed from their inputs
    first) and compare the headline and the verdict with the recorded ones."""
    from tuco.experiments.synthesis import calibrate_synthesis, synthesize_findings

    per_claim = [(c["experiment"], [(a["adapter"], _recomputed(a)) for a in c["adapters"]]) for c in snapshot["claims"]]
    again = synthesize_findings(per_claim)
    if snapshot.get("calibration"):  # judged against a nulls snapshot: judge it so again
        source = snapshot["calibration"]["source"]
        if not (ROOT / "docs" / "findings" / f"{source}.json").is_file():
            return [f"calibrated against {source!r}, not a snapshot in docs/findings/ (docs/findings.py calibrate)"]
        again = calibrate_synthesis(again, _load(ROOT / "docs" / "findings" / f"{source}.json"), source)
    out = []
    if again["holm_family"] != snapshot["holm_family"]:
        out.append(f"Holm family: recorded {snapshot['holm_family']}, again {again['holm_family']}")
    for old, new in zip(snapshot["claims"], again["claims"]):
        for key in ("estimate", "low", "high", "p", "p_holm", "pred_low", "pred_high", "tau", "i2"):
            if not _close(old.get(key), new.get(key)):
                out.append(f"{old['claim']}: {key} recorded {old.get(key)!r}, again {new.get(key)!r}")
        if old["verdict"] != new["verdict"]:
            out.append(f"{old['claim']}: recorded {old['verdict']!r}, again {new['verdict']!r}")
        was, now = (old.get("calibration") or {}).get("beyond_nulls") or {}, (new.get("calibration") or {}).get("beyond_nulls") or {}
        for key in ("estimate", "low", "high", "p"):
            if not _close(was.get(key), now.get(key)):
                out.append(f"{old['claim']}: adapters - nulls {key} recorded {was.get(key)!r}, again {now.get(key)!r}")
    return out


def _cases() -> list:
    cases = []
    for path in SHIPPED:
        snap = _load(path)
        if snap.get("kind") == "synthesis":
            rows = [(f"{c['experiment']}/{c['claim'][:40]}/{a['adapter']}", a) for c in snap["claims"] for a in c.get("adapters") or []]
        else:
            rows = [(f"{name}/{f['claim'][:40]}", f) for name, run in snap["runs"].items() for f in run["findings"]]
        cases += [pytest.param(path.stem, f, id=f"{path.stem}/{label}") for label, f in rows if f.get("estimate") is not None]
    return cases


def test_snapshots_without_inputs_are_the_listed_ones():
    """A snapshot may lack inputs only when listed (with its reason) in PREDATE_INPUTS; a listed one that
    has been collected again with inputs must leave the list."""
    lacking = {p.stem for p in SHIPPED if not _has_inputs(_load(p))}
    assert lacking <= set(PREDATE_INPUTS), f"collected without inputs and not listed: {sorted(lacking - set(PREDATE_INPUTS))}"
    stale = {n for n in PREDATE_INPUTS if (ROOT / "docs" / "findings" / f"{n}.json").exists()} - lacking
    assert not stale, f"these now carry inputs: take them out of PREDATE_INPUTS: {sorted(stale)}"


@pytest.mark.parametrize(("snapshot", "finding"), _cases())
def test_every_shipped_finding_recomputes_from_its_inputs(snapshot, finding):
    if not finding.get("inputs"):
        snap = _load(ROOT / "docs" / "findings" / f"{snapshot}.json")
        if snapshot in PREDATE_INPUTS:
            pytest.skip(f"{snapshot}: no per-item inputs: {PREDATE_INPUTS[snapshot]}")
        listed = [line for line in snap.get("without_inputs", []) if finding["claim"] in line]
        assert listed, f"{snapshot}: {finding['claim']} has no inputs and the snapshot does not list it in without_inputs"
        pytest.skip(f"{snapshot}: {listed[0]}: the analysis computed it without tuco.stats.recompute (listed by collect)")
    assert not finding_problems(finding), finding_problems(finding)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_verdict_rejudges_with_its_holm_family(path):
    snap = _load(path)
    if snap.get("kind") == "synthesis":
        assert not synthesis_problems(snap), synthesis_problems(snap)
        return
    if not _has_inputs(snap):
        pytest.skip(f"{path.stem}: no p, direction or paper range recorded: {PREDATE_INPUTS.get(path.stem, 'not listed')}")
    assert not verdict_problems(snap), verdict_problems(snap)


# --- the checker on a snapshot collected from tiny runs: it passes, and it catches what was changed ---------


def _tiny_suite(root: Path, *, shift: float = -0.01, seed: int = 0) -> Path:
    """Two analyses judged as one suite (one Holm family over their primaries), written as tuco writes them."""
    from tuco.stats.claims import Claim, judge_suite

    rng = np.random.default_rng(seed)
    before = rng.normal(0.3, 0.02, 24)
    diff, diff_in = compute("paired_diff_ci", before=before.tolist(), after=(before + shift + rng.normal(0, 0.01, 24)).tolist())
    auc, auc_in = compute("auc_ci", positives=rng.normal(1, 1, 24).tolist(), negatives=rng.normal(0, 1, 24).tolist())
    explo, explo_in = compute("mean_ci", values=rng.normal(0.002, 0.01, 24).tolist())
    claims = {
        "gcg": [
            Claim("GCG lowers TuCo", diff, "below", "TuCo change", "lower", primary=True, inputs=diff_in),
            Claim("a side claim", explo, "above", "mean", None, inputs=explo_in),
            Claim("not measured here", None, "above", "x", None, reason="no rows"),
        ],
        "web-vs-chat": [Claim("Web lower", auc, "above", "AUC", "0.93-1.0", primary=True, paper_range=(0.93, 1.0), inputs=auc_in)],
    }
    for name, findings in judge_suite(claims).items():
        d = root / name
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"experiment": name, "findings": [f.__dict__ for f in findings]}))
        (d / "rows.manifest.json").write_text(json.dumps({"config": {"checkpoints": ["a", "b"]}, "seconds": 1.0}))
    return root


def test_a_collected_snapshot_rederives_and_a_changed_number_or_verdict_is_caught(tmp_path):
    findings = _findings_module()
    snap = json.loads(json.dumps(findings.collect(_tiny_suite(tmp_path / "suite"), "tiny")))
    assert snap["family"] == "suite" and snap["without_inputs"] == [] and _has_inputs(snap)
    gcg = snap["runs"]["gcg"]["findings"]
    assert gcg[0]["holm_family"] == 2 and gcg[0]["inputs"]["fn"] == "paired_diff_ci"
    assert all(not finding_problems(f) for run in snap["runs"].values() for f in run["findings"] if f["inputs"])
    assert verdict_problems(snap) == []

    changed = json.loads(json.dumps(snap))
    changed["runs"]["gcg"]["findings"][0]["estimate"] += 0.001
    assert any(p.startswith("estimate") for p in finding_problems(changed["runs"]["gcg"]["findings"][0]))
    changed = json.loads(json.dumps(snap))
    changed["runs"]["gcg"]["findings"][0]["inputs"]["after"][0] += 0.05  # a per-item value changed
    assert finding_problems(changed["runs"]["gcg"]["findings"][0])
    changed = json.loads(json.dumps(snap))
    f = changed["runs"]["web-vs-chat"]["findings"][0]
    f["verdict"] = "reproduced" if f["verdict"] != "reproduced" else "opposite"
    assert any("web-vs-chat: Web lower: recorded" in p for p in verdict_problems(changed))
    # judged per run instead of as a suite: the Holm p and family differ
    changed = json.loads(json.dumps(snap))
    changed["family"] = "run"
    assert any("Holm family recorded 2, re-judged 1" in p for p in verdict_problems(changed))


def test_collect_lists_findings_without_inputs(tmp_path, capsys):
    findings = _findings_module()
    suite = _tiny_suite(tmp_path / "suite")
    metrics = json.loads((suite / "gcg" / "metrics.json").read_text())
    metrics["findings"][1]["inputs"] = None
    (suite / "gcg" / "metrics.json").write_text(json.dumps(metrics))
    assert findings.collect(suite, "tiny")["without_inputs"] == ["gcg: a side claim"]
    out = tmp_path / "docs" / "snap.json"
    assert findings.main(["collect", str(suite), "--label", "tiny", "--out", str(out)]) == 0  # the one command
    assert json.loads(out.read_text()) == json.loads(json.dumps(findings.collect(suite, "tiny")))
    assert "without per-item inputs (cannot be re-derived): gcg: a side claim" in capsys.readouterr().err
    assert findings.main(["collect", str(tmp_path / "nothing"), "--label", "x", "--out", str(out)]) == 2


def test_a_synthesis_snapshot_resynthesises_and_a_change_is_caught(tmp_path):
    from tuco.experiments.synthesis import synthesize_runs

    findings = _findings_module()
    runs = [_tiny_suite(tmp_path / f"seed{k}", shift=s, seed=k) for k, s in enumerate([-0.010, -0.008, -0.012])]
    out = tmp_path / "syn"
    out.mkdir()
    (out / "synthesis.json").write_text(json.dumps(synthesize_runs(runs, ["s0", "s1", "s2"]), default=str))
    snap = json.loads(json.dumps(findings.collect_synthesis(out, "three seeds")))
    assert snap["kind"] == "synthesis" and snap["holm_family"] == 2 and len(snap["claims"]) == 2
    assert all(a["inputs"] for c in snap["claims"] for a in c["adapters"]) and snap["without_inputs"] == []
    assert synthesis_problems(snap) == []
    changed = json.loads(json.dumps(snap))
    changed["claims"][0]["adapters"][1]["inputs"]["after"][3] -= 0.2
    assert any("estimate recorded" in p for p in synthesis_problems(changed))
    changed = json.loads(json.dumps(snap))
    changed["claims"][1]["verdict"] = "opposite"
    assert any("recorded 'opposite'" in p for p in synthesis_problems(changed))
