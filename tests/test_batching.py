"""Batching: padding on either side, positions, the last real token from the mask, length order,
out-of-memory back-off, and scoring that does not depend on the batch a prompt shares."""

from __future__ import annotations

import pytest
import torch

import tuco
from conftest import PROMPTS
from tuco.errors import TucoError
from tuco.measures import scoring
from tuco.measures.batching import by_length, encode_prompts, in_batches, last_index, pad
from tuco.measures.prompts import Prompt, as_prompts, encode


def test_pad_left_and_right_read_the_last_token_from_the_mask():
    left = pad([[5, 6, 7], [8]], 0, "cpu")
    assert left.input_ids.tolist() == [[5, 6, 7], [0, 0, 8]] and left.last.tolist() == [2, 2]
    assert left.position_ids.tolist() == [[0, 1, 2], [0, 0, 0]]
    right = pad([[5, 6, 7], [8]], 0, "cpu", side="right")
    assert right.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]] and right.last.tolist() == [2, 0]
    assert last_index(torch.tensor([[0, 1, 1, 0]])).tolist() == [2]


def test_length_order_is_stable():
    assert by_length([3, 5, 3, 1]) == [1, 0, 2, 3]


def test_encode_reports_bad_prompts_by_id(llama_pair):
    good, bad = encode_prompts(llama_pair, [Prompt("a", text="Hi"), Prompt("b", text="word " * 400)], chat=False, system=None)
    assert [e.prompt.id for e in good] == ["a"] and "prompt b has" in bad[0].reason and "context of 256" in bad[0].reason
    _, bad = encode_prompts(llama_pair, [Prompt("c", text="Hi")], chat=False, system=None, extra=300)
    assert "plus 300 new tokens" in bad[0].reason


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
    ids = [encode(llama_pair.tokenizer, p) for p in as_prompts(prompts)]
    got = {}
    for idx, scores in scoring.iter_scores(llama_pair, ids, batch_size=8, on_backoff=told.append):
        got.update(zip(idx, scores))
    assert told == [4, 2]
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) == 2
    assert [got[i].tuco for i in range(len(prompts))] == pytest.approx([s.tuco for s in ref], abs=1e-5)


def test_oom_with_one_item_is_a_clear_error():
    def boom(idx):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(TucoError, match="does not fit in memory even alone"):
        list(in_batches(3, boom, batch_size=4))


def test_length_bucketing_returns_input_order(llama_pair):
    prompts = ["a " * 30, "b", "c " * 10, "d " * 50, "e " * 3]
    batched = tuco.score(llama_pair, prompts, batch_size=2)
    alone = [tuco.score(llama_pair, [p])[0] for p in prompts]
    assert [s.n_tokens for s in batched] == [s.n_tokens for s in alone]
    assert [s.tuco for s in batched] == pytest.approx([s.tuco for s in alone], abs=1e-5)


def test_only_the_last_position_goes_through_the_head(llama_pair):
    from tuco.measures.batching import last_logits

    ids = [llama_pair.tokenizer(p)["input_ids"] for p in PROMPTS]
    b = pad(ids, llama_pair.tokenizer.pad_token_id, "cpu")
    shapes = []
    handle = llama_pair.tuned.lm_head.register_forward_hook(lambda m, a, o: shapes.append(tuple(o.shape)))
    try:
        got = last_logits(llama_pair, b)
    finally:
        handle.remove()
    assert shapes == [(3, 1, llama_pair.tuned.config.vocab_size)]
    with torch.no_grad():
        full = llama_pair.tuned(**b.model_inputs()).logits[:, -1]
    torch.testing.assert_close(got, full.float(), atol=1e-5, rtol=1e-5)
