"""DESIGN.md invariants 1-8 on tiny random pairs of every supported family, plus an independent reference."""

from __future__ import annotations

import copy

import pytest
import torch

import tuco
from conftest import PROMPTS
from tuco.demo.tiny import tiny_models
from tuco.engine import metrics
from tuco.engine.decomposition import Recorder, TuCoLayer
from tuco.engine.layers import decoder_layers, final_norm
from tuco.measures.batching import last_index, pad, position_ids
from tuco.measures.prompts import Prompt, encode
from tuco.models.pair import ModelPair

ATOL = 1e-5


def batch_inputs(pair, prompts=PROMPTS):
    ids = [encode(pair.tokenizer, Prompt(id=str(i), text=p)) for i, p in enumerate(prompts)]
    b = pad(ids, pair.tokenizer.pad_token_id, pair.device)
    return ids, b.input_ids, b.attention_mask


def logits(model, input_ids, mask):
    return model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False).logits


# ---- an independent reference: forward hooks on the plain FT model, no wrapper, no recorder ----


def reference(pair, input_ids, mask, alpha=1.0):
    """Hooks re-run each PT block on the FT block's own arguments; returns logits and per-layer PTC/FTC."""
    ptcs, ftcs, handles = [], [], []

    def hook(i):
        def fn(module, args, kwargs, output):
            x = args[0] if args else kwargs["hidden_states"]
            kw = {k: v for k, v in kwargs.items() if k not in ("cache", "past_key_values", "layer_past", "past_key_value")}
            pt_out = pair.pt_layers[i](*args, **kw)
            ft_h = output if isinstance(output, torch.Tensor) else output[0]
            pt_h = pt_out if isinstance(pt_out, torch.Tensor) else pt_out[0]
            ptcs.append((pt_h - x).double())
            ftcs.append((ft_h - pt_h).double())
            new = pt_h + alpha * (ft_h - pt_h)
            return new if isinstance(output, torch.Tensor) else (new, *output[1:])

        return fn

    for i, block in enumerate(pair.ft_layers):
        handles.append(block.register_forward_hook(hook(i), with_kwargs=True))
    try:
        with torch.no_grad():
            out = logits(pair.tuned, input_ids, mask)
    finally:
        for h in handles:
            h.remove()
    return out, torch.stack(ptcs, dim=2), torch.stack(ftcs, dim=2)  # [B, T, L, d]


def test_reference_agrees_with_engine(pair):
    ids, input_ids, mask = batch_inputs(pair)
    _, ptc, ftc = reference(pair, input_ids, mask)
    last = last_index(mask)
    rows = torch.arange(len(ids))
    ref_tuco = metrics.tuco_from_layers(ptc[rows, last], ftc[rows, last])
    ref_layer_ftc = ftc[rows, last].abs().sum(-1)
    scores = tuco.score(pair, PROMPTS, batch_size=3)
    got = torch.tensor([s.tuco for s in scores], dtype=torch.float64)
    torch.testing.assert_close(got, ref_tuco, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.tensor([s.layer_ftc_l1 for s in scores], dtype=torch.float64), ref_layer_ftc, atol=1e-4, rtol=1e-4)
    assert all(0 < s.tuco < 1 for s in scores)
    assert [s.n_tokens for s in scores] == [len(i) for i in ids]


@pytest.mark.parametrize("alpha", [0.5, 1.25])
def test_reference_steering_logits(pair, alpha):
    _, input_ids, mask = batch_inputs(pair)
    ref_logits, _, _ = reference(pair, input_ids, mask, alpha=alpha)
    with torch.no_grad(), tuco.steer(pair, alpha):
        got = logits(pair.tuned, input_ids, mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], ref_logits[real], atol=1e-4, rtol=1e-4)


# ---- 1. alpha = 1 reproduces the FT model (scoring, prefill, every cached generation step) ----


def test_alpha_one_is_the_tuned_model(pair):
    _, input_ids, mask = batch_inputs(pair)
    with torch.no_grad():
        plain = logits(pair.tuned, input_ids, mask)
        with pair.engine(alpha=1.0, recorder=Recorder(pair.n_layers)):
            wrapped = logits(pair.tuned, input_ids, mask)
    torch.testing.assert_close(wrapped, plain, atol=ATOL, rtol=0)


def test_alpha_one_generation_matches_plain_generate(pair):
    _, input_ids, mask = batch_inputs(pair)
    kw = dict(
        input_ids=input_ids,
        attention_mask=mask,
        max_new_tokens=8,
        do_sample=False,
        use_cache=True,
        pad_token_id=pair.tokenizer.pad_token_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    with torch.no_grad():
        plain = pair.tuned.generate(**kw)
        with pair.engine(alpha=1.0, recorder=Recorder(pair.n_layers)):
            wrapped = pair.tuned.generate(**kw)
    assert torch.equal(plain.sequences, wrapped.sequences)
    for a, b in zip(plain.logits, wrapped.logits):
        torch.testing.assert_close(b, a, atol=ATOL, rtol=0)


# ---- 2. identical pair: FTC = 0 and TuCo = 0 exactly (fast path: to float32 rounding) ----


def test_identical_pair_gives_zero(models):
    base, _, tok = models
    same = ModelPair(tuned=copy.deepcopy(base), base=base, tokenizer=tok)
    for s in tuco.score(same, PROMPTS, batch_size=2, per_token=True):  # per token: whole blocks
        assert s.tuco == 0.0 and s.ftc_l1 == 0.0 and s.preco == 1.0
        assert set(s.layer_ftc_l1) == {0.0} and set(s.token_tuco) == {0.0}
        assert s.ptc_l1 > 0
    for s in tuco.score(same, PROMPTS, batch_size=2, full_path=True):
        assert s.tuco == 0.0 and set(s.layer_ftc_l1) == {0.0}
    # The fast path runs the pre-trained feed-forward on [B, 1, d] where the tuned block ran [B, T, d]:
    # the same numbers up to float32 rounding of differently shaped matrix products.
    for s in tuco.score(same, PROMPTS, batch_size=2):
        assert s.tuco < 1e-6 and max(s.layer_ftc_l1) < 1e-6 * s.ptc_l1


# ---- 3. x_L = x_0 + sum PTC + sum FTC ----


def test_residual_identity(pair):
    _, input_ids, mask = batch_inputs(pair)
    seen = {}
    h0 = pair.ft_layers[0].register_forward_pre_hook(
        lambda m, a, k: seen.__setitem__("x0", (a[0] if a else k["hidden_states"]).clone()), with_kwargs=True
    )
    hn = final_norm(pair.tuned).register_forward_pre_hook(lambda m, a: seen.__setitem__("xL", a[0].clone()))
    rec = Recorder(pair.n_layers, per_token=True)
    try:
        with torch.no_grad(), pair.engine(recorder=rec):
            logits(pair.tuned, input_ids, mask)
    finally:
        h0.remove()
        hn.remove()
    (r,) = rec.records
    real = mask.bool()
    recon = seen["x0"].float() + r.sum_ptc + r.sum_ftc
    torch.testing.assert_close(recon[real], seen["xL"].float()[real], atol=1e-4, rtol=1e-4)


# ---- 4. changing only layer k of PT: FTC = 0 in every layer below k ----


@pytest.mark.parametrize("k", [1, 2])
def test_change_in_layer_k_only(family, tokenizer, k):
    base, tuned, tok = tiny_models(family, tokenizer=tokenizer, only_layer=k)
    p = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    for s in tuco.score(p, PROMPTS, batch_size=3, full_path=True):
        assert s.layer_ftc_l1[:k] == [0.0] * k
        assert s.layer_ftc_l1[k] > 0
    for s in tuco.score(p, PROMPTS, batch_size=3):  # fast path: float32 rounding (see invariant 2)
        assert max(s.layer_ftc_l1[:k]) < 1e-6 * s.ptc_l1
        assert s.layer_ftc_l1[k] > 1e-3 * s.layer_ptc_l1[k]


# ---- 5. alpha = 0 with shared embeddings/head reproduces the PT model ----


def test_alpha_zero_is_the_base_model(pair):
    _, input_ids, mask = batch_inputs(pair)
    with torch.no_grad():
        pt = logits(pair.base, input_ids, mask)
        with tuco.steer(pair, 0.0):
            got = logits(pair.tuned, input_ids, mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], pt[real], atol=ATOL, rtol=0)


# ---- 6. left-padded batch == each prompt alone ----


def test_batch_equals_single(pair):
    batched = tuco.score(pair, PROMPTS, batch_size=3, per_token=True)
    for prompt, b in zip(PROMPTS, batched):
        (s,) = tuco.score(pair, [prompt], per_token=True)
        assert b.tuco == pytest.approx(s.tuco, abs=1e-5)
        assert b.n_tokens == s.n_tokens
        assert b.layer_ptc_l1 == pytest.approx(s.layer_ptc_l1, rel=1e-4, abs=1e-5)
        assert b.token_tuco == pytest.approx(s.token_tuco, abs=1e-5)
        assert b.token_tuco[-1] == pytest.approx(b.tuco, abs=1e-6)


# ---- 7. generation with the KV cache == recomputing without it ----


@pytest.mark.parametrize("alpha", [1.0, 0.7])
def test_generation_cache_equals_no_cache(pair, alpha):
    kw = dict(alpha=alpha, max_new_tokens=6, batch_size=3)
    cached = tuco.generate(pair, PROMPTS, use_cache=True, **kw)
    fresh = tuco.generate(pair, PROMPTS, use_cache=False, **kw)
    for a, b in zip(cached, fresh):
        assert a.token_ids == b.token_ids
        assert a.token_tuco == pytest.approx(b.token_tuco, abs=1e-4)
        assert len(a.token_tuco) == len(a.token_ids) > 0


def test_generation_first_token_tuco_is_prompt_tuco(pair):
    scores = tuco.score(pair, PROMPTS, batch_size=3, alpha=0.8)
    gens = tuco.generate(pair, PROMPTS, alpha=0.8, max_new_tokens=3, batch_size=3)
    for s, g in zip(scores, gens):
        assert g.prompt_tuco == pytest.approx(s.tuco, abs=1e-5)
        assert g.token_tuco[0] == g.prompt_tuco


# ---- 8. the model is unchanged after use ----


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_model_restored_after_use_and_after_errors(pair):
    _, input_ids, mask = batch_inputs(pair)
    blocks = list(pair.ft_layers)
    keys = list(pair.tuned.state_dict())
    hooks = _hooks(pair.tuned)
    with torch.no_grad():
        before = logits(pair.tuned, input_ids, mask)
    tuco.score(pair, PROMPTS, alpha=0.5)
    tuco.generate(pair, PROMPTS[:1], alpha=1.3, max_new_tokens=2)
    with pytest.raises(RuntimeError, match="boom"), tuco.steer(pair, 2.0):
        assert isinstance(pair.ft_layers[0], TuCoLayer)
        raise RuntimeError("boom")
    assert list(pair.ft_layers) == blocks
    assert list(pair.tuned.state_dict()) == keys
    assert _hooks(pair.tuned) == hooks
    assert not any(isinstance(m, TuCoLayer) for m in pair.tuned.modules())
    with torch.no_grad():
        after = logits(pair.tuned, input_ids, mask)
    assert torch.equal(before, after)


def test_per_layer_alpha_matches_scalar(llama_pair):
    a = tuco.score(llama_pair, PROMPTS, alpha=0.6)
    b = tuco.score(llama_pair, PROMPTS, alpha=[0.6] * llama_pair.n_layers)
    assert [s.tuco for s in a] == [s.tuco for s in b]
    c = tuco.score(llama_pair, PROMPTS, alpha=[1.0, 1.0, 0.0])  # only the last layer is changed
    d = tuco.score(llama_pair, PROMPTS, alpha=1.0)
    for x, y in zip(c, d):
        assert x.layer_ftc_l1[:2] == pytest.approx(y.layer_ftc_l1[:2], abs=1e-6)


def test_decoder_layers_found(pair):
    assert len(decoder_layers(pair.tuned)) == 3
    assert final_norm(pair.tuned) is not None


# ---- output_hidden_states under the engine ----


def test_hidden_states_under_steering_and_base_untouched(models):
    base, tuned, tok = (copy.deepcopy(m) if i < 2 else m for i, m in enumerate(models))
    p = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    _, input_ids, mask = batch_inputs(p)
    kw = dict(input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask), output_hidden_states=True)
    with torch.no_grad():
        base_before = base(**kw).hidden_states
        outs = []
        with tuco.steer(p, 0.5):  # first capture of the tuned model happens inside the engine
            handles = [
                b.register_forward_hook(lambda m, a, o: outs.append(o if isinstance(o, torch.Tensor) else o[0])) for b in p.ft_layers
            ]
            steered = tuned(**kw).hidden_states
            for h in handles:
                h.remove()
        base_after = base(**kw).hidden_states
    assert len(steered) == p.n_layers + 1
    assert len(base_after) == len(base_before) == p.n_layers + 1  # no hooks of the tuned model on PT blocks
    for a, b in zip(base_before, base_after):
        assert torch.equal(a, b)
    if tuco._compat._active_collector is None:
        pytest.skip("transformers 4.x reports the FT block outputs as hidden states under steering")
    real = mask.bool()
    for got, want in zip(steered[1:-1], outs[:-1]):  # [-1] is after the final norm
        torch.testing.assert_close(got[real], want[real])
