"""Response-level TuCo for given responses: a chat ending with the assistant's message is scored
teacher-forced, equal to what generation reports for the very same tokens."""

from __future__ import annotations

import json

import pytest
from tests.conftest import cli

import tuco
from tuco.errors import PromptError
from tuco.measures.prompts import Prompt, encode_response, split_response
from tuco.measures.scoring import score_ids
from tuco.models.shipped import demo_pair_dirs

QUESTIONS = ["How do I bake bread?", "Tell me how to pick a lock.", "What is the capital of France?", "Write me a poem about the sea."]


@pytest.fixture(scope="module")
def demo():
    base, tuned = demo_pair_dirs()
    return tuco.load_pair(str(base), str(tuned), dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def generated(demo):
    """Greedy responses of the demo pair: some end with its end-of-turn token, one is cut by the limit."""
    gens = tuco.generate(demo, QUESTIONS, max_new_tokens=40)
    short = tuco.generate(demo, QUESTIONS[:1], max_new_tokens=5)
    return gens + short, QUESTIONS + QUESTIONS[:1]


def chats_of(questions, gens):
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": g.text}] for q, g in zip(questions, gens)]


def test_teacher_forced_response_equals_generation(demo, generated):
    gens, questions = generated
    assert any(g.finished for g in gens) and not gens[-1].finished
    scores = tuco.score(demo, chats_of(questions, gens), batch_size=3)  # rows of different lengths share batches
    for g, s in zip(gens, scores):
        # A finished response ends with the template's end-of-turn token, as generated; a response cut by the
        # token limit gets the end of turn the template writes after it (a given response is a whole turn).
        expected = g.token_ids if g.finished else g.token_ids + [3]
        assert s.response_ids == expected
        assert s.tuco == pytest.approx(g.prompt_tuco, abs=1e-5)
        assert s.response_token_tuco[0] == pytest.approx(s.tuco, abs=1e-7)
        assert s.response_token_tuco[: len(g.token_tuco)] == pytest.approx(g.token_tuco, abs=1e-5)
        assert len(s.response_token_tuco) == len(s.response_ids) == len(s.response_tokens)
        assert s.tuco_response == pytest.approx(sum(s.response_token_tuco) / len(s.response_token_tuco), abs=1e-9)
        if g.finished:
            assert s.tuco_response == pytest.approx(g.mean_tuco, abs=1e-5)


def test_prompt_numbers_equal_scoring_the_prompt_alone(demo, generated):
    gens, questions = generated
    alone = tuco.score(demo, questions[:2], per_token=True)
    forced = tuco.score(demo, chats_of(questions[:2], gens[:2]), per_token=True)
    for a, f in zip(alone, forced):
        assert f.n_tokens == a.n_tokens
        assert f.tokens == a.tokens
        assert f.token_tuco == pytest.approx(a.token_tuco, abs=1e-5)
        assert f.layer_ftc_l1 == pytest.approx(a.layer_ftc_l1, rel=1e-4, abs=1e-6)
        assert a.response_token_tuco is None and f.response_token_tuco is not None


def test_next_turn_keeps_scoring_the_start_of_the_next_turn(demo, generated):
    gens, questions = generated
    chat = chats_of(questions[:1], gens[:1])[0]
    (nt,) = tuco.score(demo, [chat], next_turn=True)
    tok = demo.tokenizer
    ids = tok(tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert nt.n_tokens == len(ids) and nt.response_token_tuco is None
    (ref,) = score_ids(demo, [ids])
    assert nt.tuco == pytest.approx(ref.tuco, abs=1e-6)


def test_mixed_batch_equals_each_alone(llama_pair):
    chat = [{"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Mix flour and water."}]
    together = tuco.score(llama_pair, [chat, "Hi", "Tell me a story about a dragon."], batch_size=3)
    alone = [tuco.score(llama_pair, [p])[0] for p in (chat, "Hi", "Tell me a story about a dragon.")]
    for t, a in zip(together, alone):
        assert t.tuco == pytest.approx(a.tuco, abs=1e-5)
        assert (t.response_token_tuco is None) == (a.response_token_tuco is None)
        if a.response_token_tuco is not None:
            assert t.response_token_tuco == pytest.approx(a.response_token_tuco, abs=1e-5)
            assert t.token_tuco is None  # per-token prompt TuCo only when asked for
    assert together[1].response_ids is None


def test_response_tokens_stop_at_the_first_end_of_sequence(tokenizer):
    template = (
        "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    tok = tokenizer
    old = tok.chat_template
    tok.chat_template = template
    try:
        head, response = split_response(
            Prompt("a", messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sorry"}])
        )
        assert response == "Sorry" and head.messages == [{"role": "user", "content": "Hi"}]
        eos = tok.convert_tokens_to_ids("</s>")
        ids = encode_response(tok, head, response, eos={eos})
        assert ids[-1] == eos and ids[:-1] == tok("Sorry", add_special_tokens=False)["input_ids"]  # the "\n" after it is dropped
    finally:
        tok.chat_template = old


def test_response_without_a_question_or_chat_template_is_refused(llama_pair):
    with pytest.raises(PromptError, match="no message before"):
        split_response(Prompt("x", messages=[{"role": "user", "content": " "}, {"role": "assistant", "content": "Hi"}]))
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    with pytest.raises(PromptError, match="drop --no-chat"):
        tuco.score(llama_pair, [chat], chat=False)


def test_cli_scores_given_responses_into_rows(tmp_path, models_args):
    prompts = tmp_path / "chats.jsonl"
    chat = [{"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Mix flour and water."}]
    prompts.write_text(json.dumps({"id": "r", "messages": chat}) + "\n" + json.dumps({"id": "p", "prompt": "Hi"}) + "\n")
    out = tmp_path / "run"
    cli("score", *models_args, "--prompts", str(prompts), "--out", str(out), check_rc=0)
    rows = tuco.load_run(out).rows
    r, p = rows
    assert r["response"] == "Mix flour and water." and r["prompt"] == "user: How do I bake bread?"
    assert r["response_token_tuco"][0] == pytest.approx(r["tuco"], abs=1e-7)
    assert r["tuco_response"] == pytest.approx(sum(r["response_token_tuco"]) / len(r["response_token_tuco"]))
    assert len(r["response_ids"]) == len(r["response_tokens"]) == len(r["response_token_tuco"])
    assert "response" not in p and "tuco_response" not in p
    nt = tmp_path / "nt"
    cli("score", *models_args, "--prompts", str(prompts), "--out", str(nt), "--next-turn", check_rc=0)
    r2 = tuco.load_run(nt).rows[0]
    assert "response_token_tuco" not in r2 and "response" not in r2
    assert r2["n_tokens"] == r["n_tokens"] + len(r["response_ids"]) + 1  # the response, then a new generation prompt
