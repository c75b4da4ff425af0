"""The CLI for scripts and narrow terminals: tables that never cut ids or numbers, --quiet and --json,
repeated flags refused, errors that name flags, score over several alphas, Ctrl-C that says what was kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
from tests.conftest import ENV, cli, cli_process

import tuco

LONG_ID = "redteam-2024-batch-07-request-000123"


def prompt_file(tmp_path, n=3):
    path = tmp_path / "p.jsonl"
    rows = [{"id": f"{LONG_ID}-{i}", "prompt": f"{i} " + "a long prompt that fills the terminal line " * 4} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def assert_whole_at_80(stderr, out):
    lines = stderr.splitlines()
    table = [line for line in lines if set(line) & set("│┃━")]
    assert len(table) >= 5 and all(len(line) <= 80 for line in table), "\n".join(lines)
    for row in tuco.load_run(out).rows:
        line = next(line for line in lines if row["id"] in line)  # the whole id
        assert f"{row['tuco']:.4f}" in line and str(row["n_tokens"]) in line  # the whole number
        assert line.rstrip().endswith("…")  # the prompt is what gets cut, with an ellipsis


def test_table_at_80_columns_keeps_ids_and_numbers_whole(tmp_path, models_args, monkeypatch):
    from tuco.cli import display

    monkeypatch.setattr(display.err_console, "width", 80)
    out = tmp_path / "run"
    res = cli("score", *models_args, "--prompts", str(prompt_file(tmp_path)), "--out", str(out), check_rc=0)
    assert_whole_at_80(res.stderr, out)


@pytest.mark.slow
def test_table_at_80_columns_in_a_pipe(tmp_path, models_args):
    out = tmp_path / "run"
    res = cli_process("score", *models_args, "--prompts", str(prompt_file(tmp_path)), "--out", str(out), env={**ENV, "COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    assert_whole_at_80(res.stderr, out)


def test_quiet_prints_nothing_and_json_prints_a_summary(tmp_path, models_args):
    path = prompt_file(tmp_path)
    quiet = cli("score", *models_args, "--prompts", str(path), "--out", str(tmp_path / "q"), "--quiet", check_rc=0)
    assert quiet.stdout == "" and quiet.stderr.strip() == ""
    res = cli("score", *models_args, "--prompts", str(path), "--out", str(tmp_path / "j"), "--json", check_rc=0)
    summary = json.loads(res.stdout)
    rows = tuco.load_run(tmp_path / "j").rows
    assert summary["n_rows"] == len(rows) == 3 and summary["n_skipped"] == 0
    assert summary["alphas"]["1.0"]["tuco"]["mean"] == pytest.approx(sum(r["tuco"] for r in rows) / 3)
    printed = json.loads(cli("generate", *models_args, "--prompt", "Hi", "--max-new-tokens", "3", "--json", check_rc=0).stdout)
    assert printed["rows"][0]["id"] == "0" and "mean_tuco" in printed["alphas"]["1.0"]


def test_score_takes_a_comma_list_of_alphas(tmp_path, models_args):
    path = prompt_file(tmp_path, 2)
    cli("score", *models_args, "--prompts", str(path), "--out", str(tmp_path / "both"), "--alpha", "0.5,1", check_rc=0)
    both = tuco.load_run(tmp_path / "both").rows
    assert [(r["alpha"], r["id"]) for r in both] == [(a, f"{LONG_ID}-{i}") for a in (0.5, 1.0) for i in range(2)]
    cli("score", *models_args, "--prompts", str(path), "--out", str(tmp_path / "half"), "--alpha", "0.5", check_rc=0)
    half = tuco.load_run(tmp_path / "half").rows
    assert [r["tuco"] for r in both[:2]] == pytest.approx([r["tuco"] for r in half], abs=1e-6)
    assert both[2]["tuco"] != pytest.approx(both[0]["tuco"], abs=1e-6)


@pytest.mark.parametrize("flag,values", [("--alpha", ["1", "0"]), ("--batch-size", ["2", "4"]), ("--out", ["a", "b"])])
def test_a_repeated_single_value_flag_is_refused(models_args, flag, values):
    res = cli("score", *models_args, "--prompt", "Hi", flag, values[0], flag, values[1])
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"tuco score: error: {flag} given twice: give it once " + res.stderr.split("once ", 1)[1].strip()
    ]


@pytest.mark.parametrize("out", ["x.csv", "rows.json", "table.tsv"])
def test_out_that_is_not_a_rows_format_is_refused_before_anything_is_made(tmp_path, models_args, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    res = cli("score", *models_args, "--prompt", "Hi", "--out", out)
    assert res.returncode == 2 and "which is not a rows format" in res.stderr
    assert not (tmp_path / out).exists()


def test_errors_name_flags_not_parameters(models_args):
    res = cli("generate", *models_args, "--prompt", "Hi", "--max-new-tokens", "0")
    assert "--max-new-tokens must be >= 1" in res.stderr and "max_new_tokens" not in res.stderr.replace("--max-new-tokens", "")


def test_third_party_deprecation_warnings_are_filtered():
    from tuco.cli.main import quiet_third_party

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_third_party()
        warnings.warn_explicit("old API", FutureWarning, "peft/tuners/lora.py", 1, module="peft.tuners.lora")
        warnings.warn_explicit("ours", UserWarning, "tuco/pair.py", 1, module="tuco.models.pair")
    assert [str(w.message) for w in seen] == ["ours"]


@pytest.mark.slow  # a real process interrupted
def test_ctrl_c_says_how_many_rows_were_kept_and_how_to_resume(tmp_path, models_args):
    prompts = tmp_path / "many.jsonl"
    n = 400
    prompts.write_text("".join(json.dumps({"prompt": f"prompt {i} " + "word " * 40}) + "\n" for i in range(n)))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tuco", "score", *models_args, "--prompts", str(prompts), "--out", str(out), "--batch-size", "1"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "OMP_NUM_THREADS": "1"},
        # a shell without job control starts background jobs with SIGINT ignored, and Python then installs no
        # KeyboardInterrupt handler: give the child the default, as a terminal would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    rows_file = out / "rows.jsonl"
    deadline = time.monotonic() + 600  # importing torch alone can take minutes on a loaded machine
    while time.monotonic() < deadline and not (rows_file.exists() and rows_file.read_text().count("\n") >= 2):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    kept = len(tuco.load_run(out).rows)
    assert 2 <= kept < n
    last = err.strip().splitlines()[-1]
    assert last == f"tuco score: interrupted; {kept} rows kept in {out}: run the same command with --resume to continue", err


def test_demo_progress_names_each_analysis_of_how_many(monkeypatch, tmp_path):
    import tuco.experiments
    from tuco.demo.run import PRESETS, run_demo

    def fake(name, model, out, **kwargs):
        kwargs["on_measurement"]("score", 3)
        return {}

    monkeypatch.setattr(tuco.experiments, "run_experiment", fake)
    told = []
    run_demo(None, tmp_path, "demo", on_measurement=lambda tag, total: told.append(tag))
    names = [name for name, _ in PRESETS["demo"]]
    assert told == [f"analysis {k}/{len(names)} {name} score" for k, name in enumerate(names, start=1)]


def test_experiment_json_prints_its_metrics(models_args, tmp_path):
    out = tmp_path / "run"
    res = cli("experiment", "web-vs-chat", *models_args, "--out", str(out), "--n", "4", "--json", check_rc=0)
    printed = json.loads(res.stdout)
    stored = json.loads((out / "metrics.json").read_text())
    assert printed["experiment"] == "web-vs-chat" and printed["findings"] == stored["findings"]
    assert "━" not in res.stderr  # no tables, no progress bars
