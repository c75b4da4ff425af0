"""The measured findings in README.md, docs/findings-demo.md, docs/findings-gemma.md and docs/method.md are
generated from the runs' snapshots (docs/findings/*.json, written by `docs/findings.py collect`): the documents
never drift from them, and the tables say what the snapshots say."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def findings():
    spec = importlib.util.spec_from_file_location("findings_doc", ROOT / "docs" / "findings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("doc", ["README.md", "docs/findings-demo.md", "docs/findings-gemma.md", "docs/method.md"])
def test_documents_are_generated_from_the_snapshots(findings, doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert "<!-- findings:" in text, f"{doc} has no generated findings block"
    assert findings.render(text) == text, f"{doc} drifted from docs/findings/*.json: run `make findings`"


def test_every_snapshot_is_complete(findings):
    snaps = sorted((ROOT / "docs" / "findings").glob("*.json"))
    assert snaps, "no findings snapshot"
    for path in snaps:
        snap = json.loads(path.read_text(encoding="utf-8"))
        if snap.get("kind") == "synthesis":  # a synthesis over adapters: a headline per claim, its adapters below
            assert snap["claims"] and snap["adapters"], path.name
            for c in snap["claims"]:
                assert {"experiment", "claim", "verdict", "estimate", "low", "high", "k", "tau", "i2", "adapters"} <= set(c), path.name
                if c["estimate"] is not None:
                    assert c["low"] <= c["estimate"] <= c["high"], (path.name, c["claim"])
            continue
        if snap.get("kind") == "nulls":  # null adapters: each one's primary findings, the false-positive table
            assert len(snap["nulls"]) == len(snap["primaries"]) and snap["rates"], path.name
            continue
        for name, run in snap["runs"].items():
            primary = [f for f in run["findings"] if f["primary"]]
            assert primary, f"{path.name}: {name} declares no primary claim"
            for f in run["findings"]:
                assert {"claim", "primary", "verdict", "estimate", "low", "high", "n", "paper"} <= set(f), (path.name, name)
                if f["estimate"] is not None and f["low"] is not None:
                    assert f["low"] <= f["estimate"] <= f["high"], (path.name, name, f["claim"])


def test_tables_show_the_snapshot_numbers(findings):
    """A table cell is the finding's own measured text and verdict, per snapshot column."""
    claim = {"claim": "c", "primary": True, "verdict": "not reproduced", "estimate": 0.1, "low": -0.1, "high": 0.3, "n": [12]}
    a = {"label": "pair A", "runs": {"gcg": {"findings": [dict(claim, measured="d +0.100 [-0.100, +0.300]", n_text="paired n=12")]}}}
    b = {"label": "pair B", "runs": {"gcg": {"findings": [dict(claim, verdict="reproduced", measured="d -0.2", n_text="paired n=30")]}}}
    table = findings.primary_table([a, b])
    row = next(line for line in table.splitlines() if line.startswith("| gcg: c"))
    assert "d +0.100 [-0.100, +0.300], paired n=12: not reproduced" in row
    assert "d -0.2, paired n=30: **reproduced**" in row
    header = table.splitlines()[0]
    assert header.index("pair A") < header.index("pair B")


def _write(folder, name, snapshot):
    (folder / f"{name}.json").write_text(json.dumps(snapshot), encoding="utf-8")


def _run_snapshot(label, estimate, verdict):
    finding = {"claim": "GCG lowers TuCo", "primary": True, "verdict": verdict, "estimate": estimate, "low": estimate - 0.01}
    finding |= {"high": estimate + 0.01, "n": [32], "n_text": "paired n=32", "measured": f"d {estimate:+.3f}", "p_holm": 0.01}
    side = {"claim": "words lower TuCo", "primary": False, "verdict": "exploratory: as stated (p 0.01)", "estimate": -0.1}
    side |= {"low": -0.2, "high": 0.0, "n": [32], "n_text": "paired n=32", "measured": "d -0.100"}
    return {"label": label, "runs": {"gcg": {"findings": [finding, side]}}}


def test_a_block_that_names_a_missing_snapshot_fails_make_findings(findings, tmp_path, monkeypatch, capsys):
    """The documents name only runs that exist: a block naming a snapshot that is not in docs/findings/ is
    an error naming it (render raises; the command exits 2), as is an unknown block or one naming none."""
    from tuco.errors import InputError

    monkeypatch.setattr(findings, "SNAPSHOTS", tmp_path)
    _write(tmp_path, "seed0", _run_snapshot("seed 0", -0.005, "reproduced"))
    ok = "<!-- findings:summary seed0 -->\n<!-- /findings:summary -->\n"
    assert "d -0.005, paired n=32: **reproduced**" in findings.render(ok)
    missing = "<!-- findings:summary seed0 seed2 -->\n<!-- /findings:summary -->\n"
    with pytest.raises(InputError, match=r"snapshot 'seed2' is not in .*there: seed0.*collect it"):
        findings.render(missing)
    for text, match in [
        ("<!-- findings:gcg seed2 -->\n<!-- /findings:gcg -->", "'seed2' is not in"),
        ("<!-- findings:nonsense seed0 -->\n<!-- /findings:nonsense -->", "unknown findings block 'nonsense'"),
        ("<!-- findings:summary -->\n<!-- /findings:summary -->", "names no snapshot"),
        ("<!-- findings:summary seed0 -->\n", "has no <!-- /findings:summary -->"),
        ("<!-- findings:synthesis seed0 -->\n<!-- /findings:synthesis -->", "'seed0' is a run"),
    ]:
        with pytest.raises(InputError, match=match):
            findings.render(text)
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n" + missing, encoding="utf-8")
    assert findings.main(["render", str(doc)]) == 2
    assert "error: snapshot 'seed2' is not in" in capsys.readouterr().err
    assert doc.read_text(encoding="utf-8") == "intro\n" + missing  # nothing half-written


def test_the_shipped_documents_name_only_snapshots_that_exist(findings):
    names = set()
    for doc in ("README.md", "docs/findings-demo.md", "docs/findings-gemma.md", "docs/method.md"):
        for m in findings.MARKER.finditer((ROOT / doc).read_text(encoding="utf-8")):
            names |= set(m["args"].split())
    assert names and names <= set(findings.available()), sorted(names - set(findings.available()))


def test_every_adapter_is_rendered_alike(findings, tmp_path, monkeypatch):
    """An analysis block shows every snapshot it names in the same table: the same header, a row per
    finding (primary first), each adapter's own numbers and verdicts."""
    monkeypatch.setattr(findings, "SNAPSHOTS", tmp_path)
    _write(tmp_path, "s0", _run_snapshot("seed 0", -0.005, "reproduced"))
    _write(tmp_path, "s1", _run_snapshot("seed 1", +0.002, "opposite"))
    text = findings.render("<!-- findings:gcg s0 s1 -->\n<!-- /findings:gcg -->\n")
    parts = text.split("*seed 1*")
    assert len(parts) == 2 and "*seed 0*" in parts[0]
    tables = [[line for line in p.splitlines() if line.startswith("|")] for p in parts]
    assert [t[:2] for t in tables[0:1]] == [t[:2] for t in tables[1:2]] and len(tables[0]) == len(tables[1]) == 4
    assert "| primary | GCG lowers TuCo | d -0.005 | paired n=32 | reproduced (Holm p 0.01) |" in tables[0]
    assert "| primary | GCG lowers TuCo | d +0.002 | paired n=32 | opposite (Holm p 0.01) |" in tables[1]
    assert tables[1][3].startswith("| exploratory | words lower TuCo | d -0.100 |")


def test_the_synthesis_block_shows_the_headline_and_the_spread(findings, tmp_path, monkeypatch):
    """Per primary claim: pooled estimate [Knapp-Hartung interval], the prediction interval for a new
    adapter, tau, I^2, k and the verdict; each adapter's finding in a details block below."""
    monkeypatch.setattr(findings, "SNAPSHOTS", tmp_path)
    adapters = [{"adapter": a, "measured": f"d {e:+.3f} [..]", "n_text": "paired n=32", "verdict": v} for a, e, v in
                [("s0", -0.005, "reproduced"), ("s1", 0.002, "opposite"), ("s2", -0.001, "not significant")]]  # fmt: skip
    claim = {"experiment": "gcg", "claim": "GCG lowers TuCo", "paper": "lower", "estimate": -0.0013, "low": -0.0112}
    claim |= {"high": 0.0086, "pred_low": -0.0432, "pred_high": 0.0406, "tau": 0.00351, "i2": 0.874, "k": 3, "null": 0.0}
    claim |= {"verdict": "not significant", "p_holm": 0.61, "measured": "", "adapters": adapters}
    absent = {"experiment": "jailbreak-success", "claim": "TuCo lower on jailbreaks", "paper": None, "estimate": None, "k": 0}
    absent |= {"verdict": "not measured", "measured": "0 of 3 adapters measured it", "adapters": []}
    snap = {"label": "Gemma, 3 adapters", "kind": "synthesis", "holm_family": 1, "claims": [claim, absent]}
    snap["adapters"] = [{"label": a["adapter"]} for a in adapters]
    _write(tmp_path, "syn", snap)
    text = findings.render("<!-- findings:synthesis syn -->\n<!-- /findings:synthesis -->\n")
    row = (
        "| gcg: GCG lowers TuCo | lower | -0.001 [-0.011, +0.009] | [-0.043, +0.041] | 0.00351 | 87% | 3 | not significant (Holm p 0.61) |"
    )
    assert row in text.splitlines()
    assert "| jailbreak-success: TuCo lower on jailbreaks | - | 0 of 3 adapters measured it | - | - | - | 0 | not measured |" in text
    details = text[text.index("<details>") :]
    assert text.index(row) < text.index("<details>") and "</details>" in details
    assert "| gcg: GCG lowers TuCo | s1 | d +0.002 [..] | paired n=32 | opposite |" in details
    # the summary block takes a synthesis as one more column (its pooled headline)
    _write(tmp_path, "s0", _run_snapshot("seed 0", -0.005, "reproduced"))
    summary = findings.render("<!-- findings:summary syn s0 -->\n<!-- /findings:summary -->\n")
    assert (
        "| gcg: GCG lowers TuCo | lower | -0.001 [-0.011, +0.009]; a new adapter [-0.043, +0.041], k=3: not significant "
        "| d -0.005, paired n=32: **reproduced** |"
    ) in summary


def test_the_nulls_block_and_calibrating_a_synthesis_snapshot(findings, tmp_path, monkeypatch, capsys):
    """A nulls snapshot renders as the false-positive table (count, exact interval, p, Holm p, the nulls'
    estimates, the detectable rate); `calibrate` judges a synthesis snapshot against it and records the
    source; a nulls snapshot in a runs block, or a run given to `calibrate`, is a one-line error."""
    from tuco.errors import InputError
    from tuco.experiments.synthesis import synthesize_findings
    from tuco.stats.nulls import as_dicts, false_positive_rates

    monkeypatch.setattr(findings, "SNAPSHOTS", tmp_path)
    claim = "GCG lowers TuCo"
    primaries = {
        f"null-{i}": {
            "gcg": [{"claim": claim, "primary": True, "verdict": "opposite" if i < 8 else "not significant", "estimate": 0.001 * i}]
        }
        for i in range(20)
    }
    nulls = {"kind": "nulls", "label": "20 nulls", "null": "random LoRA", "nulls": list(primaries), "primaries": primaries}
    nulls["rates"] = as_dicts(false_positive_rates(list(primaries.values())))
    _write(tmp_path, "n", nulls)
    table = findings.render("<!-- findings:nulls n -->\n<!-- /findings:nulls -->")
    row = next(line for line in table.splitlines() if line.startswith("| gcg: GCG"))
    rate = nulls["rates"][0]
    assert f"| 8 / 20 **too high** | 40% [{rate['low']:.0%}, {rate['high']:.0%}] | {rate['p']:.3g} | {rate['p_holm']:.3g} | 0 |" in row
    assert "opposite x8" in row and "+0.010 [+0.000, +0.019]" in row and f"{rate['detectable']:.0%} |" in row
    with pytest.raises(InputError, match="'n' is a nulls snapshot"):
        findings.render("<!-- findings:gcg n -->\n<!-- /findings:gcg -->")

    # a synthesis over 3 adapters on which the claim is found, then judged against the nulls
    def adapter(k: int) -> dict:
        d = -0.01 - 0.001 * k
        return {"claim": claim, "estimate": d, "low": d - 0.002, "high": d + 0.002, "p": 0.001, "n": [32], "expect": "below", "method": "t"}

    runs = [(f"s{k}", adapter(k)) for k in range(3)]
    synthesis = {
        "label": "3 seeds",
        "kind": "synthesis",
        "adapters": [{"label": a} for a, _ in runs],
        **synthesize_findings([("gcg", runs)]),
    }
    assert synthesis["claims"][0]["verdict"] == "direction consistent"
    _write(tmp_path, "syn", synthesis)
    assert findings.main(["calibrate", "syn", "--nulls", "n"]) == 0
    got = json.loads((tmp_path / "syn.json").read_text())
    assert got["claims"][0]["verdict"] == "fails null calibration" and got["calibration"]["source"] == "n"
    text = findings.render("<!-- findings:synthesis syn -->\n<!-- /findings:synthesis -->")
    assert "| fails null calibration (Holm p" in text and "| 8/20 [" in text and "Calibrated on 20 null adapters" in text
    # exploratory: the adapters' mean (-0.011) minus the nulls' (+0.0095)
    assert "adapters - nulls -0.0205 [" in text
    assert findings.main(["calibrate", "n", "--nulls", "syn"]) == 2
    assert "calibrate takes a synthesis snapshot and a nulls snapshot" in capsys.readouterr().err


def test_collect_keeps_the_adapters_card_and_earlier_commits_and_the_cards_block_shows_the_card(findings, tmp_path, monkeypatch):
    """A run's tuned checkpoint with a behaviour.json (its card: refusal rates on the test split) is kept in
    the snapshot and shown by the cards block, tuned and base, as percentages; a snapshot without a card is
    an error naming it, not an empty row. A resumed run's earlier commits are kept beside the last one."""
    from tuco.errors import InputError

    adapter = tmp_path / "adapters" / "gemma-seed7"
    adapter.mkdir(parents=True)
    rates = {"harmful_refusal": 0.875, "benign_refusal": 0.25, "lookalike_refusal": 0.5, "everyday_refusal": 0.05}
    base = {k: 0.0 for k in rates} | {"harmful_refusal": 0.025}
    test = {"n_harmful": 120, "n_benign": 80, "n_everyday": 40, "tuned": rates | {"examples": ["..."]}, "base": base}
    (adapter / "behaviour.json").write_text(json.dumps({"validation": {}, "test": test}), encoding="utf-8")
    run = tmp_path / "suite" / "gcg"
    run.mkdir(parents=True)
    metrics = {"experiment": "gcg", "findings": _run_snapshot("x", -0.005, "reproduced")["runs"]["gcg"]["findings"]}
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    manifest = {"config": {"checkpoints": [str(tmp_path / "base"), str(adapter)], "options": {}}}
    manifest |= {"versions": {"tuco_git_sha": "b" * 40}, "earlier_versions": [{"tuco_git_sha": "a" * 40}]}
    (run / "rows.manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    snap = findings.collect(tmp_path / "suite", "seed 7")
    assert snap["runs"]["gcg"]["tuco_git_sha"] == "b" * 40 and snap["runs"]["gcg"]["earlier_git_shas"] == ["a" * 40]
    assert snap["card"] == {"split": "test", "n_harmful": 120, "n_benign": 80, "n_everyday": 40, "tuned": rates, "base": base}
    monkeypatch.setattr(findings, "SNAPSHOTS", tmp_path)
    _write(tmp_path, "s7", snap)
    text = findings.render("<!-- findings:cards s7 -->\n<!-- /findings:cards -->\n")
    assert "| seed 7 | 88% (2%) | 25% | 50% | 5% | 120 harmful; 80 benign = 40 lookalikes + 40 everyday |" in text

    (adapter / "behaviour.json").unlink()
    assert "card" not in findings.collect(tmp_path / "suite", "seed 7")
    _write(tmp_path, "bare", _run_snapshot("seed 8", -0.005, "reproduced"))
    with pytest.raises(InputError, match="'bare' has no card"):
        findings.render("<!-- findings:cards bare -->\n<!-- /findings:cards -->\n")
