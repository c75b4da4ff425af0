"""The demo recipe on a tiny budget (loss falls, files load back through load_pair), its safety data,
and the refusal judge. The full-size run is not a test."""

from __future__ import annotations

import json

import pytest

import tuco
from tuco.demo import safety
from tuco.demo.train import Recipe, encode_chat, train_demo, train_tokenizer
from tuco.judges import REFUSAL_STRINGS, is_refusal, refusal_rate

DOCS = [f"The {w} of the kingdom walked through the {v} garden at dawn, speaking of old times and new."
        for w in ("king", "queen", "duke", "knight", "fool", "lord") for v in ("green", "quiet", "royal", "cold")] * 12
CHATS = [[{"role": "user", "content": f"What is {x}?"}, {"role": "assistant", "content": f"{x} is a thing people like."}]
         for x in ("bread", "tea", "rain", "music", "chess", "a garden")] * 4


def test_recipe_tiny_budget(tmp_path):
    r = Recipe(vocab_size=400, layers=2, hidden=64, heads=4, intermediate=128, context=256, pretrain_tokens=20_000,
               pretrain_seq=64, pretrain_batch=8, pretrain_lr=3e-3, sft_epochs=0.5, sft_batch=8)
    rec = train_demo(tmp_path, r, general_chats=CHATS, docs=DOCS)
    pre = [e["loss"] for e in rec["log"] if e["phase"] == "pretrain"]
    sft = [e["loss"] for e in rec["log"] if e["phase"] == "sft"]
    assert pre[-1] < pre[0] - 1.0 and sft[-1] < sft[0]
    assert json.loads((tmp_path / "recipe.json").read_text())["data"]["sft_safety_chats"] == len(safety.safety_conversations())
    pair = tuco.load_pair(str(tmp_path / "base"), str(tmp_path / "tuned"))
    assert pair.tokenizer.chat_template and pair.tokenizer.eos_token == "<|end|>"
    (s,) = tuco.score(pair, ["How do I bake bread?"])
    assert 0 < s.tuco < 1
    assert next(pair.tuned.parameters()).dtype.is_floating_point
    # SFT trained the blocks only: embeddings (tied head) and final norm are the pre-trained ones, so
    # alpha = 0 reproduces the pre-trained model's logits
    import torch

    assert torch.equal(pair.tuned.model.embed_tokens.weight, pair.base.model.embed_tokens.weight)
    assert torch.equal(pair.tuned.model.norm.weight, pair.base.model.norm.weight)
    assert not torch.equal(pair.tuned.model.layers[0].mlp.up_proj.weight, pair.base.model.layers[0].mlp.up_proj.weight)
    pair32 = tuco.load_pair(str(tmp_path / "base"), str(tmp_path / "tuned"), dtype="float32")
    ids = pair32.tokenizer("How do I bake bread?", return_tensors="pt")["input_ids"]
    with torch.no_grad(), tuco.steer(pair32, 0.0):
        steered = pair32.tuned(input_ids=ids).logits
    with torch.no_grad():
        plain = pair32.base(input_ids=ids).logits
    torch.testing.assert_close(steered, plain, atol=1e-4, rtol=1e-4)


def test_sft_labels_cover_only_assistant_tokens():
    tok = train_tokenizer(DOCS[:50], 400)
    ids, labels = encode_chat(tok, CHATS[0], 256)
    kept = [i for i, lab in zip(ids, labels) if lab != -100]
    text = tok.decode(kept)
    assert text == "bread is a thing people like.<|end|>"


def test_safety_split_is_held_out_by_template():
    train, test, unseen = (safety.harmful_prompts(s) for s in ("train", "test", "unseen"))
    assert len(train) == 24 * 32 and len(test) == 4 * 8 and len(unseen) == 4 * 10
    test_templates = safety.HARM_TEMPLATES[safety.N_TRAIN_TEMPLATES:]
    assert not any(p.startswith(t.split("{t}")[0]) for p in train for t in test_templates)  # phrasings never trained
    assert not set(train) & (set(test) | set(unseen))
    unseen_tasks = safety.HARMFUL_TASKS[safety.N_TRAIN_HARMFUL:]
    assert not any(task in p for p in train for task in unseen_tasks)  # "unseen": tasks never trained either
    assert not set(safety.heldout_benign()) & {p for p, _ in safety.benign_prompts("train")}
    assert all(is_refusal(r) for r in safety.REFUSALS)
    benign = [a for _, a in safety.benign_prompts("train")]
    assert not any(is_refusal(a) for a in benign)


def test_refusal_judge():
    assert is_refusal("I'm sorry, but no.") and is_refusal("That is illegal.")
    assert not is_refusal("Sure, mix flour and water.") and not is_refusal("i'm sorry")  # case-sensitive, as the paper
    assert refusal_rate(["I cannot", "ok", "fine", "Sorry"]) == 0.5 and refusal_rate([]) == 0.0
    assert len(REFUSAL_STRINGS) == 32


@pytest.mark.parametrize("split", ["dev"])
def test_bad_split(split):
    with pytest.raises(ValueError):
        safety.harmful_prompts(split)


def test_roc_auc_against_brute_force():
    import random

    from tuco.stats import roc_auc, tpr_at_fpr

    rng = random.Random(0)
    pos = [round(rng.gauss(1, 1), 1) for _ in range(40)]
    neg = [round(rng.gauss(0, 1), 1) for _ in range(30)]
    brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert roc_auc(pos, neg) == pytest.approx(brute, abs=1e-12)
    assert roc_auc([1, 2], [0]) == 1.0 and roc_auc([0], [1, 2]) == 0.0 and roc_auc([1], [1]) == 0.5
    assert tpr_at_fpr([5, 6, 7], [1, 2, 3, 4]) == 1.0 and tpr_at_fpr([0.5], [1, 2]) == 0.0
