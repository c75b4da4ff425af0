"""The measured findings in README.md and docs/findings-gemma.md are generated from the runs' snapshots
(docs/findings/*.json, written by `docs/findings.py collect`): the documents never drift from them, and the
tables say what the snapshots say."""

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


@pytest.mark.parametrize("doc", ["README.md", "docs/findings-gemma.md"])
def test_documents_are_generated_from_the_snapshots(findings, doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert "<!-- findings:" in text, f"{doc} has no generated findings block"
    assert findings.render(text) == text, f"{doc} drifted from docs/findings/*.json: run `make findings`"


def test_every_snapshot_is_complete(findings):
    snaps = sorted((ROOT / "docs" / "findings").glob("*.json"))
    assert snaps, "no findings snapshot"
    for path in snaps:
        snap = json.loads(path.read_text(encoding="utf-8"))
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
