"""tuco.load_run: a run back in Python (directory or rows file), its manifest and metrics, pandas optional,
files that are not runs refused in one line, torch never imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tuco
from conftest import ENV, cli
from tuco.errors import InputError, TucoError
from tuco.runs import RunResults, load_run, open_run
from tuco.runs.results import NotARun

ROWS = [
    {"kind": "score", "id": str(i), "item": str(i), "prompt": f"p{i}", "tuco": i / 10, "layer_ftc_l1": [1.0, float(i)]} for i in range(4)
]


def write_run(out, rows=ROWS, config=None):
    with open_run(out, config or {"verb": "score"}, mode="overwrite") as run:
        run.expect(r["id"] for r in rows)
        run.write(rows)
    return out


def test_directory_and_file_give_rows_manifest_and_metrics(tmp_path):
    d = write_run(tmp_path / "exp", config={"experiment": "many-shot"})
    (d / "metrics.json").write_text(json.dumps({"experiment": "many-shot", "findings": [{"claim": "c"}]}))
    run = tuco.load_run(d)
    assert isinstance(run, RunResults) and run.rows == ROWS and len(run) == 4 and list(run) == ROWS
    assert run.manifest["config"]["experiment"] == "many-shot" and run.manifest["status"] == "finished" and run.schema == 2
    assert run.metrics["findings"] == [{"claim": "c"}]
    assert load_run(d / "rows.jsonl").metrics == run.metrics  # the run directory's rows file: same run
    f = write_run(tmp_path / "scores.jsonl")
    (tmp_path / "metrics.json").write_text("{}")  # beside a named results file: not its metrics
    assert load_run(f).rows == ROWS and load_run(f).metrics == {} and load_run(f).manifest["config"] == {"verb": "score"}


def test_parquet_rows_file(tmp_path):
    pytest.importorskip("pyarrow")
    f = write_run(tmp_path / "scores.parquet")
    run = load_run(f)
    assert [r["tuco"] for r in run.rows] == [r["tuco"] for r in ROWS] and run.manifest["status"] == "finished"


def test_to_pandas_holds_every_row_and_field(tmp_path):
    pd = pytest.importorskip("pandas")
    df = load_run(write_run(tmp_path / "s.jsonl")).to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df["tuco"]) == [r["tuco"] for r in ROWS] and df["layer_ftc_l1"][3] == [1.0, 3.0]


def test_to_pandas_without_pandas_names_the_install(tmp_path, monkeypatch):
    run = load_run(write_run(tmp_path / "s.jsonl"))
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(TucoError, match=r"pip install pandas") as err:
        run.to_pandas()
    assert "\n" not in str(err.value)


def test_what_is_not_a_run_is_refused_in_one_line(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "How do I bake bread?"}\n{"prompt": "Hi", "group": "a"}\n')
    with pytest.raises(NotARun, match="not a run"):
        load_run(prompts)
    with pytest.raises(InputError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a rows file"):
        load_run(tmp_path / "notes.txt")
    write_run(tmp_path / "suite" / "a")
    with pytest.raises(InputError, match=r"it holds runs: load each \(a\)"):
        load_run(tmp_path / "suite")
    res = cli("report", str(prompts))  # the report refuses it too, and writes nothing
    assert res.returncode == 2 and "not a run" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "prompts.report.html").exists()


def test_rows_without_a_manifest_are_still_a_run(tmp_path):
    f = tmp_path / "old.jsonl"  # schema 1: no kind, no manifest; the headline says it is TuCo
    f.write_text(json.dumps({"id": "0", "prompt": "p", "prompt_tuco": 0.4, "response": "r"}) + "\n")
    run = load_run(f)
    assert run.manifest == {} and run.schema == 1 and run.rows[0]["prompt_tuco"] == 0.4


def test_an_interrupted_run_gives_the_rows_it_kept(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), open_run(out, {"verb": "score"}, mode="new") as run:
        run.expect(r["id"] for r in ROWS)
        run.write(ROWS[:2])
        raise KeyboardInterrupt
    got = load_run(out)
    assert got.rows == ROWS[:2] and got.manifest.get("status") != "finished"


def test_load_run_is_exported_and_torch_free(tmp_path):
    write_run(tmp_path / "s.jsonl")
    code = f"import sys, tuco\nr = tuco.load_run({str(tmp_path / 's.jsonl')!r})\nprint(len(r), 'torch' in sys.modules)\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert res.stdout.split() == ["4", "False"], res.stderr[-2000:]
    assert tuco.load_run is load_run and tuco.RunResults is RunResults
