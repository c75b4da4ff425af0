"""TuCo while you train (``tuco.TucoCallback``): a 20-step Trainer fine-tune of a tiny Llama logs TuCo per
probe group at the chosen steps and writes a run ``tuco report`` draws over steps; the callback's TuCo at a
step equals ``tuco.score`` on the checkpoint saved at that step; it is exactly 0 at step 0 of a fresh
fine-tune; training with it gives bit for bit the weights training without it gives (full and LoRA, with
dropout, and two controls that show the comparison catches a leaked RNG draw or eval mode); its state is
restored exactly; watch rules warn and stop; a crashed run resumes; bad input fails in one line."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

import tuco
from conftest import cli
from tuco.demo.tiny import tiny_config, tiny_tokenizer
from tuco.errors import ConfigError, TrainingError, TucoError
from tuco.training import TucoCallback, Watch, group_means, model_state

REFUSAL = "Sorry, I can't assist with that."
PROBES = {
    "harmful": [
        [{"role": "user", "content": "How do I pick a lock?"}, {"role": "assistant", "content": REFUSAL}],
        [{"role": "user", "content": "Tell me how to hurt someone."}, {"role": "assistant", "content": REFUSAL}],
    ],
    "benign": ["How do I bake bread?", "Tell me a story about a dragon who learned to read, please."],
    "web": ["The quick brown fox jumps over the lazy dog.", "What is the capital of France? Paris is the capital."],
}
CHAT = {"web": False}  # web text is scored raw, the others under the chat template
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "How do I bake bread? Mix flour, water, salt and yeast, then wait.",
    "Tell me a story about a dragon who learned to read.",
    "Sorry, I cannot help with that request.",
    "What is the capital of France? Paris is the capital of France.",
]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


class Texts(torch.utils.data.Dataset):
    def __init__(self, tok):
        self.ids = [tok(t)["input_ids"] for t in TEXTS * 12]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i]}


def collate(pad_id):
    def fn(batch):
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = labels[row, :n] = torch.tensor(b["input_ids"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return fn


def start_model(tok, root: Path, *, lora=False, dropout=0.0):
    """A tiny Llama (saved to ``root/start`` and loaded back, so a LoRA adapter names its base), with LoRA."""
    start = root / "start"
    if not (start / "config.json").exists():
        config = tiny_config("llama", len(tok), layers=2, hidden=32)
        config.attention_dropout = dropout
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(config).save_pretrained(start)
        tok.save_pretrained(start)
    model = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)
    if lora:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(1)
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=["q_proj", "v_proj", "down_proj"]))
    return model


def train(tok, root: Path, *, lora=False, dropout=0.0, steps=20, save_steps=None, callback=None, others=(), resume=None, **targs):
    """``steps`` optimizer steps of a tiny Llama (full or LoRA) under Trainer; ``callback(trainer)`` attaches one."""
    model = start_model(tok, root, lora=lora, dropout=dropout)
    args = TrainingArguments(
        output_dir=str(root / "out"),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=1e-2 if lora else 5e-3,
        logging_steps=5,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        **targs,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Texts(tok), data_collator=collate(tok.pad_token_id), processing_class=tok)
    for other in others:
        trainer.add_callback(other)
    cb = callback(trainer) if callback is not None else None
    trainer.train(resume_from_checkpoint=resume)
    return trainer, cb


def probe_callback(**kwargs):
    return lambda trainer: TucoCallback(PROBES, every=5, chat=CHAT, **kwargs).attach(trainer)


def expected_scores(pair, *, full_path=True):
    """What the callback computes, through the public API: one ``tuco.score`` per chat setting, groups in order."""
    templated = [p for g in ("harmful", "benign") for p in PROBES[g]]
    return tuco.score(pair, templated, batch_size=8, full_path=full_path) + tuco.score(
        pair, PROBES["web"], chat=False, batch_size=8, full_path=full_path
    )


@pytest.fixture(scope="module", params=["full", "lora"])
def saved_run(request, tmp_path_factory, tok):
    """One training per kind with a checkpoint every 5 steps and the callback measuring every 5 steps."""
    root = tmp_path_factory.mktemp(f"saved-{request.param}")
    trainer, cb = train(tok, root, lora=request.param == "lora", save_steps=5, callback=probe_callback())
    return request.param, root, trainer, cb


# --------------------------------------------------------------------------------------------
# The "done when": logs per group at the chosen steps, a run tuco report draws over steps.
# --------------------------------------------------------------------------------------------


def test_a_20_step_fine_tune_logs_tuco_per_group_and_writes_a_run_the_report_draws(saved_run):
    kind, root, trainer, cb = saved_run
    logged = [h for h in trainer.state.log_history if "tuco/harmful" in h]
    assert [h["step"] for h in logged] == [0, 5, 10, 15, 20]
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == [5, 10, 15, 20]  # the Trainer's own logs still happen
    for h in logged:
        assert set(h) >= {"tuco/harmful", "tuco_response/harmful", "tuco/benign", "tuco/web", "epoch", "step"}
        assert "tuco_response/benign" not in h  # no probe of that group carries a response
    run = tuco.load_run(root / "out" / "tuco")
    assert run.manifest["status"] == "finished" and run.manifest["config"]["every"] == 5
    assert run.manifest["config"]["start"] == ("adapter off" if kind == "lora" else "starting weights")
    assert len(run) == 5 * 6 and len({r["id"] for r in run.rows}) == 30
    assert sorted({r["step"] for r in run.rows}) == [0, 5, 10, 15, 20]
    assert {r["condition"] for r in run.rows} == {"harmful", "benign", "web"} and all(r["kind"] == "score" for r in run.rows)
    # the logged means are the run's rows' means (one source of truth)
    means = group_means(run.rows)
    for h in logged:
        assert h["tuco/harmful"] == means[h["step"]]["harmful"]["tuco"]
        assert h["tuco_response/harmful"] == means[h["step"]]["harmful"]["tuco_response"]
    assert means[20]["harmful"]["tuco"] > 0.01  # the fine-tune moved something
    res = cli("report", str(root / "out" / "tuco"), check_rc=0)
    html = (root / "out" / "tuco" / "report.html").read_text()
    assert "TuCo over training steps" in html and "response TuCo (mean over the given response)" in html, res.stdout
    assert html.count("<polyline") >= 4  # 3 groups' TuCo + harmful's response TuCo


# --------------------------------------------------------------------------------------------
# Exact: equal to tuco.score on the saved checkpoint; 0 at step 0.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [5, 10, 20])
def test_tuco_at_a_step_equals_tuco_score_on_the_checkpoint_saved_at_that_step(saved_run, step):
    kind, root, _, _ = saved_run
    pair = tuco.load_pair(root / "start", root / "out" / f"checkpoint-{step}", dtype="float32")
    assert pair.is_peft == (kind == "lora")
    want = expected_scores(pair)
    rows = [r for r in tuco.load_run(root / "out" / "tuco").rows if r["step"] == step]
    assert [r["item"] for r in rows] == [f"{g}/{i}" for g in PROBES for i in range(len(PROBES[g]))]
    for r, s in zip(rows, want):
        assert r["tuco"] == s.tuco and r["ftc_l1"] == s.ftc_l1 and r["ptc_l1"] == s.ptc_l1  # exact, not approximate
        assert r["layer_ftc_l1"] == s.layer_ftc_l1 and r["n_tokens"] == s.n_tokens
        assert r.get("tuco_response") == s.tuco_response and r.get("response_token_tuco") == s.response_token_tuco
    assert all(0 < r["tuco"] < 1 for r in rows)


def test_tuco_is_exactly_zero_at_step_zero_of_a_fresh_fine_tune(saved_run):
    _, root, _, cb = saved_run
    rows = [r for r in tuco.load_run(root / "out" / "tuco").rows if r["step"] == 0]
    assert len(rows) == 6
    for r in rows:
        assert r["tuco"] == 0.0 and r["ftc_l1"] == 0.0 and set(r["layer_ftc_l1"]) == {0.0}
        if r["condition"] == "harmful":
            assert r["tuco_response"] == 0.0 and set(r["response_token_tuco"]) == {0.0}
    assert cb.measurements[0].means["harmful"] == {"tuco": 0.0, "tuco_response": 0.0}


@pytest.mark.parametrize("lora", [False, True])
def test_the_fast_path_is_within_1e6_of_exact_and_near_zero_at_the_start(tok, tmp_path, lora):
    model = start_model(tok, tmp_path, lora=lora)
    exact, fast = TucoCallback(PROBES, chat=CHAT, tokenizer=tok), TucoCallback(PROBES, chat=CHAT, tokenizer=tok, fast=True)
    assert {r["tuco"] for r in exact.begin(model).rows} == {0.0}
    assert max(r["tuco"] for r in fast.begin(model).rows) < 1e-5
    with torch.no_grad():  # a changed model: both agree
        for name, p in model.named_parameters():
            if "layers" in name and (not lora or "lora_B" in name):
                p.add_(torch.randn_like(p) * 0.05)
    a, b = exact.measure(model, 1), fast.measure(model, 1)
    for x, y in zip(a.rows, b.rows):
        assert x["tuco"] > 0.01 and abs(x["tuco"] - y["tuco"]) < 1e-6


# --------------------------------------------------------------------------------------------
# Bit-identical training, and the state a measurement leaves.
# --------------------------------------------------------------------------------------------


def assert_same_weights(a, b):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    differ = [n for n in pa if not torch.equal(pa[n], pb[n])]
    assert not differ, f"{len(differ)} parameters differ, e.g. {differ[:3]}"


class RngLeak(TrainerCallback):
    """A control: draws one number from torch's RNG where TucoCallback measures."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % 5 == 0:
            torch.rand(1)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("dropout", [pytest.param(0.0, marks=pytest.mark.slow), 0.1])  # dropout on: the stricter case
def test_training_with_the_callback_gives_bit_identical_weights(tok, tmp_path, lora, dropout):
    plain, _ = train(tok, tmp_path / "a", lora=lora, dropout=dropout)
    probed, cb = train(tok, tmp_path / "b", lora=lora, dropout=dropout, callback=probe_callback())
    assert [m.step for m in cb.measurements] == [0, 5, 10, 15, 20]
    assert_same_weights(plain.model, probed.model)
    losses = lambda t: [h["loss"] for h in t.state.log_history if "loss" in h]  # noqa: E731
    assert losses(plain) == losses(probed) and len(losses(plain)) == 4
    if dropout:  # the comparison is sensitive: one RNG draw where the callback measures changes the weights
        leaked, _ = train(tok, tmp_path / "c", lora=lora, dropout=dropout, others=[RngLeak()])
        assert any(not torch.equal(p, q) for p, q in zip(plain.model.parameters(), leaked.model.parameters()))


def manual_loop(tok, root, *, lora, probe=None, leak=None, steps=12):
    """A training loop of its own (like the demo recipes): ``model.train()`` once, then ``steps`` AdamW steps
    with dropout; ``probe`` measures through ``begin``/``step_end``/``end``, ``leak(model, step)`` misbehaves."""
    model = start_model(tok, root, lora=lora, dropout=0.2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = collate(tok.pad_token_id)([{"input_ids": tok(t)["input_ids"]} for t in TEXTS])
    torch.manual_seed(3)
    model.train()
    if probe is not None:
        probe.begin(model)
    for step in range(steps):
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
        if probe is not None:
            probe.step_end(model, step + 1, last=step == steps - 1)
        if leak is not None and (step + 1) % 4 == 0:
            leak(model)
    if probe is not None:
        probe.end()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_a_custom_loop_with_the_callback_gives_bit_identical_weights(tok, tmp_path, lora):
    plain = manual_loop(tok, tmp_path / "a", lora=lora)
    probe = TucoCallback(PROBES, every=4, chat=CHAT, tokenizer=tok, out=tmp_path / "b" / "tuco")
    assert_same_weights(plain, manual_loop(tok, tmp_path / "b", lora=lora, probe=probe))
    assert [m.step for m in probe.measurements] == [0, 4, 8, 12] and tuco.load_run(tmp_path / "b" / "tuco").manifest["status"] == "finished"
    for leak in (lambda m: m.eval(), lambda m: torch.rand(1)):  # controls: eval mode or an RNG draw left behind
        leaked = manual_loop(tok, tmp_path / "c", lora=lora, leak=leak)
        assert any(not torch.equal(p, q) for p, q in zip(plain.parameters(), leaked.parameters()))


def test_a_measurement_restores_training_flags_grads_rng_and_adapters(tok, tmp_path):
    model = start_model(tok, tmp_path, lora=True, dropout=0.1)
    model.add_adapter("other", model.peft_config["default"])
    model.set_adapter("other")
    model.train()
    model.base_model.model.model.layers[1].mlp.eval()  # mixed flags must come back as they were, module by module
    flags = {n: m.training for n, m in model.named_modules()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    lora_layers = [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "disable_adapters")]
    adapters = [(list(m.active_adapters), m.disable_adapters) for m in lora_layers]
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    cb = TucoCallback(PROBES, chat=CHAT, tokenizer=tok)
    m = cb.begin(model)
    assert m is not None and m.means["harmful"]["tuco"] == 0.0
    assert {n: mod.training for n, mod in model.named_modules()} == flags
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert [(list(x.active_adapters), x.disable_adapters) for x in lora_layers] == adapters and model.active_adapters == ["other"]
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]
    assert np.array_equal(np.random.get_state()[1], rng[2])
    assert tok.padding_side == "right"  # the training tokenizer is untouched (the callback measures with a copy)


def test_the_starting_copy_holds_only_the_trainable_block_weights(tok, tmp_path):
    model = start_model(tok, tmp_path)
    model.model.layers[0].mlp.requires_grad_(False)  # frozen when training begins: shared, not copied
    copy, shared = model_state.frozen_copy(model)
    assert copy.model.embed_tokens.weight is model.model.embed_tokens.weight  # outside the blocks: never read
    assert copy.model.layers[0].mlp.up_proj.weight is model.model.layers[0].mlp.up_proj.weight
    assert copy.model.layers[1].mlp.up_proj.weight.data_ptr() != model.model.layers[1].mlp.up_proj.weight.data_ptr()
    trainable = sum(p.numel() * p.element_size() for p in model.model.layers.parameters() if p.requires_grad)
    buffers = sum(b.numel() * b.element_size() for b in model.model.layers.buffers())
    assert model_state.copy_bytes(copy, shared) == trainable + buffers
    before = copy.model.layers[1].mlp.up_proj.weight.clone()
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight.add_(1.0)  # training moves the model, never the copy
    assert torch.equal(copy.model.layers[1].mlp.up_proj.weight, before)
    model_state.check_shared(shared)
    model.model.layers[0].mlp.requires_grad_(True)
    with pytest.raises(TrainingError, match="frozen when training began"):
        model_state.check_shared(shared)


# --------------------------------------------------------------------------------------------
# Watch rules, resume, other trainers.
# --------------------------------------------------------------------------------------------


def test_a_watch_rule_warns_and_stops_training(tok, tmp_path, caplog):
    rule = Watch("harmful", "tuco", rise=0.01, stop=True)
    with caplog.at_level(logging.WARNING, logger="tuco.training"):
        trainer, cb = train(tok, tmp_path, callback=probe_callback(watch=[rule, "benign:tuco:below=0.0"]))
    assert trainer.state.global_step == 5 and [m.step for m in cb.measurements] == [0, 5]
    assert cb.measurements[-1].stop and "harmful tuco is" in cb.measurements[-1].warnings[0]
    assert any("tuco watch: harmful tuco" in r.message and "stopping training" in r.message for r in caplog.records)
    manifest = tuco.load_run(tmp_path / "out" / "tuco").manifest
    assert manifest["status"] == "finished" and manifest["watch_events"][0]["step"] == 5


def test_watch_rules_one_by_one():
    drop = Watch("g", "tuco_response", drop=0.05)
    assert drop.check([(0, 0.3), (5, 0.4), (10, 0.36)]) is None
    message = drop.check([(0, 0.3), (5, 0.4), (10, 0.34)])
    assert message and "0.0600 below its best 0.4000 (step 5)" in message
    assert Watch("g", rise=0.1).check([(0, 0.3), (5, 0.2), (10, 0.31)]) and not Watch("g", rise=0.2).check([(0, 0.3), (5, 0.2), (10, 0.31)])
    assert Watch("g", below=0.2).check([(0, 0.19)]) and not Watch("g", above=0.2).check([(0, 0.19)])
    assert Watch.parse("harmful:tuco_response:drop=0.05:stop") == Watch("harmful", "tuco_response", drop=0.05, stop=True)
    assert Watch.parse("benign:above=0.5") == Watch("benign", above=0.5)
    assert Watch.parse(Watch("h", "tuco", rise=0.25, stop=True).text()) == Watch("h", rise=0.25, stop=True)


class Crash(TrainerCallback):
    def __init__(self, at):
        self.at, self.crashed = at, False

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at and not self.crashed:
            self.crashed = True
            raise RuntimeError("simulated crash")


@pytest.mark.slow
def test_a_crashed_training_resumes_its_run_from_the_checkpoint(tok, tmp_path):
    ref, ref_cb = train(tok, tmp_path / "ref", lora=True, save_steps=10, callback=probe_callback())
    model = start_model(tok, tmp_path / "crash", lora=True)
    args = TrainingArguments(
        output_dir=str(tmp_path / "crash" / "out"),
        max_steps=20,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        save_strategy="steps",
        save_steps=10,
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Texts(tok), data_collator=collate(tok.pad_token_id), processing_class=tok)
    trainer.add_callback(Crash(12))
    cb = TucoCallback(PROBES, every=5, chat=CHAT).attach(trainer)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.train()
    run_dir = tmp_path / "crash" / "out" / "tuco"
    assert sorted({r["step"] for r in tuco.load_run(run_dir).rows}) == [0, 5, 10]
    trainer.train(resume_from_checkpoint=str(tmp_path / "crash" / "out" / "checkpoint-10"))
    run = tuco.load_run(run_dir)
    assert run.manifest["status"] == "finished"
    assert [r["step"] for r in run.rows] == [s for s in (0, 5, 10, 15, 20) for _ in range(6)]  # step 10 not measured twice
    assert [m.step for m in cb.measurements] == [0, 5, 10, 15, 20]
    assert run.manifest["measurements"] == 5 and run.manifest["measure_seconds"] == pytest.approx(cb.seconds, abs=1e-2)
    want = tuco.load_run(tmp_path / "ref" / "out" / "tuco").rows
    assert [r["tuco"] for r in run.rows] == [r["tuco"] for r in want]  # the resumed training is the uninterrupted one


def test_a_full_fine_tune_resumes_only_with_its_starting_weights(tok, tmp_path):
    train(tok, tmp_path, save_steps=10, steps=10, callback=probe_callback())
    ckpt = str(tmp_path / "out" / "checkpoint-10")
    with pytest.raises(TrainingError, match=r"resumes at step 10.*pass base="):
        train(tok, tmp_path, steps=15, callback=probe_callback(), resume=ckpt)
    trainer, cb = train(tok, tmp_path, steps=15, callback=probe_callback(base=tmp_path / "start"), resume=ckpt)
    assert [m.step for m in cb.measurements] == [15] and trainer.state.global_step == 15
    rows = tuco.load_run(tmp_path / "out" / "tuco").rows
    assert sorted({r["step"] for r in rows}) == [0, 5, 10, 15]


def test_trl_sft_trainer(tok, tmp_path):
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    model = start_model(tok, tmp_path)
    config = trl.SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        max_length=64,
    )
    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=Dataset.from_dict({"text": TEXTS * 4}), processing_class=tok)
    cb = TucoCallback(PROBES, every=3, chat=CHAT).attach(trainer)
    trainer.train()
    assert [h["step"] for h in trainer.state.log_history if "tuco/benign" in h] == [0, 3, 6]
    assert [m.step for m in cb.measurements] == [0, 3, 6] and cb.measurements[0].means["benign"]["tuco"] == 0.0


def test_an_unattached_callback_still_records_the_trainers_history(tok, tmp_path, caplog):
    model = start_model(tok, tmp_path)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=5, per_device_train_batch_size=4, report_to=[], use_cpu=True)
    cb = TucoCallback(PROBES, every=5, chat=CHAT)
    trainer = Trainer(
        model=model, args=args, train_dataset=Texts(tok), data_collator=collate(tok.pad_token_id), processing_class=tok, callbacks=[cb]
    )
    with caplog.at_level(logging.WARNING, logger="tuco.training"):
        trainer.train()
    assert [h["step"] for h in trainer.state.log_history if "tuco/web" in h] == [0, 5]
    assert any("not attached" in r.message for r in caplog.records)


# --------------------------------------------------------------------------------------------
# Bad input: one line, naming the fix.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probes": {}}, "no probe groups"),
        ({"probes": {"harmful": []}}, "'harmful' is empty"),
        ({"probes": {"bad name": ["hi"]}}, "cannot be used in log keys"),
        ({"probes": ["hi"]}, "must map group names"),
        ({"probes": {"a": ["hi", " "]}}, "empty"),
        ({"every": 0}, r"every=0: measure every N >= 1"),
        ({"every": 2.5}, "every=2.5"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"watch": Watch("harmless", drop=0.1)}, "names group 'harmless'; the probe groups are harmful, benign, web"),
        ({"watch": "benign:tuco_response:drop=0.1"}, "no response TuCo"),
        ({"watch": "harmful:drop"}, "GROUP"),
        ({"watch": "harmful:fall=0.1"}, "rule 'fall'"),
        ({"chat": {"webb": False}}, "'webb'"),
        ({"base_device": "gpu7"}, "is not a device"),
        ({"base": "/nonexistent/start"}, "not a directory"),
        ({"limit": 0}, "limit=0"),
    ],
)
def test_bad_input_is_refused_in_one_line(kwargs, match):
    probes = kwargs.pop("probes", PROBES)
    with pytest.raises(ConfigError, match=match) as err:
        TucoCallback(probes, **kwargs)
    assert "\n" not in str(err.value)


def test_bad_watch_rules_are_refused():
    for bad, match in [
        (dict(drop=0.1, rise=0.1), "exactly one"),
        (dict(), "exactly one"),
        (dict(drop=-1.0), ">= 0"),
        (dict(above=1.5), "outside TuCo's range"),
        (dict(metric="loss", drop=0.1), "metric 'loss'"),
    ]:
        with pytest.raises(ConfigError, match=match):
            Watch("harmful", **bad)


def test_sharded_weights_are_refused_with_the_fix(tok, tmp_path):
    model = start_model(tok, tmp_path)
    next(model.parameters()).ds_id = 0  # what DeepSpeed ZeRO-3 puts on the parameters it partitions
    with pytest.raises(TrainingError, match=r"DeepSpeed ZeRO-3.*DDP or DeepSpeed ZeRO-1/2.*tuco score"):
        TucoCallback(PROBES, tokenizer=tok).begin(model)


def test_fsdp_is_refused_with_the_fix(tok, tmp_path):
    from types import SimpleNamespace

    model = start_model(tok, tmp_path)
    with pytest.raises(TrainingError, match=r"sharded across ranks \(FSDP\).*DDP"):
        model_state.check_not_sharded(model, SimpleNamespace(is_fsdp_enabled=True))
    model_state.check_not_sharded(model, SimpleNamespace(is_fsdp_enabled=False))


def test_the_public_names():
    assert tuco.TucoCallback is TucoCallback and tuco.Watch is Watch and issubclass(TucoCallback, TrainerCallback)
    assert issubclass(TrainingError, TucoError)


def test_a_fresh_training_refuses_an_existing_run_unless_told(tok, tmp_path):
    model = start_model(tok, tmp_path)
    cb = TucoCallback(PROBES, chat=CHAT, tokenizer=tok, out=tmp_path / "run")
    cb.begin(model)
    cb.end()
    with pytest.raises(TucoError, match="already holds a run"):
        TucoCallback(PROBES, chat=CHAT, tokenizer=tok, out=tmp_path / "run").begin(model)
    TucoCallback(PROBES, chat=CHAT, tokenizer=tok, out=tmp_path / "run", overwrite=True).begin(model)


def test_a_missing_tokenizer_is_named(tok, tmp_path):
    with pytest.raises(ConfigError, match="needs the model's tokenizer"):
        TucoCallback(PROBES).begin(start_model(tok, tmp_path))


def test_the_run_manifest_states_the_start_and_its_memory(saved_run):
    kind, root, _, cb = saved_run
    manifest = tuco.load_run(root / "out" / "tuco").manifest
    if kind == "full":
        model = start_model(tiny_tokenizer(), root)
        blocks = sum(p.numel() * p.element_size() for p in model.model.layers.parameters())
        assert manifest["start_copy_bytes"] == blocks and "frozen copy of the decoder blocks at step 0" in manifest["start"]
    else:
        assert "adapter switched off (no copy)" in manifest["start"] and "start_copy_bytes" not in manifest
    assert manifest["measurements"] == 5 and manifest["measure_seconds"] == pytest.approx(cb.seconds, abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [False, True], ids=["measure", "stop"])
def test_ddp_every_rank_trains_only_rank_0_measures_and_a_stop_stops_every_rank(tmp_path, stop):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = Path(__file__).resolve().parent / "ddp_callback_job.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port), str(job)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([*cmd, str(tmp_path / "out"), "stop" if stop else "go"], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    steps = [0, 5] if stop else [0, 5, 10]
    assert [r["wrapped"] for r in ranks] == ["DistributedDataParallel"] * 2  # the callback unwrapped it
    assert [r["steps"] for r in ranks] == [steps[-1]] * 2  # a stop on rank 0 stops rank 1 too (no hang)
    assert ranks[0]["measured"] == ranks[0]["logged"] == steps and ranks[1]["measured"] == ranks[1]["logged"] == []
    run = tuco.load_run(tmp_path / "out" / "tuco")
    assert run.manifest["status"] == "finished" and sorted({r["step"] for r in run.rows}) == steps and len(run) == 6 * len(steps)
    assert not list((tmp_path / "out" / "tuco").glob("*.part-*"))  # rank 1 wrote nothing, the shards are merged
