"""The engine's fast path (earlier stages run at the read position only) equals whole blocks, is really
taken where it applies and never elsewhere; TuCo under steering is the share of what was added."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

import tuco
from conftest import PROMPTS
from tuco.demo.tiny import MOE_FAMILIES, tiny_models
from tuco.engine import layers
from tuco.engine.alpha import StageAlphas
from tuco.engine.decomposition import Recorder
from tuco.measures.batching import pad, run_backbone
from tuco.measures.scoring import score_ids
from tuco.models.pair import ModelPair

MIXED = PROMPTS + ["A much longer prompt, so that the batch is left-padded with rows of very different lengths here."]


def assert_same_scores(fast, full, rel=1e-6):
    for a, b in zip(fast, full):
        assert a.tuco == pytest.approx(b.tuco, rel=rel, abs=1e-7)
        assert a.preco == pytest.approx(b.preco, rel=rel, abs=1e-7)
        assert a.ptc_l1 == pytest.approx(b.ptc_l1, rel=rel)
        assert a.ftc_l1 == pytest.approx(b.ftc_l1, rel=rel)
        assert a.layer_ptc_l1 == pytest.approx(b.layer_ptc_l1, rel=rel)
        assert a.layer_ftc_l1 == pytest.approx(b.layer_ftc_l1, rel=1e-5)


def test_fast_path_equals_full_path(pair):
    fast = tuco.score(pair, MIXED, batch_size=4)
    full = tuco.score(pair, MIXED, batch_size=4, full_path=True)
    assert_same_scores(fast, full)


def _fast_rows(model, ids, **kw):
    """Rows the restricted submodules ran on while scoring ``ids`` as one batch."""
    seen = []
    real = model.engine

    def spy(*a, **k):
        e = real(*a, **k)
        seen.append(e)
        return e

    model.engine = spy
    try:
        score_ids(model, ids, **kw)
    finally:
        del model.engine
    return seen[0].fast_rows


def restricted_per_row(model):
    """Submodules the fast path restricts in each block: the per-position ones and the attention."""
    return len(layers.per_position_modules(model)) + bool(layers.attention_module(model))


def test_fast_path_is_taken_only_where_it_applies(pair):
    ids = [pair.tokenizer(p)["input_ids"] for p in MIXED]
    n_paths = restricted_per_row(pair.tuned)
    assert n_paths >= 4 and layers.attention_module(pair.tuned)
    # one row per prompt, per restricted submodule (the attention included), per layer: nothing else ran restricted
    assert _fast_rows(pair, ids) == len(ids) * n_paths * pair.n_layers
    assert _fast_rows(pair, ids, full_path=True) == 0
    assert _fast_rows(pair, ids, alpha=0.9) == 0  # the steered stream reads PT outputs everywhere
    assert _fast_rows(pair, ids, per_token=True) == 0  # per-token TuCo reads them everywhere


def test_pretrained_feed_forward_sees_one_position_per_row(llama_pair):
    shapes = []
    handle = llama_pair.pt_layers[0].mlp.register_forward_pre_hook(lambda m, a: shapes.append(tuple(a[0].shape)))
    try:
        tuco.score(llama_pair, MIXED, batch_size=4)
        tuco.score(llama_pair, MIXED, batch_size=4, full_path=True)
    finally:
        handle.remove()
    width = shapes[1][1]
    assert shapes[0] == (4, 1, 32) and width > 1 and shapes[1] == (4, width, 32)


def test_pretrained_attention_runs_one_query_per_row(llama_pair, monkeypatch):
    """The model's own attention function sees the whole sequence's queries in the fine-tuned block and one
    query per row in the pre-trained block, on the fast path only."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    sdpa, seen = ALL_ATTENTION_FUNCTIONS["sdpa"], []

    def spy(module, query, *args, **kwargs):
        seen.append(tuple(query.shape))
        return sdpa(module, query, *args, **kwargs)

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS, "sdpa", spy)
    for full in (False, True):
        seen.clear()
        tuco.score(llama_pair, MIXED, batch_size=4, full_path=full)
        width = seen[0][2]
        assert width > 1 and seen[0] == (4, 4, width, 8)
        assert seen[1] == ((4, 4, width, 8) if full else (4, 4, 1, 8))  # layer 0's pre-trained block
        assert len(seen) == 2 * llama_pair.n_layers


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2", "gpt_neox"])
def test_fast_path_with_eager_attention(family, tokenizer):
    base, tuned, tok = tiny_models(family, tokenizer=tokenizer)
    for m in (base, tuned):
        m.config._attn_implementation = "eager"  # the family's own eager function (Gemma-2: soft-capping)
    p = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    ids = [tok(q)["input_ids"] for q in MIXED]
    assert _fast_rows(p, ids) == len(ids) * restricted_per_row(tuned) * p.n_layers
    assert_same_scores(tuco.score(p, MIXED, batch_size=4), tuco.score(p, MIXED, batch_size=4, full_path=True), rel=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_rows_of_equal_length_attend_without_a_mask(side, pair):
    """No padding: sdpa gets no mask (causal by flag); the one query per row is the last, so it sees every key."""
    ids = [pair.tokenizer(p)["input_ids"][:3] for p in MIXED]
    assert {len(i) for i in ids} == {3}
    got = {}
    for full in (False, True):
        b = pad(ids, pair.tokenizer.pad_token_id, "cpu", side=side)
        rec = Recorder(pair.n_layers, last_index=b.last, last_index_len=b.width)
        with torch.no_grad(), pair.engine(recorder=rec, full_path=full) as engine:
            run_backbone(pair, b)
        got[full] = rec.records[0].sums
        assert engine.fast_rows == (0 if full else len(ids) * restricted_per_row(pair.tuned) * pair.n_layers)
    torch.testing.assert_close(got[False], got[True], rtol=1e-5, atol=1e-6)


def test_attention_without_a_mask_before_the_last_position_stays_whole():
    """An unmasked (causal-by-flag) attention read before the last position cannot be cut to one query."""
    from tuco.engine import attention_at

    seen = []

    def inner(module, q, k, v, mask, **kw):
        seen.append(q.shape[2])
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] > 1).transpose(1, 2), None

    q, k, v = (torch.randn(2, 2, 5, 4) for _ in range(3))
    module, rows = torch.nn.Module(), [0]
    token = attention_at._ACTIVE.set(attention_at._Call(module, inner, torch.tensor([2, 4]), rows))
    try:
        whole, _ = attention_at._attention(module, q, k, v, None)
    finally:
        attention_at._ACTIVE.reset(token)
    assert seen == [5] and rows == [0]
    assert torch.equal(whole, inner(module, q, k, v, None)[0])


def test_right_padding_reads_the_right_position(llama_pair):
    ids = [llama_pair.tokenizer(p)["input_ids"] for p in MIXED]
    got = {}
    for side in ("left", "right"):
        for full in (False, True):
            b = pad(ids, llama_pair.tokenizer.pad_token_id, "cpu", side=side)
            rec = Recorder(llama_pair.n_layers, last_index=b.last, last_index_len=b.width)
            with torch.no_grad(), llama_pair.engine(recorder=rec, full_path=full):
                llama_pair.tuned.model(**b.model_inputs())
            got[side, full] = tuco.engine.metrics.tuco(rec.records[0].sum_ptc, rec.records[0].sum_ftc)
    for key, value in got.items():
        torch.testing.assert_close(value, got["left", True], rtol=1e-5, atol=1e-6, msg=str(key))


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_fast_path_on_mixture_of_experts(family, tokenizer):
    base, tuned, tok = tiny_models(family, tokenizer=tokenizer)
    p = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    assert "mlp" in layers.per_position_modules(tuned) or "block_sparse_moe" in layers.per_position_modules(tuned)
    assert_same_scores(tuco.score(p, MIXED, batch_size=4), tuco.score(p, MIXED, batch_size=4, full_path=True), rel=1e-5)


def test_unknown_family_keeps_whole_blocks_and_says_so(tokenizer, monkeypatch, caplog):
    base, tuned, tok = tiny_models("llama", tokenizer=tokenizer)
    p = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    monkeypatch.delitem(layers.REGISTRY, "llama")
    monkeypatch.setattr(layers, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="tuco.engine.layers"):
        assert layers.per_position_modules(tuned) == ()
        ids = [tok(q)["input_ids"] for q in MIXED]
        assert _fast_rows(p, ids) == 0
    assert "not in tuco's layer registry" in caplog.text and "model.layers" in caplog.text
    assert_same_scores(tuco.score(p, MIXED), tuco.score(p, MIXED, full_path=True), rel=0)


def test_peft_pair_takes_the_fast_path(tokenizer):
    peft = pytest.importorskip("peft")
    base, _, tok = tiny_models("llama", tokenizer=tokenizer)
    model = peft.get_peft_model(
        copy.deepcopy(base), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    )
    p = ModelPair(tuned=model, base=None, tokenizer=tok)
    ids = [tok(q)["input_ids"] for q in MIXED]
    assert _fast_rows(p, ids) == len(ids) * restricted_per_row(p.tuned) * p.n_layers
    assert_same_scores(tuco.score(p, MIXED, batch_size=4), tuco.score(p, MIXED, batch_size=4, full_path=True))
    assert all(s.tuco > 0 for s in tuco.score(p, MIXED))


def test_alpha_one_generation_is_the_same_on_both_paths(pair):
    kw = dict(max_new_tokens=5, batch_size=4)
    fast = tuco.generate(pair, MIXED, **kw)
    full = tuco.generate(pair, MIXED, full_path=True, **kw)
    for a, b in zip(fast, full):
        assert a.token_ids == b.token_ids
        assert a.token_tuco == pytest.approx(b.token_tuco, rel=1e-5, abs=1e-6)


# ---- TuCo under steering: the share of what was actually added ----


def test_tuco_under_steering_is_the_share_added(llama_pair):
    at0 = tuco.score(llama_pair, PROMPTS, alpha=0.0)
    assert all(s.tuco == 0.0 and s.ftc_l1 == 0.0 and s.tuco_unscaled > 0 for s in at0)
    at1 = tuco.score(llama_pair, PROMPTS, alpha=1.0, full_path=True)
    assert all(s.tuco == s.tuco_unscaled for s in at1)
    per_layer = [0.0, 1.0, 0.5]
    steered = tuco.score(llama_pair, PROMPTS, alpha=per_layer, chat=False)
    # independent: record per-token components at the same alphas and rebuild both shares by hand
    ids = [llama_pair.tokenizer(p)["input_ids"] for p in PROMPTS]
    b = pad(ids, llama_pair.tokenizer.pad_token_id, "cpu")
    comps = {"ptc": [], "ftc": []}
    hooks = []
    for i, block in enumerate(llama_pair.ft_layers):

        def hook(m, args, kwargs, out, i=i):
            x = args[0] if args else kwargs["hidden_states"]
            kw = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "cache")}
            pt = llama_pair.pt_layers[i](*args, **kw)
            comps["ptc"].append((pt - x)[:, -1].double())
            comps["ftc"].append((out - pt)[:, -1].double())
            return pt + per_layer[i] * (out - pt)

        hooks.append(block.register_forward_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            llama_pair.tuned(**b.model_inputs())
    finally:
        for h in hooks:
            h.remove()
    s_ptc = sum(comps["ptc"])
    added = sum(a * f for a, f in zip(per_layer, comps["ftc"]))
    want = added.abs().sum(-1) / (s_ptc.abs().sum(-1) + added.abs().sum(-1))
    want_unscaled = sum(comps["ftc"]).abs().sum(-1) / (s_ptc.abs().sum(-1) + sum(comps["ftc"]).abs().sum(-1))
    assert [s.tuco for s in steered] == pytest.approx(want.tolist(), rel=1e-4)
    assert [s.tuco_unscaled for s in steered] == pytest.approx(want_unscaled.tolist(), rel=1e-4)


# ---- one alpha per row of a batch (RowAlphas): each row equals itself run alone at its alpha ----

ROW_ALPHAS = [0.0, 0.5, 1.0, 1.25]


def _run(model, ids, alpha):
    """(logits at every real position per row, the record) of one left-padded forward pass under ``alpha``."""
    b = pad(ids, model.tokenizer.pad_token_id, "cpu")
    rec = Recorder(model.n_layers)
    with torch.no_grad(), model.engine(alpha=alpha, recorder=rec) as engine:
        out = model.tuned(**b.model_inputs()).logits
    rows = [out[i, b.width - n :] for i, n in enumerate(b.lengths)]
    return rows, rec.records[0], engine.fast_rows


def test_per_row_alpha_equals_each_row_alone(pair):
    ids = [pair.tokenizer(p)["input_ids"] for p in MIXED]
    mixed, rec, _ = _run(pair, ids, tuco.engine.alpha.RowAlphas(ROW_ALPHAS))
    for i, a in enumerate(ROW_ALPHAS):
        alone, rec1, _ = _run(pair, [ids[i]], a)  # independent: the row alone, one alpha for the whole pass
        torch.testing.assert_close(mixed[i], alone[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(rec.sum_ptc[i], rec1.sum_ptc[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(rec.sum_ftc_steered[i], rec1.sum_ftc_steered[0], rtol=1e-4, atol=1e-4)
    # the share of what was added: 0 at alpha 0; the paper's TuCo (steered == unscaled) at alpha 1
    assert float(rec.sum_ftc_steered[0].abs().sum()) == 0.0
    torch.testing.assert_close(rec.sum_ftc_steered[2], rec.sum_ftc[2])


def test_per_row_alpha_one_everywhere_is_the_fine_tuned_model_on_the_fast_path(llama_pair):
    ids = [llama_pair.tokenizer(p)["input_ids"] for p in MIXED]
    b = pad(ids, llama_pair.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        plain = llama_pair.tuned(**b.model_inputs()).logits
    rows, rec, fast_rows = _run(llama_pair, ids, tuco.engine.alpha.RowAlphas([1.0] * len(ids)))
    assert fast_rows > 0 and rec.steered is None
    for i, n in enumerate(b.lengths):
        assert torch.equal(rows[i], plain[i, b.width - n :])  # bit for bit
    # a row at alpha 1 inside a steered batch: its own alpha-1 run, to fp32 tolerance
    mixed, _, fast_mixed = _run(llama_pair, ids, tuco.engine.alpha.RowAlphas([1.0, 0.3, 1.0, 2.0]))
    assert fast_mixed == 0
    for i in (0, 2):
        torch.testing.assert_close(mixed[i], plain[i, b.width - b.lengths[i] :], rtol=1e-5, atol=1e-5)


def test_per_row_alpha_in_score_generate_and_steer(llama_pair):
    rows = tuco.engine.alpha.RowAlphas(ROW_ALPHAS)
    together = tuco.score(llama_pair, MIXED, alpha=rows, batch_size=4)
    gens = tuco.generate(llama_pair, MIXED, alpha=rows, max_new_tokens=6, batch_size=4)
    for i, a in enumerate(ROW_ALPHAS):
        (alone,) = tuco.score(llama_pair, [MIXED[i]], alpha=a)
        assert together[i].tuco == pytest.approx(alone.tuco, rel=1e-5, abs=1e-7)
        assert together[i].tuco_unscaled == pytest.approx(alone.tuco_unscaled, rel=1e-5, abs=1e-7)
        (g,) = tuco.generate(llama_pair, [MIXED[i]], alpha=a, max_new_tokens=6)
        assert gens[i].token_ids == g.token_ids and gens[i].alpha == a
        assert gens[i].token_tuco == pytest.approx(g.token_tuco, rel=1e-4, abs=1e-6)
    with pytest.raises(tuco.TucoError, match="one alpha per prompt"):
        tuco.score(llama_pair, MIXED, alpha=tuco.engine.alpha.RowAlphas([1.0, 0.5]))
    b = pad([llama_pair.tokenizer(p)["input_ids"] for p in MIXED], llama_pair.tokenizer.pad_token_id, "cpu")
    with pytest.raises(tuco.TucoError, match="batch has 4 rows"), torch.no_grad():
        with tuco.steer(llama_pair, alpha=tuco.engine.alpha.RowAlphas([0.5, 1.0])):
            llama_pair.tuned(**b.model_inputs())
    assert not any(isinstance(m, tuco.engine.decomposition.TuCoLayer) for m in llama_pair.ft_layers)  # restored


def test_per_row_stage_alphas_on_a_chain(models):
    from test_chain import chain_of, three

    chain = chain_of(three(models)[:3], models[2])
    ids = [chain.tokenizer(p)["input_ids"] for p in MIXED]
    per_stage = [StageAlphas((1.0, 0.0)), StageAlphas((0.5, 1.0)), 1.0, StageAlphas((0.0, 0.0))]
    mixed, rec, _ = _run(chain, ids, tuco.engine.alpha.RowAlphas(per_stage))
    for i, a in enumerate(per_stage):
        alone, rec1, _ = _run(chain, [ids[i]], a)
        torch.testing.assert_close(mixed[i], alone[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(rec.sum_ftc_steered[i], rec1.sum_ftc_steered[0], rtol=1e-4, atol=1e-4)
