"""Scale: data-parallel ranks (gloo, 2 processes), kill + resume, out-of-memory back-off, placement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import tuco
from tuco import scoring
from tuco.errors import TucoError
from tuco.placement import misplaced_layers, shared_device_map
from tuco.runs import RowWriter, read_rows
from tuco.tiny import tiny_config

from conftest import PROMPTS
from test_cli import cli


@pytest.fixture(scope="module")
def models_args(llama_dirs):
    base, tuned = llama_dirs
    return ["--base", str(base), "--tuned", str(tuned), "--device", "cpu"]


def write_prompts(path, n):
    path.write_text("".join(json.dumps({"prompt": f"prompt {i} " + "word " * (i % 9), "k": i}) + "\n" for i in range(n)))
    return path


def assert_same_rows(a, b):
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b):
        assert x["n_tokens"] == y["n_tokens"] and x["k"] == y["k"]
        assert x["tuco"] == pytest.approx(y["tuco"], abs=1e-5)
        assert x["layer_ftc_l1"] == pytest.approx(y["layer_ftc_l1"], rel=1e-4, abs=1e-6)


def test_two_processes_equal_one(tmp_path, models_args):
    prompts = write_prompts(tmp_path / "p.jsonl", 30)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    cli("score", *models_args, "--prompts", str(prompts), "--out", str(one), "--batch-size", "4", check_rc=0)
    res = cli("score", *models_args, "--prompts", str(prompts), "--out", str(two), "--batch-size", "4", "--processes", "2")
    assert res.returncode == 0, res.stderr
    assert_same_rows(read_rows(two), read_rows(one))
    assert [r["id"] for r in read_rows(one)] == [str(i) for i in range(30)]  # input order despite bucketing
    assert not list(tmp_path.glob("two.jsonl.part-*"))  # shards merged and removed
    assert json.loads((tmp_path / "two.manifest.json").read_text())["config"]["processes"] == 2


def test_killed_run_resumes_to_the_uninterrupted_output(tmp_path, models_args):
    n = 1500
    prompts = write_prompts(tmp_path / "p.jsonl", n)
    out = tmp_path / "killed.jsonl"
    exe = [sys.executable, "-m", "tuco", "score", *models_args, "--prompts", str(prompts), "--out", str(out), "--batch-size", "1"]
    proc = subprocess.Popen(exe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while time.time() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= 20:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    raw = out.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1].decode().splitlines()
    assert 20 <= len(complete) < n, "the run was not killed mid-way"
    for line in complete:
        json.loads(line)  # every finished row is whole
    with out.open("ab") as f:  # and a torn write, as SIGKILL inside write() could leave, is cut on resume
        f.write(b'{"id": "torn", "tu')
    assert len(read_rows(out)) == len(complete)
    res = cli("score", *models_args, "--prompts", str(prompts), "--out", str(out), "--batch-size", "8", "--resume")
    assert res.returncode == 0, res.stderr
    assert f"resuming: {len(complete)} of {n} prompts already done" in res.stderr
    ref = tmp_path / "ref.jsonl"
    cli("score", *models_args, "--prompts", str(prompts), "--out", str(ref), "--batch-size", "8", check_rc=0)
    assert_same_rows(read_rows(out), read_rows(ref))


def test_resume_needs_unique_ids(tmp_path, models_args):
    p = tmp_path / "dup.jsonl"
    p.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
    res = cli("score", *models_args, "--prompts", str(p), "--out", str(tmp_path / "o.jsonl"), "--resume")
    assert res.returncode == 2 and "prompt id 'a' appears twice" in res.stderr


def test_parquet_resume_and_merge(tmp_path, models_args):
    prompts = write_prompts(tmp_path / "p.jsonl", 6)
    out = tmp_path / "o.parquet"
    staged = RowWriter(out)  # a previous run that finished 2 rows then died
    staged.write([{"id": "1", "prompt": "old", "tuco": -1.0}, {"id": "4", "prompt": "old", "tuco": -1.0}])
    staged.close()
    cli("score", *models_args, "--prompts", str(prompts), "--out", str(out), "--resume", check_rc=0)
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [str(i) for i in range(6)]
    assert [r["tuco"] for r in rows if r["id"] in ("1", "4")] == [-1.0, -1.0]  # kept, not recomputed
    assert not (tmp_path / "o.parquet.partial.jsonl").exists()


# ---- out-of-memory back-off ----


def test_oom_backoff_halves_the_batch_and_keeps_results(monkeypatch, llama_pair):
    real = scoring.score_ids
    sizes = []

    def fake(pair, batch, **kw):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(pair, batch, **kw)

    prompts = PROMPTS * 3
    ref = tuco.score(llama_pair, prompts, batch_size=1)
    monkeypatch.setattr(scoring, "score_ids", fake)
    told = []
    ids = [tuco.prompts.encode(llama_pair.tokenizer, p) for p in tuco.prompts.as_prompts(prompts)]
    got = {}
    for idx, scores in scoring.iter_scores(llama_pair, ids, batch_size=8, on_backoff=told.append):
        got.update(zip(idx, scores))
    assert told == [4, 2]
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) == 2
    assert [got[i].tuco for i in range(len(prompts))] == pytest.approx([s.tuco for s in ref], abs=1e-5)


def test_oom_with_one_prompt_is_a_clear_error(monkeypatch, llama_pair):
    def fake(pair, batch, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(scoring, "score_ids", fake)
    with pytest.raises(TucoError, match="does not fit in memory even alone"):
        tuco.score(llama_pair, ["Hi"], batch_size=4)


def test_length_bucketing_returns_input_order(llama_pair):
    prompts = ["a " * 30, "b", "c " * 10, "d " * 50, "e " * 3]
    batched = tuco.score(llama_pair, prompts, batch_size=2)
    alone = [tuco.score(llama_pair, [p])[0] for p in prompts]
    assert [s.n_tokens for s in batched] == [s.n_tokens for s in alone]
    assert [s.tuco for s in batched] == pytest.approx([s.tuco for s in alone], abs=1e-5)


# ---- placement: one map for both models, memory budget halved ----


def test_shared_device_map_leaves_room_for_both_copies(tokenizer):
    from accelerate import init_empty_weights
    from accelerate.utils import compute_module_sizes
    from transformers import AutoModelForCausalLM

    config = tiny_config("llama", len(tokenizer), layers=6, hidden=64)
    with init_empty_weights():
        meta = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    sizes = compute_module_sizes(meta, dtype=torch.float32)
    layer = sizes["model.layers.0"]
    budget = {0: 5 * layer, 1: 5 * layer, "cpu": 100 * layer}
    dm = shared_device_map(config, dtype=torch.float32, max_memory=budget)
    for i in range(6):
        assert f"model.layers.{i}" in dm  # whole blocks, never split
    used: dict = {}
    for name, device in dm.items():
        used[device] = used.get(device, 0) + sizes[name]
    for device, total in used.items():
        assert 2 * total <= budget[device] + layer  # both copies fit (accelerate keeps one block of slack)
    assert len({dm[f"model.layers.{i}"] for i in range(6)}) >= 2  # really spread over devices


def test_misplaced_layers(llama_pair):
    assert misplaced_layers(llama_pair.tuned, llama_pair.base) == []
    assert misplaced_layers(llama_pair.tuned, None) == []


def test_device_map_auto_loads_on_cpu(llama_dirs):
    pair = tuco.load_pair(str(llama_dirs[0]), str(llama_dirs[1]), device_map="auto")
    assert misplaced_layers(pair.tuned, pair.base) == []
    ref = tuco.load_pair(str(llama_dirs[0]), str(llama_dirs[1]))
    assert tuco.score(pair, PROMPTS)[0].tuco == pytest.approx(tuco.score(ref, PROMPTS)[0].tuco, abs=1e-6)
