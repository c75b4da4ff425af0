"""Chains of checkpoints (base -> SFT -> DPO ...): the decomposition's invariants on every family, the
pair as the K = 1 case, and stacked PEFT adapters."""

from __future__ import annotations

import copy

import pytest
import torch

import tuco
from conftest import PROMPTS
from tuco.demo.tiny import perturb_blocks, tiny_models
from tuco.engine.decomposition import Recorder
from tuco.engine.layers import decoder_layers
from tuco.measures.batching import pad
from tuco.models.chain import ModelChain, load_chain
from tuco.models.pair import ModelPair


def three(models, only_layer=None, scale=0.4):
    """(M0, M1, M2): the family's tiny pair and a second fine-tune on top of it (all blocks, or one layer)."""
    base, tuned, tok = (copy.deepcopy(m) if i < 2 else m for i, m in enumerate(models))
    third = copy.deepcopy(tuned)
    perturb_blocks(third, decoder_layers(third), scale, seed=7, only=only_layer)
    return base, tuned, third, tok


def chain_of(ms, tok):
    return ModelChain(models=list(ms), adapters=[None] * len(ms), tokenizer=tok)


def ids_of(tok, prompts=PROMPTS):
    return [tok(p)["input_ids"] for p in prompts]


def logits(model, b):
    with torch.no_grad():
        return model(**b.model_inputs()).logits


class LayerSpy(Recorder):
    """Keeps every layer's input and the stages' block outputs (per token) next to the recorder's sums."""

    def add(self, layer, x, outs, alphas):
        self.seen = getattr(self, "seen", []) + [(x.float(), [h.float() for h in outs])]
        super().add(layer, x, outs, alphas)


def test_stage_components_sum_to_the_final_block(models):
    m0, m1, m2, tok = three(models)
    ch = chain_of([m0, m1, m2], tok)
    b = pad(ids_of(tok), tok.pad_token_id, "cpu")
    rec = LayerSpy(ch.n_layers, per_token=True)
    with torch.no_grad(), ch.engine(recorder=rec):
        m2(**b.model_inputs())
    real = b.attention_mask.bool()
    total = torch.zeros_like(rec.records[0].sums[0])
    for x, outs in rec.seen:
        comps = [outs[0] - x] + [outs[k] - outs[k - 1] for k in range(1, 3)]
        torch.testing.assert_close((x + sum(comps))[real], outs[-1][real], atol=1e-5, rtol=1e-5)
        total += sum(comps)
    torch.testing.assert_close(rec.records[0].sums.sum(0)[real], total[real], atol=1e-4, rtol=1e-4)


def test_identical_consecutive_checkpoints_get_zero_share(models):
    m0, m1, _, tok = three(models)
    ch = chain_of([m0, m1, copy.deepcopy(m1)], tok)
    for s in tuco.score(ch, PROMPTS, full_path=True):
        assert s.stage_share[2] == 0.0 and s.stage_share[1] > 0 and sum(s.stage_share) == pytest.approx(1.0)
        assert set(s.layer_stage_l1[2]) == {0.0}
    for s in tuco.score(ch, PROMPTS):  # fast path: float32 rounding only
        assert s.stage_share[2] < 1e-6


def test_two_checkpoints_are_the_pair_bit_for_bit(models):
    base, tuned, tok = models
    pair = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    ch = chain_of([base, tuned], tok)
    for full in (False, True):
        a = tuco.score(pair, PROMPTS, batch_size=3, full_path=full)
        b = tuco.score(ch, PROMPTS, batch_size=3, full_path=full)
        assert [s.tuco for s in a] == [s.tuco for s in b]
        assert [s.layer_ftc_l1 for s in a] == [s.layer_ftc_l1 for s in b]
        assert all(s.stage_share is None for s in a)  # a pair reports TuCo; a chain of two, its two shares
        for s in b:
            assert s.stage_share == pytest.approx([1 - s.tuco, s.tuco], abs=1e-6)  # stage 1's share is TuCo
    g = tuco.generate(ch, PROMPTS[:2], max_new_tokens=3)
    assert all(x.stage_share is not None and len(x.stage_share) == 2 for x in g)


def test_switching_off_later_stages_gives_earlier_checkpoints(models):
    m0, m1, m2, tok = three(models)
    ch = chain_of([m0, m1, m2], tok)
    b = pad(ids_of(tok), tok.pad_token_id, "cpu")
    real = b.attention_mask.bool()
    for alpha, want in (([1.0, 0.0], m1), ([0.0, 0.0], m0), ([1.0, 1.0], m2)):
        with tuco.steer(ch, alpha):
            got = logits(m2, b)
        torch.testing.assert_close(got[real], logits(want, b)[real], atol=1e-5, rtol=0)


def test_change_in_one_stage_and_layer(family, tokenizer):
    base, tuned, tok = tiny_models(family, tokenizer=tokenizer)
    m2 = copy.deepcopy(tuned)
    perturb_blocks(m2, decoder_layers(m2), 0.4, seed=9, only=2)
    ch = chain_of([base, tuned, m2], tok)
    for s in tuco.score(ch, PROMPTS, full_path=True):
        assert s.layer_stage_l1[2][:2] == [0.0, 0.0] and s.layer_stage_l1[2][2] > 0
        assert min(s.layer_stage_l1[1]) > 0


def test_chain_batch_equals_single_and_cache_equals_recompute(models):
    m0, m1, m2, tok = three(models)
    ch = chain_of([m0, m1, m2], tok)
    batched = tuco.score(ch, PROMPTS, batch_size=3)
    for p, s in zip(PROMPTS, batched):
        (one,) = tuco.score(ch, [p])
        assert s.stage_share == pytest.approx(one.stage_share, abs=1e-5)
    for alpha in ([1.0, 1.0], [1.0, 0.5]):
        cached = tuco.generate(ch, PROMPTS, alpha=alpha, max_new_tokens=5, batch_size=3)
        fresh = tuco.generate(ch, PROMPTS, alpha=alpha, max_new_tokens=5, batch_size=3, use_cache=False)
        for a, b in zip(cached, fresh):
            assert a.token_ids == b.token_ids
            assert a.token_tuco == pytest.approx(b.token_tuco, abs=1e-4)
            assert a.stage_share == pytest.approx(b.stage_share, abs=1e-5)


def test_shares_are_not_pairwise_tuco_but_chain_tuco_is(llama_pair, tokenizer):
    """TuCo of the chain (M0, M2) from stage sums equals the pair (M0, M2) scored along M2's stream."""
    m0, m1, m2, tok = three((llama_pair.base, llama_pair.tuned, tokenizer))
    ch = chain_of([m0, m1, m2], tok)
    pair = ModelPair(tuned=m2, base=m0, tokenizer=tok)
    for c, p in zip(tuco.score(ch, PROMPTS, full_path=True), tuco.score(pair, PROMPTS, full_path=True)):
        assert c.tuco == pytest.approx(p.tuco, rel=1e-5)
        assert c.stage_share[0] == pytest.approx(c.stage_l1[0] / sum(c.stage_l1))


def test_stacked_peft_adapters_equal_full_checkpoints(tmp_path, tokenizer):
    peft = pytest.importorskip("peft")
    base, _, tok = tiny_models("llama", tokenizer=tokenizer)
    base.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    cfg = dict(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    a1 = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(**cfg))
    a1.save_pretrained(tmp_path / "sft")
    m1 = a1.merge_and_unload()
    torch.manual_seed(2)
    a2 = peft.get_peft_model(copy.deepcopy(m1), peft.LoraConfig(**cfg))
    a2.save_pretrained(tmp_path / "dpo")
    m2 = a2.merge_and_unload()
    ch = load_chain([str(tmp_path / "base"), str(tmp_path / "sft"), str(tmp_path / "dpo")], dtype="float32", device="cpu")
    assert len({id(m) for m in ch.models}) == 1  # one copy of the weights
    full = chain_of([base, m1, m2], tok)
    for a, b in zip(tuco.score(ch, PROMPTS), tuco.score(full, PROMPTS)):
        assert a.stage_share == pytest.approx(b.stage_share, abs=1e-5)
    b = pad(ids_of(tok), tok.pad_token_id, "cpu")
    real = b.attention_mask.bool()
    with tuco.steer(ch, [1.0, 0.0]):
        got = logits(ch.tuned, b)
    torch.testing.assert_close(got[real], logits(m1, b)[real], atol=1e-4, rtol=0)
