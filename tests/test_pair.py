"""Loading pairs from directories, PEFT adapters, compatibility checks and layer discovery."""

from __future__ import annotations

import pytest
import torch

import tuco
from conftest import PROMPTS
from tuco.demo.tiny import save_tiny_pair, tiny_models
from tuco.errors import IncompatiblePairError, TucoError
from tuco.models.pair import ModelPair, load_pair

peft = pytest.importorskip("peft")


def test_load_pair_from_dirs(llama_dirs):
    base, tuned = llama_dirs
    pair = load_pair(str(base), str(tuned), dtype="float32")
    assert pair.tokenizer.chat_template  # the tuned tokenizer, which has the template
    assert pair.tokenizer.padding_side == "left"
    scores = tuco.score(pair, PROMPTS)
    assert all(0 < s.tuco < 1 for s in scores)


def test_bfloat16_load_accumulates_in_float32(llama_dirs):
    base, tuned = llama_dirs
    pair = load_pair(str(base), str(tuned), dtype="bfloat16")
    assert next(pair.tuned.parameters()).dtype == torch.bfloat16
    ref = tuco.score(load_pair(str(base), str(tuned), dtype="float32"), PROMPTS)
    got = tuco.score(pair, PROMPTS)
    for a, b in zip(got, ref):
        assert a.tuco == pytest.approx(b.tuco, abs=0.03)


@pytest.mark.parametrize(
    "other,what",
    [(dict(layers=2), "number of layers: base has 3, tuned has 2"), (dict(hidden=64), "hidden size: base has 32, tuned has 64")],
)
def test_mismatched_pairs_fail_naming_both_values(tmp_path, llama_dirs, other, what):
    _, odd = save_tiny_pair(tmp_path, "llama", **other)
    with pytest.raises(IncompatiblePairError, match=what):
        load_pair(str(llama_dirs[0]), str(odd))


def test_mismatched_family(tmp_path, llama_dirs):
    _, gpt2 = save_tiny_pair(tmp_path, "gpt2")
    with pytest.raises(IncompatiblePairError, match="family.*base has llama, tuned has gpt2"):
        load_pair(str(llama_dirs[0]), str(gpt2))


def test_different_vocab_warns(tokenizer):
    base, _, _ = tiny_models("llama", tokenizer=tokenizer, vocab_size=320)
    _, tuned, tok = tiny_models("llama", tokenizer=tokenizer)
    with pytest.warns(UserWarning, match="vocabulary"):
        ModelPair(tuned=tuned, base=base, tokenizer=tok)


@pytest.mark.parametrize("path", ["./no/such/dir", "/definitely/not/here", ""])
def test_missing_path(path, llama_dirs):
    with pytest.raises(TucoError, match="does not exist|empty"):
        load_pair(path, str(llama_dirs[1]))


def test_unknown_hub_id_offline(llama_dirs):
    with pytest.raises(TucoError, match="base model 'nobody/no-such-model' is neither a local directory nor in the Hugging Face cache"):
        load_pair("nobody/no-such-model", str(llama_dirs[1]))


def test_bad_dtype(llama_dirs):
    with pytest.raises(TucoError, match="unknown dtype 'float8'"):
        load_pair(str(llama_dirs[0]), str(llama_dirs[1]), dtype="float8")


# ---- PEFT: one copy of the base weights; PT = the same blocks with adapters disabled ----


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory, llama_dirs):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir = llama_dirs[0]
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    torch.manual_seed(3)
    peft_model = get_peft_model(model, cfg)
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    return base_dir, out


def test_peft_pair_matches_merged_model(adapter_dirs):
    from transformers import AutoModelForCausalLM

    base_dir, adapter_dir = adapter_dirs
    pair = load_pair(str(base_dir), str(adapter_dir), dtype="float32")
    assert pair.is_peft and pair.base is None
    n_params = sum(p.numel() for p in pair.tuned.parameters())
    base_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base_dir).parameters())
    assert n_params < 1.2 * base_params  # one copy of the base weights (plus the small adapter)

    from peft import PeftModel

    ft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir).merge_and_unload()
    two = ModelPair(tuned=ft, base=AutoModelForCausalLM.from_pretrained(base_dir), tokenizer=pair.tokenizer)
    got, ref = tuco.score(pair, PROMPTS), tuco.score(two, PROMPTS)
    for a, b in zip(got, ref):
        assert a.tuco == pytest.approx(b.tuco, abs=1e-5)
        assert a.layer_ftc_l1 == pytest.approx(b.layer_ftc_l1, rel=1e-4, abs=1e-6)
        assert a.tuco > 0


def test_peft_alpha_one_and_zero_and_restored(adapter_dirs):
    from transformers import AutoModelForCausalLM

    base_dir, adapter_dir = adapter_dirs
    pair = load_pair(str(base_dir), str(adapter_dir), dtype="float32")
    ids = pair.tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.no_grad():
        ft = pair.tuned(**ids).logits
        with tuco.steer(pair, 1.0):
            one = pair.tuned(**ids).logits
        with tuco.steer(pair, 0.0):
            zero = pair.tuned(**ids).logits
        pt = AutoModelForCausalLM.from_pretrained(base_dir)(**ids).logits
        after = pair.tuned(**ids).logits
    torch.testing.assert_close(one, ft, atol=1e-5, rtol=0)
    torch.testing.assert_close(zero, pt, atol=1e-5, rtol=0)
    assert torch.equal(after, ft)  # adapters are switched back on
    assert not (ft - pt).abs().max() < 1e-4  # the adapter does change the model


def test_cli_scores_an_adapter_pair(adapter_dirs, tmp_path):
    from conftest import cli

    base_dir, adapter_dir = adapter_dirs
    out = tmp_path / "a.jsonl"
    res = cli(
        "score",
        "--base",
        str(base_dir),
        "--tuned",
        str(adapter_dir),
        "--prompt",
        "How do I bake bread?",
        "--device-map",
        "auto",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    pair = load_pair(str(base_dir), str(adapter_dir))
    (lib,) = tuco.score(pair, ["How do I bake bread?"], chat=False)
    from tuco.runs import read_rows

    (row,) = read_rows(out)
    assert row["chat"] is False  # the adapter dir and base carry no chat template here
    assert row["tuco"] == pytest.approx(lib.tuco, abs=1e-6) and row["tuco"] > 0
