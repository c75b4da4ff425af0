"""The one decode loop (tuco.measures.decoding): in batch mode it equals Hugging Face's own ``generate`` under the
engine bit for bit (tests/reference.py); in continuous mode rows that join and leave a running batch at different
steps, each at its own alpha, equal the same prompt generated alone (tokens, per-token TuCo) on every family,
sliding-window caches included; samples come from each row's own generator; logprobs equal the model's own."""

from __future__ import annotations

import pytest
import torch

from conftest import PROMPTS
from reference import hf_generate
from tuco.demo.tiny import FAMILIES, tiny_models
from tuco.errors import ConfigError
from tuco.measures.batching import pad
from tuco.measures.decoding import Decoder, Row
from tuco.measures.generation import generate_ids
from tuco.measures.sampling import Sampling
from tuco.models.pair import ModelPair

# full attention and sliding window in the fast tier; every other family in the slow tier (make test)
FAST = ("llama", "gemma3_text")
BATTERY = [pytest.param(f, marks=() if f in FAST else pytest.mark.slow) for f in FAMILIES]

# long enough to cross the tiny configs' sliding window (16) with the generated tokens
TEXTS = PROMPTS + ["A much longer prompt, so that the batch is left-padded with rows of very different lengths here."]
ALPHAS = [1.0, 0.5, 1.25, 0.0]
LENGTHS = [10, 4, 7, 3]


def _ids(pair):
    return [pair.tokenizer(t)["input_ids"] for t in TEXTS]


def _run_staggered(pair, rows):
    """Rows 0-1 start together, row 2 joins after two steps, row 3 after three more; run until all finish."""
    with Decoder(pair) as d:
        d.add(rows[:2])
        d.step(), d.step()
        d.add([rows[2]])
        d.step(), d.step(), d.step()
        d.add([rows[3]])
        widths = []
        while d.rows:
            d.step()
            widths.append(d.width)
    return widths


@pytest.mark.parametrize("family_name", BATTERY)
def test_rows_joining_and_leaving_equal_each_row_alone(family_name, tokenizer):
    base, tuned, tok = tiny_models(family_name, tokenizer=tokenizer)
    pair = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    ids = _ids(pair)
    rows = [Row(ids=i, alpha=a, sampling=Sampling(max_new_tokens=n)) for i, a, n in zip(ids, ALPHAS, LENGTHS)]
    _run_staggered(pair, rows)
    for row, i, a, n in zip(rows, ids, ALPHAS, LENGTHS):
        (alone,) = hf_generate(pair, [i], alpha=a, max_new_tokens=n)  # independent: HF generate, one row
        assert row.tokens == alone["token_ids"]
        assert row.token_tuco == pytest.approx(alone["token_tuco"], rel=1e-4, abs=1e-6)
        assert row.finish_reason == ("stop" if alone["finished"] else "length")


@pytest.mark.parametrize("family_name", BATTERY)
def test_batch_mode_equals_hf_generate_bit_for_bit(family_name, tokenizer):
    """Rows that finish early stay in a batch decoder (fed padding), so every pass has generate's shapes."""
    base, tuned, tok = tiny_models(family_name, tokenizer=tokenizer)
    pair = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    ids = _ids(pair)
    for alpha in (1.0, 0.0, 1.25):
        for per_token in (False, True):
            want = hf_generate(pair, ids, alpha=alpha, max_new_tokens=12, per_token=per_token)
            got = generate_ids(pair, ids, alpha=alpha, sampling=Sampling(max_new_tokens=12), per_token=per_token)
            for g, w in zip(got, want):
                assert g.token_ids == w["token_ids"] and g.finished == w["finished"]
                assert g.token_tuco == w["token_tuco"]  # exactly: the same computation
                assert g.prompt_tuco == w["prompt_tuco"]


def test_finished_rows_leave_every_cache(llama_pair):
    rows = [Row(ids=i, alpha=a, sampling=Sampling(max_new_tokens=n)) for i, a, n in zip(_ids(llama_pair), ALPHAS, LENGTHS)]
    with Decoder(llama_pair) as d:
        d.add(rows)
        caches = d._caches(d._cache)
        assert len(caches) == 2  # the running model's and the pre-trained blocks'
        while d.rows:
            d.step()
            d._prune()
            if not d.rows:
                break
            for c in caches:
                assert c.layers[0].keys.shape[0] == len(d.rows)  # dropped from both caches
                assert c.layers[0].keys.shape[2] == d.width
            # the left padding no running row needs is cut
            assert d.width == max(len(r.ids) + len(r.tokens) - 1 for r in d.rows)
            cancelled = [r for r in d.rows if len(r.tokens) == 4]
            for r in cancelled:
                d.finish(r, "cancelled")
    assert [r.finish_reason for r in rows] == ["cancelled", "length", "cancelled", "length"]


def test_samples_come_from_each_rows_own_generator(llama_pair):
    ids = _ids(llama_pair)
    sampling = Sampling(max_new_tokens=8, temperature=1.0, top_p=0.9)
    together = [Row(ids=i, sampling=sampling, seed=s) for i, s in zip(ids, (1, 2, 3, 4))]
    _run_staggered(llama_pair, together)
    for row, i, s in zip(together, ids, (1, 2, 3, 4)):
        alone = Row(ids=i, sampling=sampling, seed=s)
        torch.manual_seed(123)  # the global RNG plays no part
        with Decoder(llama_pair) as d:
            d.add([alone])
            while d.rows:
                d.step()
        assert alone.tokens == row.tokens
    assert len({tuple(r.tokens) for r in together}) > 1


def test_logprobs_are_the_models_own(llama_pair):
    ids = _ids(llama_pair)
    rows = [Row(ids=i, sampling=Sampling(max_new_tokens=3), logprobs=2, prompt_logprobs=True) for i in ids]
    with Decoder(llama_pair) as d:
        d.add(rows)
        while d.rows:
            d.step()
    for row in rows:
        full = row.ids + row.tokens
        b = pad([full], llama_pair.tokenizer.pad_token_id, "cpu")
        with torch.no_grad():
            logp = torch.log_softmax(llama_pair.tuned(**b.model_inputs()).logits[0].float(), -1)
        want = [float(logp[j, full[j + 1]]) for j in range(len(full) - 1)]
        assert row.prompt_token_logprobs[0] is None
        assert row.prompt_token_logprobs[1:] + row.token_logprobs == pytest.approx(want, abs=1e-4)
        assert all(len(t) == 2 and max(t.values()) >= lp - 1e-6 for t, lp in zip(row.top_logprobs, row.token_logprobs))
        assert row.token_logprobs[0] == pytest.approx(max(row.top_logprobs[0].values()))  # greedy picks the top token


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"temperature": -1}, "temperature must be >= 0"),
        ({"top_p": 0}, "top_p must be in"),
        ({"top_p": 0.5}, "top_p 0.5 only applies when sampling"),
    ],
)
def test_bad_sampling_is_refused_where_it_is_built(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        Sampling(**kw)


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"logprobs": 50}, "logprobs must be between"),
        ({"alpha": -0.5}, "alpha must be a finite number >= 0"),
        ({"ids": []}, "the prompt is empty"),
    ],
)
def test_bad_rows_are_refused(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        Row(**{"ids": [5, 6, 7], **kw})
