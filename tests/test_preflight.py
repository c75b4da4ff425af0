"""Failing before any weights load: resume fingerprints, adapters on the wrong base, hub ids that cannot
resolve offline, files that are mostly undecodable."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import cli

from tuco.cli import loading


@pytest.mark.parametrize(
    ("verb", "first", "second", "named"),
    [
        ("score", ["--alpha", "1"], ["--alpha", "0.5"], "alpha"),
        ("score", [], ["--per-token"], "--per-token: false before, true now"),
        ("score", [], ["--next-turn"], "--next-turn: null before, true now"),
        ("generate", ["--max-new-tokens", "3"], ["--max-new-tokens", "4"], "--max-new-tokens: 3 before, 4 now"),
        ("generate", ["--max-new-tokens", "3"], ["--max-new-tokens", "3", "--alpha", "0,1"], "alphas"),
    ],
)
def test_resume_with_other_options_is_refused_before_the_model_loads(tmp_path, models_args, monkeypatch, verb, first, second, named):
    out = tmp_path / "run"
    cli(verb, *models_args, "--prompt", "Hi", "--out", str(out), *first, check_rc=0)
    cli(verb, *models_args, "--prompt", "Hi", "--out", str(out), "--resume", *first, check_rc=0)  # same options: resumes

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "load", refuse)
    res = cli(verb, *models_args, "--prompt", "Hi", "--out", str(out), "--resume", *second)
    assert res.returncode != 0
    assert "different configuration" in res.stderr and named in res.stderr, res.stderr
    assert "the model was loaded" not in res.stderr


def test_load_pair_takes_paths_and_shipped_names(llama_dirs):
    import tuco
    from tuco.errors import ConfigError
    from tuco.models.shipped import demo_pair_dirs

    base, tuned = llama_dirs
    pair = tuco.load_pair(Path(base), Path(tuned), device="cpu")
    assert pair.stage_names == [str(base), str(tuned)]
    demo = tuco.load_pair("demo", device="cpu")
    assert demo.stage_names == [str(d) for d in demo_pair_dirs()]
    assert tuco.score(demo, ["Hi"])[0].tuco > 0
    with pytest.raises(ConfigError, match="shipped pair by name"):
        tuco.load_pair("no-such-pair")


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, llama_dirs):
    """A LoRA adapter trained on the tiny llama base (its config names that base's directory)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(llama_dirs[0])
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "down_proj"])).save_pretrained(out)
    return out


@pytest.fixture()
def weights_never_load(monkeypatch):
    import tuco.models.pair

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(tuco.models.pair, "_load_model", refuse)


def unnamed_copy(adapter, tmp_path):
    """The adapter with no base named in its config: only the shapes can tell."""
    import json
    import shutil

    out = tmp_path / "unnamed"
    shutil.copytree(adapter, out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out


def test_adapter_on_a_base_of_another_width_fails_before_loading(tmp_path, adapter_dir, weights_never_load):
    from tuco.demo.tiny import save_tiny_pair
    from tuco.errors import IncompatiblePairError
    from tuco.models.pair import load_pair

    wide, _ = save_tiny_pair(tmp_path, "llama", hidden=64)
    with pytest.raises(IncompatiblePairError, match="was trained on .*differs from the base.*hidden_size 32 vs 64"):
        load_pair(wide, adapter_dir)
    with pytest.raises(
        IncompatiblePairError, match=r"does not fit the base.*(q_proj|down_proj) is \d+ -> 64 in the base but \d+ -> 32 in the adapter"
    ):
        load_pair(wide, unnamed_copy(adapter_dir, tmp_path))


def test_adapter_on_another_architecture_names_the_missing_modules(tmp_path, adapter_dir, weights_never_load):
    from tuco.demo.tiny import save_tiny_pair

    gpt2, _ = save_tiny_pair(tmp_path, "gpt2")
    res = cli("score", "--base", str(gpt2), "--tuned", str(unnamed_copy(adapter_dir, tmp_path)), "--prompt", "Hi", "--device", "cpu")
    assert res.returncode != 0 and "targets modules the base" in res.stderr and "q_proj" in res.stderr, res.stderr
    assert "offline" not in res.stderr and "weights were loaded" not in res.stderr


def test_adapter_on_its_own_base_passes_the_check(llama_dirs, adapter_dir):
    from tuco.models.adapter_check import check_adapter

    check_adapter(str(llama_dirs[0]), str(adapter_dir))  # raises on any mismatch


def test_hub_id_that_cannot_resolve_offline_fails_at_once(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.monotonic()
    res = cli("score", "--base", "nobody/no-such-base", "--tuned", "nobody/no-such-tuned", "--prompt", "Hi")
    assert time.monotonic() - start < 10
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0] and "nobody/no-such-base" in lines[0], res.stderr
    res = cli("score", "--base", "demo", "--tuned", "demo", "--prompt", "Hi")
    assert "--pair demo" in res.stderr


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".csv"])
def test_a_binary_file_is_refused_in_one_message(tmp_path, suffix):
    import random

    from tuco.errors import InputError
    from tuco.measures.prompts import UNDECODABLE_LIMIT, read_prompts

    rng = random.Random(0)
    header = b"prompt\n" if suffix == ".csv" else b""
    blob = header + b"\n".join(bytes([0xFF, 0x00]) + bytes(rng.randrange(256) for _ in range(40)) for _ in range(500))
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(blob)
    with pytest.raises(InputError, match=f"does not look like a text file: {UNDECODABLE_LIMIT} lines are not UTF-8"):
        read_prompts(path)


def test_a_text_file_with_a_few_bad_lines_keeps_its_good_ones(tmp_path):
    from tuco.measures.prompts import UNDECODABLE_LIMIT, read_prompts

    path = tmp_path / "mixed.txt"
    lines = [b"good prompt %d" % i for i in range(2 * UNDECODABLE_LIMIT)] + [b"\xff\xfe bad"] * (UNDECODABLE_LIMIT + 5)
    path.write_bytes(b"\n".join(lines))
    good, bad = read_prompts(path)
    assert len(good) == 2 * UNDECODABLE_LIMIT and len(bad) == UNDECODABLE_LIMIT + 5


def test_skipped_rows_are_printed_capped(tmp_path, models_args):
    from tuco.cli.display import SHOWN_BAD

    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "Hi"}\n' + "{not json\n" * 30)
    res = cli("score", *models_args, "--prompts", str(path))
    assert res.returncode == 1
    assert res.stderr.count("skipped line") == SHOWN_BAD and f"skipped {30 - SHOWN_BAD} more rows" in res.stderr, res.stderr
