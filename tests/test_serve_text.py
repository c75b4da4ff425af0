"""`tuco serve`'s text of a response as its tokens arrive (``tuco.serve.text``): incremental detokenisation
equals decoding the whole text, costs time linear in the response's length, and stop strings cut exactly
where they cut the whole text. Tokenizers only (no model): the shipped demo pair's byte-level BPE and the
tiny test tokenizer."""

from __future__ import annotations

import random

import pytest

from tuco.demo.tiny import tiny_tokenizer
from tuco.serve.text import Detokenizer, TextStream, overlap

TEXTS = [
    "How do I bake bread? Mix flour, water, salt and yeast; knead; wait.",
    "naïve café — 日本語のテキスト 😀🎉 ok\n\n  indented\tline",
    "<b>markup</b> & entities &amp; stay text",
]


@pytest.fixture(scope="module", params=["demo", "tiny"])
def tok(request):
    if request.param == "tiny":
        return tiny_tokenizer()
    from transformers import AutoTokenizer

    from tuco.models.shipped import demo_pair_dirs

    return AutoTokenizer.from_pretrained(str(demo_pair_dirs()[1]))


def _random_ids(tok, rng, n):
    special = set(tok.all_special_ids)
    ids = [t for t in (rng.randrange(len(tok)) for _ in range(n)) if t not in special]
    return ids or [tok("a", add_special_tokens=False)["input_ids"][0]]


def _stream(tok, ids, stops=()):
    s = TextStream(tok, list(stops))
    sent = []
    for i, t in enumerate(ids):
        piece, text = s.feed(t, last=i == len(ids) - 1)
        sent.append(text)
        if s.stopped:
            break
    return s, "".join(sent)


def test_pieces_join_to_the_whole_decoded_text(tok):
    rng = random.Random(0)
    cases = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS] + [
        _random_ids(tok, rng, rng.randrange(1, 80)) for _ in range(200)
    ]
    for ids in cases:
        whole = tok.decode(ids, skip_special_tokens=True)
        d = Detokenizer(tok)
        pieces = [d.add(t) for t in ids]
        assert "".join(pieces) + d.flush() == whole
        s, sent = _stream(tok, ids)
        assert sent == s.text == whole and "".join(s.pieces) == whole and len(s.pieces) == len(ids)


def test_special_tokens_add_no_text(tok):
    ids = tok("Hello there", add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    s, sent = _stream(tok, [*ids, eos])
    assert sent == tok.decode(ids) and s.pieces[-1] == ""


def test_detokenisation_is_linear_in_the_response_length(tok):
    """Each token decodes a window of a few tokens, never the whole response again."""

    class Counting:
        def __init__(self, inner):
            self.inner, self.tokens = inner, 0

        def decode(self, ids, skip_special_tokens=False):
            self.tokens += len(ids)
            return self.inner.decode(ids, skip_special_tokens=skip_special_tokens)

    ids = tok(" ".join(TEXTS) * 20, add_special_tokens=False)["input_ids"]
    assert len(ids) > 500
    counting = Counting(tok)
    d = Detokenizer(counting)
    for t in ids:
        d.add(t)
    d.flush()
    assert counting.tokens < 8 * len(ids)  # re-decoding the whole text per token: ~len(ids)**2 / 2 (> 100x more here)


@pytest.mark.parametrize("stops", [["bread"], ["\n\n", "yeast"], ["😀"], ["tout"], ["a", "ab"], ["line"], ["&amp;"], ["stay text"]])
def test_stop_strings_cut_the_whole_text_exactly(tok, stops):
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        whole = tok.decode(ids, skip_special_tokens=True)
        s, sent = _stream(tok, ids, stops)
        cuts = [whole.find(x) for x in stops if x in whole]
        expected = whole[: min(cuts)] if cuts else whole
        assert sent == s.text == expected
        assert s.stopped == bool(cuts)
        if cuts:  # it stopped at the token that completed the first stop string, no later
            n = len(s.pieces)
            assert any(x in tok.decode(ids[:n], skip_special_tokens=True) for x in stops)
            assert not any(x in tok.decode(ids[: n - 1], skip_special_tokens=True) for x in stops)


def test_text_that_may_start_a_stop_string_is_held_back():
    class Chars:  # one character per token
        def decode(self, ids, skip_special_tokens=False):
            return "".join(chr(i) for i in ids)

    s = TextStream(Chars(), ["END"])
    out = [s.feed(ord(c))[1] for c in "abEN"]
    assert out == ["a", "b", "", ""]  # "EN" could still become "END"
    assert s.feed(ord("d"))[1] == "ENd"  # it did not
    assert s.feed(ord("E"))[1] == "" and s.feed(ord("N"))[1] == "" and s.feed(ord("D"))[1] == "" and s.stopped
    assert s.text == "abENd"
    assert overlap("xxEN", "END") == 2 and overlap("xx", "END") == 0
