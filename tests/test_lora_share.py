"""LoRA stages share the base projections whose input every stage gives them: bit for bit the same numbers
as computing each stage on its own (every family, both paddings, generation with the KV cache, a chain of
two stacked adapters, float32 and bfloat16), a count proving the sharing is taken, and the fallbacks
(modules_to_save, DoRA, merged adapters) still exact and logged."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

import tuco
from conftest import PROMPTS
from tuco.demo.tiny import FAMILIES, MOE_FAMILIES, tiny_models
from tuco.engine import lora_share
from tuco.engine.decomposition import Recorder
from tuco.engine.layers import per_position_modules, same_input_modules
from tuco.measures.batching import pad, run_backbone
from tuco.models import decomposable as model_module
from tuco.models.chain import ModelChain
from tuco.models.pair import ModelPair

peft = pytest.importorskip("peft")

MIXED = PROMPTS + ["A much longer prompt, so that the batch is padded with rows of very different lengths here."]


def lora_model(family, tokenizer, *, dtype=torch.float32, seed=3, **cfg):
    """The family's tiny base with a random LoRA adapter (every linear layer unless told otherwise)."""
    base, _, _ = tiny_models(family, tokenizer=tokenizer)
    torch.manual_seed(seed)
    config = peft.LoraConfig(**{"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "init_lora_weights": False, **cfg})
    return peft.get_peft_model(base.to(dtype), config)


def run(model, prompts, *, side="left", per_token=False, **engine_kw):
    """(record, engine) of one forward pass of ``model`` (a pair or chain) over ``prompts``."""
    tok = model.tokenizer
    b = pad([tok(p)["input_ids"] for p in prompts], tok.pad_token_id, "cpu", side=side)
    rec = Recorder(model.n_layers, last_index=b.last, last_index_len=b.width, per_token=per_token)
    engine = model.engine(recorder=rec, **engine_kw)
    with torch.inference_mode(), engine:
        run_backbone(model, b)
    return rec.records[0], engine


def unshared(monkeypatch):
    """From here on, engines share nothing (the registry names no same-input projection)."""
    monkeypatch.setattr(model_module, "same_input_modules", lambda model: ())


def assert_bit_equal(a, b):
    assert torch.equal(a.sums, b.sums)
    assert torch.equal(a.layer_l1, b.layer_l1)
    assert (a.steered is None and b.steered is None) or torch.equal(a.steered, b.steered)


def shared_per_layer(model, fast):
    """Same-input projections each earlier stage reuses per layer: on the fast path, not those it restricts
    to the read position (their input there is one position, computed anew)."""
    same, restricted = same_input_modules(model.tuned), per_position_modules(model.tuned) if fast else ()
    return sum(not any(p == r or p.startswith(r + ".") for r in restricted) for p in same)


@pytest.mark.parametrize("family", FAMILIES + MOE_FAMILIES)
def test_shared_equals_unshared_bit_for_bit_on_every_family(family, tokenizer, monkeypatch):
    p = ModelPair(tuned=lora_model(family, tokenizer), base=None, tokenizer=tokenizer)
    assert same_input_modules(p.tuned), "every registered family names its same-input projections"
    got = {}
    for alpha, fast in ((1.0, True), (0.9, False)):  # fast path / whole blocks (steering)
        rec, engine = run(p, MIXED, alpha=alpha)
        assert engine.shared_calls == shared_per_layer(p, fast) * p.n_layers > 0
        got[alpha] = rec
    full, _ = run(p, MIXED, full_path=True)
    unshared(monkeypatch)
    for alpha in got:
        ref, engine = run(p, MIXED, alpha=alpha)
        assert engine.shared_calls == 0
        assert_bit_equal(got[alpha], ref)
    # and the shared fast path agrees with the reference (whole blocks, nothing shared) to rounding
    torch.testing.assert_close(got[1.0].sums, full.sums, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_both_paddings_and_dtypes(side, dtype, tokenizer, monkeypatch):
    p = ModelPair(tuned=lora_model("llama", tokenizer, dtype=dtype), base=None, tokenizer=tokenizer)
    shared = {kw: run(p, MIXED, side=side, **dict(kw))[0] for kw in ((), (("alpha", 1.2),), (("per_token", True),))}
    unshared(monkeypatch)
    for kw, rec in shared.items():
        assert_bit_equal(rec, run(p, MIXED, side=side, **dict(kw))[0])
    assert shared[()].sums.dtype == torch.float32 and shared[()].sums[1].abs().sum() > 0  # the adapter contributes


def test_unadapted_projection_is_shared_too(tokenizer):
    """An adapter on q and v only: the input norm and k (no adapter) are shared as they are, v through its base
    layer, q (restricted to the read position by the fast path) is computed."""
    p = ModelPair(tuned=lora_model("llama", tokenizer, target_modules=["q_proj", "v_proj", "down_proj"]), base=None, tokenizer=tokenizer)
    _, engine = run(p, MIXED)
    assert engine.shared_calls == 3 * p.n_layers


def test_generation_with_the_kv_cache(tokenizer, monkeypatch):
    p = ModelPair(tuned=lora_model("gemma3_text", tokenizer), base=None, tokenizer=tokenizer)
    calls = []
    real = p.engine

    def spy(*a, **k):
        calls.append(real(*a, **k))
        return calls[-1]

    monkeypatch.setattr(p, "engine", spy)
    kw = dict(max_new_tokens=6, batch_size=4)
    shared = {alpha: tuco.generate(p, MIXED, alpha=alpha, **kw) for alpha in (1.0, 1.3)}
    per_token = tuco.generate(p, MIXED, per_token=True, **kw)
    # prefill (fast path at alpha 1: keys and values) and every decoding step (one position: q, k and v)
    assert all(e.shared_calls > 3 * p.n_layers for e in calls)
    no_cache = tuco.generate(p, MIXED, use_cache=False, **kw)
    unshared(monkeypatch)
    for alpha, gens in shared.items():
        for a, b in zip(gens, tuco.generate(p, MIXED, alpha=alpha, **kw)):
            assert a.token_ids == b.token_ids and a.token_tuco == b.token_tuco
    for a, b in zip(per_token, tuco.generate(p, MIXED, per_token=True, **kw)):
        assert a.token_tuco == b.token_tuco and a.prompt_token_tuco == b.prompt_token_tuco
    for a, b in zip(shared[1.0], no_cache):  # the KV cache changes nothing either
        assert a.token_ids == b.token_ids
        assert a.token_tuco == pytest.approx(b.token_tuco, rel=1e-5, abs=1e-6)


def test_one_alpha_per_row_with_sharing(tokenizer, monkeypatch):
    """Mixed alphas in one batch (tuco serve, alpha-sweep): sharing changes no bit, and each row equals its
    own run at its alpha."""
    p = ModelPair(tuned=lora_model("llama", tokenizer), base=None, tokenizer=tokenizer)
    alphas = [1.0, 0.5, 1.3, 0.0, 1.0][: len(MIXED)]
    kw = dict(max_new_tokens=5, batch_size=len(MIXED))
    mixed = tuco.generate(p, MIXED, alpha=tuco.engine.alpha.RowAlphas(alphas), **kw)
    solo = [tuco.generate(p, [prompt], alpha=a, **kw)[0] for prompt, a in zip(MIXED, alphas)]
    for m, s in zip(mixed, solo):
        assert m.token_ids == s.token_ids
        assert m.token_tuco == pytest.approx(s.token_tuco, rel=1e-4, abs=1e-5)
    unshared(monkeypatch)
    for a, b in zip(mixed, tuco.generate(p, MIXED, alpha=tuco.engine.alpha.RowAlphas(alphas), **kw)):
        assert a.token_ids == b.token_ids and a.token_tuco == b.token_tuco


def stacked(tokenizer, family="llama"):
    """A chain base -> stage1 -> stage2 of two LoRA adapters stacked on one copy of the weights."""
    model = lora_model(family, tokenizer)  # adapter "default" = stage 1
    torch.manual_seed(4)
    model.add_adapter("dpo", peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    model.base_model.set_adapter(["default", "dpo"])  # (peft 0.17 has no inference_mode here; the chain freezes them)
    return ModelChain(models=[model] * 3, adapters=[(), ("default",), None], tokenizer=tokenizer)


def test_chain_of_two_stacked_adapters(tokenizer, monkeypatch):
    ch = stacked(tokenizer)
    fast, engine = run(ch, MIXED)
    # stage 0 reuses the input norm, k and v; stage 1 those (stage 2's) and q (stage 0's, at the read position)
    assert engine.shared_calls == 7 * ch.n_layers
    steered, engine = run(ch, MIXED, alpha=[1.0, 0.5])
    assert engine.shared_calls == 8 * ch.n_layers
    unshared(monkeypatch)
    assert_bit_equal(fast, run(ch, MIXED)[0])
    assert_bit_equal(steered, run(ch, MIXED, alpha=[1.0, 0.5])[0])
    assert (fast.sums[1:].abs().sum(-1) > 0).all()  # both adapters contribute
    # the chain equals full checkpoints (each stage merged into its own copy), computed on their own
    m0 = tiny_models("llama", tokenizer=tokenizer)[0]  # the base the adapters were put on (same seed)
    merged = [copy.deepcopy(ch.tuned).merge_and_unload(adapter_names=names) for names in (["default"], ["default", "dpo"])]
    full = ModelChain(models=[m0, *merged], adapters=[None] * 3, tokenizer=tokenizer)
    torch.testing.assert_close(fast.sums, run(full, MIXED, full_path=True)[0].sums, rtol=1e-4, atol=1e-4)


def test_modules_to_save_on_the_input_norm_falls_back_exactly(tokenizer, monkeypatch, caplog):
    model = lora_model("llama", tokenizer, modules_to_save=["input_layernorm"])
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if "modules_to_save" in name:
                prm.mul_(1.5)  # the adapter's own norm: q, k and v see other inputs in the fine-tuned stage
    p = ModelPair(tuned=model, base=None, tokenizer=tokenizer)
    monkeypatch.setattr(lora_share, "_LOGGED", set())
    with caplog.at_level(logging.WARNING, logger="tuco.engine.lora_share"):
        got, engine = run(p, MIXED, alpha=0.9)
    assert engine.shared_calls == 0
    assert "ModulesToSaveWrapper" in caplog.text and "feed 'self_attn.k_proj' different inputs" in caplog.text
    assert caplog.text.count("different inputs") == 3  # once per projection, not per layer or batch
    unshared(monkeypatch)
    assert_bit_equal(got, run(p, MIXED, alpha=0.9)[0])


def test_dora_is_not_shared_and_still_exact(tokenizer, monkeypatch, caplog):
    p = ModelPair(tuned=lora_model("llama", tokenizer, use_dora=True), base=None, tokenizer=tokenizer)
    monkeypatch.setattr(lora_share, "_LOGGED", set())
    with caplog.at_level(logging.WARNING, logger="tuco.engine.lora_share"):
        got, engine = run(p, MIXED)
        run(p, MIXED)
    assert engine.shared_calls == p.n_layers  # the input norm only
    assert caplog.text.count("is adapted by lora.Linear with DoraLinearVariant") == 3  # q, k, v: logged once each
    unshared(monkeypatch)
    assert_bit_equal(got, run(p, MIXED)[0])


def test_merged_adapters_share_nothing(tokenizer, monkeypatch):
    model = lora_model("llama", tokenizer)
    reference = ModelPair(tuned=copy.deepcopy(model), base=None, tokenizer=tokenizer)
    model.merge_adapter()
    p = ModelPair(tuned=model, base=None, tokenizer=tokenizer)
    monkeypatch.setattr(lora_share, "_LOGGED", set())
    got, engine = run(p, MIXED)  # the pre-trained calls unmerge, layer by layer (peft's own behaviour)
    assert engine.shared_calls == 0
    torch.testing.assert_close(got.sums, run(reference, MIXED)[0].sums, rtol=1e-4, atol=1e-4)


def test_full_checkpoints_and_full_path_share_nothing_and_model_is_restored(tokenizer):
    base, tuned, _ = tiny_models("llama", tokenizer=tokenizer)
    assert run(ModelPair(tuned=tuned, base=base, tokenizer=tokenizer), MIXED)[1].shared_calls == 0
    p = ModelPair(tuned=lora_model("llama", tokenizer), base=None, tokenizer=tokenizer)
    assert run(p, MIXED, full_path=True)[1].shared_calls == 0
    projections = [m for m in p.tuned.modules() if isinstance(m, torch.nn.Linear)]

    def boom(module, args):
        raise RuntimeError("boom")

    handle = p.ft_layers[1].mlp.register_forward_pre_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        run(p, MIXED)
    handle.remove()
    assert not any("forward" in m.__dict__ for m in projections)  # the memo is gone, also after an exception
