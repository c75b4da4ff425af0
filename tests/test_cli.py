"""The `tuco` command through its real entry point, on tiny pairs saved to temp dirs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import tuco
from tuco.pair import load_pair
from tuco.runs import RowWriter, manifest_path, read_rows

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def cli(*args, check_rc=None):
    exe = shutil.which("tuco")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "tuco", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    if check_rc is not None:
        assert res.returncode == check_rc, res.stderr
    return res


@pytest.fixture(scope="module")
def models_args(llama_dirs):
    base, tuned = llama_dirs
    return ["--base", str(base), "--tuned", str(tuned), "--device", "cpu"]


def test_help_lists_the_contract():
    out = cli("score", "--help", check_rc=0).stdout
    for opt in ("--base", "--tuned", "--prompt", "--prompts", "--out", "--chat", "--no-chat", "--system", "--alpha",
                "--batch-size", "--dtype", "--device"):
        assert opt in out
    assert "--max-new-tokens" in cli("generate", "--help", check_rc=0).stdout
    assert cli("--version", check_rc=0).stdout.startswith("tuco ")


def test_score_jsonl_file_with_bad_line(tmp_path, models_args, llama_dirs):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "How do I bake bread?", "label": "benign"}) + "\n"
        + "{not json\n"
        + json.dumps({"messages": [{"role": "user", "content": "Hi"}], "id": "chat-1"}) + "\n"
        + json.dumps({"prompt": "  "}) + "\n"
    )
    out = tmp_path / "scores.jsonl"
    res = cli("score", *models_args, "--prompts", str(prompts), "--out", str(out), "--batch-size", "2")
    assert res.returncode == 1  # two rows skipped, the others ran
    assert "line 2: malformed JSON" in res.stderr and "line 4: 'prompt' is empty" in res.stderr
    assert "Traceback" not in res.stderr
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ["0", "chat-1"]
    assert rows[0]["label"] == "benign"
    for key in ("id", "prompt", "tuco", "preco", "n_tokens", "layer_ptc_l1", "layer_ftc_l1"):
        assert key in rows[0]
    assert len(rows[0]["layer_ftc_l1"]) == 3
    # The CLI's numbers are the library's numbers.
    pair = load_pair(*map(str, llama_dirs))
    (lib,) = tuco.score(pair, ["How do I bake bread?"])
    assert rows[0]["tuco"] == pytest.approx(lib.tuco, abs=1e-6)
    assert rows[0]["n_tokens"] == lib.n_tokens
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["status"] == "finished" and manifest["n_rows"] == 2 and manifest["config"]["chat"] is True


def test_score_parquet_csv_txt_and_no_chat(tmp_path, models_args):
    csv = tmp_path / "p.csv"
    csv.write_text("prompt,group\nHow do I bake bread?,a\nHi,b\n")
    txt = tmp_path / "p.txt"
    txt.write_text("How do I bake bread?\n\nHi\n")
    cli("score", *models_args, "--prompts", str(csv), "--out", str(tmp_path / "a.parquet"), check_rc=0)
    cli("score", *models_args, "--prompts", str(txt), "--out", str(tmp_path / "b.jsonl"), check_rc=0)
    cli("score", *models_args, "--prompts", str(txt), "--no-chat", "--out", str(tmp_path / "c.jsonl"), check_rc=0)
    a, b, c = (read_rows(tmp_path / n) for n in ("a.parquet", "b.jsonl", "c.jsonl"))
    assert [r["group"] for r in a] == ["a", "b"]
    assert [r["tuco"] for r in a] == pytest.approx([r["tuco"] for r in b], abs=1e-7)
    assert not (tmp_path / "a.parquet.partial.jsonl").exists()
    assert c[0]["chat"] is False and c[0]["n_tokens"] < b[0]["n_tokens"]  # no template tokens
    assert c[0]["tuco"] != pytest.approx(b[0]["tuco"], abs=1e-6)


def test_score_per_token_and_alpha(tmp_path, models_args):
    out = tmp_path / "t.jsonl"
    cli("score", *models_args, "--prompt", "How do I bake bread?", "--per-token", "--alpha", "0.5", "--out", str(out), check_rc=0)
    (row,) = read_rows(out)
    assert len(row["tokens"]) == len(row["token_tuco"]) == row["n_tokens"]
    assert row["token_tuco"][-1] == pytest.approx(row["tuco"], abs=1e-6)
    assert row["alpha"] == 0.5


def test_generate_one_response_per_alpha(tmp_path, models_args):
    out = tmp_path / "g.jsonl"
    res = cli("generate", *models_args, "--prompt", "Tell me a story", "--alpha", "0.5", "1", "1.5",
              "--max-new-tokens", "5", "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = read_rows(out)
    assert [r["alpha"] for r in rows] == [0.5, 1.0, 1.5]
    for r in rows:
        assert 1 <= r["n_new_tokens"] <= 5
        assert len(r["token_tuco"]) == len(r["tokens"]) == r["n_new_tokens"]
        assert r["token_tuco"][0] == r["prompt_tuco"]
    assert "alpha" in res.stdout


def test_generate_sampling_is_seeded(tmp_path, models_args):
    args = ["--prompt", "Tell me", "--temperature", "1.0", "--seed", "7", "--max-new-tokens", "6"]
    a = cli("generate", *models_args, *args, "--out", str(tmp_path / "a.jsonl"), check_rc=0)
    b = cli("generate", *models_args, *args, "--out", str(tmp_path / "b.jsonl"), check_rc=0)
    assert a.returncode == b.returncode == 0
    assert read_rows(tmp_path / "a.jsonl")[0]["token_ids"] == read_rows(tmp_path / "b.jsonl")[0]["token_ids"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--base", "./missing/dir"], "base model path './missing/dir' does not exist"),
        (["--alpha", "-1"], "alpha must be a finite number >= 0"),
        (["--alpha", "abc"], "is not a number"),
        (["--alpha", "1,1"], "has 2 values but the model has 3 layers"),
        (["--prompt", ""], "no usable prompts"),
        (["--prompt", "word " * 400], "more than the model's context of 256"),
        (["--out", "x.csv"], "must end in .jsonl or .parquet"),
        (["--prompts", "missing.jsonl"], "prompt file 'missing.jsonl' does not exist"),
        (["--dtype", "int3"], "unknown dtype 'int3'"),
    ],
)
def test_bad_input_one_line_error(models_args, extra, message):
    args = list(models_args)
    if "--base" in extra:
        args[1] = extra[1]
        extra = []
    if "--prompt" not in extra and "--prompts" not in extra:
        extra = [*extra, "--prompt", "Hi"]
    res = cli("score", *args, *extra)
    assert res.returncode != 0
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr.strip().splitlines()[-1]


def test_mismatched_pair_cli(tmp_path, llama_dirs):
    from tuco.tiny import save_tiny_pair

    _, odd = save_tiny_pair(tmp_path, "llama", layers=2)
    res = cli("score", "--base", str(llama_dirs[0]), "--tuned", str(odd), "--prompt", "Hi")
    assert res.returncode == 2
    assert "number of layers: base has 3, tuned has 2" in res.stderr and "Traceback" not in res.stderr


def test_row_writer_rows_are_on_disk_before_close(tmp_path):
    w = RowWriter(tmp_path / "r.jsonl")
    w.write([{"id": "0", "tuco": 0.5}, {"id": "1", "tuco": float("nan")}])
    assert read_rows(tmp_path / "r.jsonl") == [{"id": "0", "tuco": 0.5}, {"id": "1", "tuco": None}]
    w.close()
