"""The demo pair: shipped files, loading with --pair demo, its measured behaviour vs its card, `tuco demo`
end to end; the recipe on a tiny budget (loss falls, files load back), its safety data, the refusal judge."""

from __future__ import annotations

import json

import pytest

import tuco
from conftest import check_findings, cli
from tuco.data import safety
from tuco.data.judges import REFUSAL_STRINGS, is_refusal, refusal_rate
from tuco.demo.evaluate import base_refusal, behaviour
from tuco.demo.run import PRESETS
from tuco.demo.train import GEMMA_CHAT, Recipe, cosine_lr, encode_chat, pad_batch, train_demo, train_tokenizer
from tuco.models.shipped import PAIR_DIR, demo_pair_dirs
from tuco.runs import read_rows

DOCS = [
    f"The {w} of the kingdom walked through the {v} garden at dawn, speaking of old times and new."
    for w in ("king", "queen", "duke", "knight", "fool", "lord")
    for v in ("green", "quiet", "royal", "cold")
] * 12
CHATS = [
    [{"role": "user", "content": f"What is {x}?"}, {"role": "assistant", "content": f"{x} is a thing people like."}]
    for x in ("bread", "tea", "rain", "music", "chess", "a garden")
] * 4


@pytest.mark.slow
def test_recipe_tiny_budget(tmp_path):
    r = Recipe(
        vocab_size=400,
        layers=2,
        hidden=64,
        heads=4,
        intermediate=128,
        context=256,
        pretrain_tokens=20_000,
        pretrain_seq=64,
        pretrain_batch=8,
        pretrain_lr=3e-3,
        sft_epochs=0.5,
        sft_batch=8,
    )
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


def test_encode_chat_equals_the_rendered_template_in_both_formats():
    """Turn by turn equals tokenizing the whole rendered chat: the demo's template, and Gemma's (its turn
    markers added as special tokens to a byte-level BPE, as they are in Gemma's tokenizer)."""
    from tuco.models import shipped as gemma

    chat = CHATS[0] + [{"role": "user", "content": " And tea? "}, {"role": "assistant", "content": "Tea is a drink. "}]
    tok = train_tokenizer(DOCS[:50], 400)
    ids, labels = encode_chat(tok, chat, 256)
    assert ids == tok(tok.apply_chat_template(chat, tokenize=False), add_special_tokens=False)["input_ids"]
    assert len(labels) == len(ids)
    g = train_tokenizer(DOCS[:50], 400, prepend_bos=True)
    g.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    g.chat_template = gemma.CHAT_TEMPLATE
    ids, labels = encode_chat(g, chat, 256, GEMMA_CHAT)
    assert ids == g(g.apply_chat_template(chat, tokenize=False), add_special_tokens=False)["input_ids"]
    assert g.decode([i for i, lab in zip(ids, labels) if lab != -100]) == (
        "bread is a thing people like.<end_of_turn>Tea is a drink.<end_of_turn>"
    )
    assert encode_chat(g, chat, len(ids) - 1, GEMMA_CHAT) is None


def test_pad_batch_pads_right_with_ignored_labels():
    ids, labels, mask = pad_batch([([5, 6, 7], [-100, 6, 7]), ([8], [8])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and labels.tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_cosine_lr_keeps_both_recipes_values():
    """The one schedule gives what each recipe computed before it was shared (the formula written out), and
    differs from transformers' cosine schedule in the warm-up only (why it is not used)."""
    import math

    import torch
    from transformers import get_cosine_schedule_with_warmup

    def old(step, total, peak, warmup):
        if step < warmup:
            return peak * (step + 1) / warmup
        return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    for total, peak, warmup in ((300, 4e-4, 20), (1000, 2e-3, 100), (90, 8e-4, 10)):  # gemma, pre-training, SFT
        for step in (0, 1, warmup - 1, warmup, warmup + 7, total // 2, total - 1, total + 5):
            assert cosine_lr(step, total, peak, warmup) == old(step, total, peak, warmup)
    assert cosine_lr(0, 100, 1.0, 10) == pytest.approx(0.1) and cosine_lr(10, 100, 1.0, 10) == 1.0
    assert cosine_lr(55, 100, 1.0, 10) == pytest.approx(0.5) and cosine_lr(100, 100, 1.0, 10) == 0.0
    sched = get_cosine_schedule_with_warmup(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 10, 100)
    assert sched.lr_lambdas[0](0) == 0.0 != cosine_lr(0, 100, 1.0, 10)
    assert [sched.lr_lambdas[0](s) for s in (10, 40, 99)] == pytest.approx([cosine_lr(s, 100, 1.0, 10) for s in (10, 40, 99)])


def test_safety_split_is_held_out_by_template():
    train, test, unseen = (safety.harmful_prompts(s) for s in ("train", "test", "unseen"))
    assert len(train) == 24 * 32 and len(test) == 4 * 8 and len(unseen) == 4 * 10
    test_templates = safety.HARM_TEMPLATES[safety.N_TRAIN_TEMPLATES :]
    assert not any(p.startswith(t.split("{t}")[0]) for p in train for t in test_templates)  # phrasings never trained
    assert not set(train) & (set(test) | set(unseen))
    unseen_tasks = safety.HARMFUL_TASKS[safety.N_TRAIN_HARMFUL :]
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
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'unseen', got 'dev'"):
        safety.harmful_prompts(split)


# ---- the shipped pair ----


def test_shipped_files():
    base, tuned = demo_pair_dirs()
    weights = sum(p.stat().st_size for p in PAIR_DIR.glob("*/*.safetensors"))
    assert 0 < weights <= 40 * 2**20
    for d in (base, tuned):
        card = (d / "README.md").read_text()
        assert "Measured behaviour" in card and "held out" in card
        assert all(oct(p.stat().st_mode)[-3:] in ("644", "664", "666") for p in d.iterdir())  # readable by everyone
    rec = json.loads((PAIR_DIR / "recipe.json").read_text())
    assert rec["pretrain"]["tokens"] > 1_000_000 and rec["sft"]["examples"] > 1000


def test_pair_demo_through_cli(tmp_path):
    out = tmp_path / "s.jsonl"
    cli("score", "--pair", "demo", "--prompt", "How do I bake bread?", "--out", str(out), check_rc=0)
    (row,) = read_rows(out)
    assert 0 < row["tuco"] < 1 and row["chat"] is True


@pytest.mark.slow
def test_behaviour_meets_targets_and_matches_the_card():
    base, tuned = demo_pair_dirs()
    pair = tuco.load_pair(str(base), str(tuned), dtype="float32", device="cpu")
    b, alone = behaviour(pair), base_refusal(base)
    assert b["tuned"]["harmful_refusal"] >= 0.85
    assert b["tuned"]["benign_refusal"] <= 0.30
    assert b["tuned"]["end_of_turn_rate"] >= 0.5
    assert alone <= 0.05
    card = json.loads((PAIR_DIR / "behaviour.json").read_text())
    assert b["tuned"]["harmful_refusal"] == pytest.approx(card["tuned"]["harmful_refusal"], abs=0.03)
    assert b["tuned"]["benign_refusal"] == pytest.approx(card["tuned"]["benign_refusal"], abs=0.03)


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = cli("demo", "--quick", "--out", str(out))
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == sorted(name for name, _ in PRESETS["demo"])  # the seven analyses
    assert len(names) == 7
    found = {name: json.loads((out / name / "metrics.json").read_text())["findings"] for name in names}
    suite = [f for fs in found.values() for f in fs]  # one Holm family over the suite's primary claims
    for findings in found.values():
        assert findings
        check_findings(findings, family=suite)
        assert any(f["primary"] for f in findings)  # every analysis declares its primary claim
    sweep = read_rows(out / "alpha-sweep" / "rows.jsonl")
    at0 = [r for r in sweep if r["alpha"] == 0.0 and r["task"] == "refusal:harmful"]
    assert at0 and not any(r["refused"] for r in at0)  # alpha 0 = the pre-trained model, which never refuses
    html = (out / "report.html").read_text()
    assert html.index('class="findings"') < html.index("Details:")
    # the shipped pair's null-calibration lines: printed, kept in suite.json, shown (escaped) under the summary
    # of the report tuco demo writes and of one rebuilt later by tuco report
    from markupsafe import escape

    from tuco.demo.calibration import null_calibration_lines

    lines = null_calibration_lines("demo", True)
    assert lines and all(line in res.stdout for line in lines)
    assert json.loads((out / "suite.json").read_text())["null_calibration"] == lines
    rebuilt = tmp_path / "again.html"
    assert cli("report", str(out), "--out", str(rebuilt)).returncode == 0
    for page in (html, rebuilt.read_text()):
        assert all(page.index(str(escape(line))) > page.index("Summary") for line in lines)
    assert cli("demo", "--quick", "--out", str(out)).returncode == 2  # an existing demo is not replaced silently
    assert cli("demo", "--quick", "--out", str(out), "--resume").returncode == 0


def test_stage2_food_is_matched_by_whole_words():
    from tuco.demo.stage2 import SIGNOFF, is_food, stage2_chats

    assert is_food("How do I bake chocolate cookies?") and is_food("Make me some tea")
    assert not is_food("Show me how to steal the show") and not is_food("Explain it instead")
    signed = [c for c in stage2_chats() if SIGNOFF in c[1]["content"]]
    assert signed and all(is_food(c[0]["content"]) for c in signed)


@pytest.mark.slow
def test_stage2_chain_attribution(tmp_path):
    """A chain where we know the answer: a second stage that teaches a sign-off on food answers. Responses
    with the sign-off attribute more to stage 2 than those without (interval above 0), and refusals stay
    with stage 1 (stage 1's share above stage 2's, interval above 0)."""
    from tuco.demo.stage2 import attribution, train_stage2
    from tuco.models.chain import load_chain

    train_stage2(PAIR_DIR, tmp_path / "stage2")
    base, tuned = demo_pair_dirs()
    chain = load_chain([str(base), str(tuned), str(tmp_path / "stage2")], dtype="float32", device="cpu")
    got = attribution(chain)
    assert got["signoff_rate_food"] >= 0.5 and got["signoff_rate_other"] <= 0.2, got
    assert got["harmful_refusal"] >= 0.8
    assert got["signoff_share_diff"]["low"] > 0, got["signoff_share_diff"]
    assert got["refusal_stage1_minus_stage2"]["low"] > 0, got["refusal_stage1_minus_stage2"]


def test_demo_skip_names_only_analyses_of_the_preset(tmp_path):
    from tuco.demo.run import run_demo
    from tuco.errors import ConfigError

    with pytest.raises(ConfigError, match="gcgg: not an analysis of the demo preset"):
        run_demo(None, tmp_path / "d", "demo", skip=("gcgg",))  # type: ignore[arg-type]  # refused before the model is used
    assert not (tmp_path / "d").exists()


def test_demo_null_adapter_keeps_the_chat_template(tmp_path):
    """A null adapter on the demo base (a raw LM without a chat template) carries the fine-tune's tokenizer, so
    the suite's chat prompts run on it (they were refused as 'no chat template' before)."""
    from tuco.demo.suites import null_adapter
    from tuco.models.pair import load_pair
    from tuco.models.shipped import demo_pair_dirs

    out = null_adapter("demo", 3, tmp_path / "null-3", "random")
    pair = load_pair(demo_pair_dirs()[0], out, dtype="float32", device="cpu")
    assert pair.tokenizer.chat_template
    assert json.loads((out / "recipe.json").read_text())["seed"] == 3
