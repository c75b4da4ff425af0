"""Jobs (score_to / generate_to): the library's runs equal the in-memory functions, survive interruption
and resume to the very rows of an uninterrupted run (float32 and bfloat16), refuse what would mix rows."""

from __future__ import annotations

import json

import pytest
import torch

import tuco
from conftest import PROMPTS
from tuco.errors import PromptError, RunError
from tuco.measures.prompts import Prompt
from tuco.models.pair import ModelPair
from tuco.runs import manifest_path, read_rows
from tuco.runs.jobs import generate_to, score_to

MANY = [Prompt(str(i), text=f"prompt {i} " + "word " * (i % 7), extra={"k": i}) for i in range(23)]


class Stop(Exception):
    pass


def _interrupt_after(n_batches):
    calls = []

    def progress(done, total):
        calls.append(done)
        if len(calls) == n_batches + 1:  # the first report (0 done) says the run is open
            raise KeyboardInterrupt

    return progress


def test_score_to_equals_score_in_input_order(llama_pair, tmp_path):
    res = score_to(llama_pair, MANY, tmp_path / "s.jsonl", batch_size=4)
    rows = read_rows(res.out)
    assert [r["id"] for r in rows] == [p.id for p in MANY] and [r["k"] for r in rows] == list(range(23))
    ref = tuco.score(llama_pair, MANY, batch_size=4)
    assert [r["tuco"] for r in rows] == pytest.approx([s.tuco for s in ref], abs=1e-6)
    assert json.loads(manifest_path(res.out).read_text())["status"] == "finished"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_interrupted_run_resumes_to_the_uninterrupted_rows(tokenizer, tmp_path, dtype):
    from tuco.demo.tiny import tiny_models

    base, tuned, tok = tiny_models("llama", tokenizer=tokenizer)
    pair = ModelPair(tuned=tuned.to(dtype), base=base.to(dtype), tokenizer=tok)
    ref = read_rows(score_to(pair, MANY, tmp_path / "ref.jsonl", batch_size=4).out)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        score_to(pair, MANY, out, batch_size=4, progress=_interrupt_after(3))
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["status"] == "interrupted" and manifest["n_rows"] == 12
    with pytest.raises(RunError, match="--resume"):
        score_to(pair, MANY, out, batch_size=4)
    score_to(pair, MANY, out, batch_size=4, resume=True)
    assert read_rows(out / "rows.jsonl") == ref  # bit for bit: the same batches were formed


def test_resume_refuses_other_options_prompts_or_models(llama_pair, tmp_path):
    out = tmp_path / "s.jsonl"
    with pytest.raises(KeyboardInterrupt):
        score_to(llama_pair, MANY, out, batch_size=4, progress=_interrupt_after(1))
    with pytest.raises(RunError, match="alpha: 1.0 before, 0.5 now"):
        score_to(llama_pair, MANY, out, batch_size=4, alpha=0.5, resume=True)
    with pytest.raises(RunError, match="prompts"):
        score_to(llama_pair, MANY[:-1], out, batch_size=4, resume=True)
    with pytest.raises(RunError, match="batch_size"):
        score_to(llama_pair, MANY, out, batch_size=8, resume=True)
    other = ModelPair(tuned=llama_pair.tuned, base=llama_pair.base, tokenizer=llama_pair.tokenizer, base_name="another")
    with pytest.raises(RunError, match="checkpoints"):
        score_to(other, MANY, out, batch_size=4, resume=True)


def test_duplicate_ids_are_refused_naming_them(llama_pair, tmp_path):
    dup = [Prompt("x", text="a"), Prompt("y", text="b"), Prompt("x", text="c")]
    with pytest.raises(RunError, match="'x' appear more than once"):
        score_to(llama_pair, dup, tmp_path / "s.jsonl")
    with pytest.raises(RunError, match="'x' appear more than once"):
        generate_to(llama_pair, dup, tmp_path / "g.jsonl", max_new_tokens=2)


def test_no_usable_prompt_is_an_error(llama_pair, tmp_path):
    with pytest.raises(PromptError, match="no usable prompts: prompt 0 has"):
        score_to(llama_pair, ["word " * 400], tmp_path / "s.jsonl")


def test_sampled_generation_resumes_to_the_same_samples(llama_pair, tmp_path):
    kw = dict(alphas=[1.0, 0.5], max_new_tokens=5, temperature=1.0, seed=3, batch_size=3)
    ref = read_rows(generate_to(llama_pair, MANY[:9], tmp_path / "ref.jsonl", **kw).out)
    out = tmp_path / "g.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_to(llama_pair, MANY[:9], out, progress=_interrupt_after(4), **kw)
    generate_to(llama_pair, MANY[:9], out, resume=True, **kw)
    got = read_rows(out)
    assert [(r["alpha"], r["id"]) for r in got] == [(a, p.id) for a in (1.0, 0.5) for p in MANY[:9]]
    assert got == ref


def test_unicode_prompt_and_response_make_a_readable_finished_run(llama_pair, tmp_path):
    prompts = [Prompt("u", text="x\u2028y \u2029 \u0085 \u202e end")]
    res = score_to(llama_pair, prompts, tmp_path / "s.jsonl")
    (row,) = read_rows(res.out)
    assert row["prompt"] == prompts[0].text
    assert json.loads(manifest_path(res.out).read_text())["status"] == "finished"
    gen = generate_to(llama_pair, prompts, tmp_path / "g.jsonl", max_new_tokens=3)
    assert read_rows(gen.out)[0]["prompt"] == prompts[0].text


def test_bfloat16_batch_size_changes_numbers_within_a_bound(tokenizer, tmp_path):
    """What holds in bfloat16 (README): a prompt's TuCo depends on the batch it shares by up to ~1e-2 of
    its value; the same batch size gives the same rows, interrupted or not (tested above)."""
    from tuco.demo.tiny import tiny_models

    base, tuned, tok = tiny_models("llama", tokenizer=tokenizer)
    pair = ModelPair(tuned=tuned.to(torch.bfloat16), base=base.to(torch.bfloat16), tokenizer=tok)
    one = tuco.score(pair, PROMPTS * 3, batch_size=1)
    four = tuco.score(pair, PROMPTS * 3, batch_size=4)
    assert max(abs(a.tuco - b.tuco) for a, b in zip(one, four)) < 1e-2


@pytest.mark.slow
def test_two_processes_give_the_rows_of_one(tmp_path, models_args):
    """`--processes 2` (real ranks, gloo) writes the very rows of one process, in input order, shards merged."""
    from conftest import ENV, assert_same_rows, cli_process, write_prompts
    from tuco.runs.parallel import rank_threads

    prompts = write_prompts(tmp_path / "p.jsonl", 30)
    one, two, default = tmp_path / "one.jsonl", tmp_path / "two.jsonl", tmp_path / "default.jsonl"
    same_threads = {**ENV, "OMP_NUM_THREADS": str(rank_threads(2))}  # as many threads as each rank gets
    for out, extra, env in ((one, [], same_threads), (two, ["--processes", "2"], None), (default, [], None)):
        res = cli_process("score", *models_args, "--prompts", str(prompts), "--out", str(out), "--batch-size", "4", *extra, env=env)
        assert res.returncode == 0, res.stderr
    assert read_rows(two) == read_rows(one)  # the same batches, the same threads per process: equal bit for bit
    assert_same_rows(read_rows(two), read_rows(default), tol=1e-6)  # other thread counts: the last bit only
    assert [r["id"] for r in read_rows(one)] == [str(i) for i in range(30)]
    assert not list(tmp_path.glob("two.jsonl.part-*")) and not list(tmp_path.glob("*.lock.*"))
