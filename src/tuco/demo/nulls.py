"""Null fine-tunes: adapters with no safety training, for measuring how often an analysis's primary claim
fires when there is nothing for it to find (its false-positive rate over many nulls).

- ``prose_lora``: a LoRA trained on plain prose (no chats, no refusals) on a base, for a given seed: a real
  fine-tune that moves the model as much as a small fine-tune does, with nothing about safety in it. The
  demo recipe's nulls.
- ``random_lora``: a LoRA with random directions at a trained adapter's weight norm, module by module
  (``||B A||_F`` equal to the reference's): no training at all. The Gemma recipe's nulls (training
  Gemma on CPU costs minutes per adapter; drawing one costs a second).

Each writes a PEFT adapter directory with ``recipe.json`` (what it is, its seed, how it was made).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class ProseNull:
    """Every knob of the prose-LoRA null (defaults: the demo recipe's nulls)."""

    seed: int = 0
    rank: int = 16
    lora_alpha: int = 32
    lr: float = 1e-3
    steps: int = 100
    batch: int = 16
    seq: int = 192
    prose_chars: int = 2_000_000


def prose_lora(base_dir: str | Path, out_dir: str | Path, recipe: ProseNull | None = None) -> dict[str, Any]:
    """Train a LoRA on prose windows (next-token loss) on the checkpoint in ``base_dir``; the seed picks
    the prose (a different sample of documents per seed) and the adapter's initialisation."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuco.demo import data
    from tuco.demo.train import cosine_lr

    r = recipe or ProseNull()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch.manual_seed(r.seed)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=r.rank, lora_alpha=r.lora_alpha, lora_dropout=0.0, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    )
    docs = data.pretraining_text(r.prose_chars, seed=10_000 + r.seed)
    stream: list[int] = []
    for d in docs:
        stream += tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        if len(stream) >= r.steps * r.batch * r.seq:
            break
    chunks = torch.tensor(stream[: len(stream) // r.seq * r.seq]).view(-1, r.seq)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=r.lr, betas=(0.9, 0.99), weight_decay=0.0)
    log: list[dict[str, Any]] = []
    model.train()
    for step in range(r.steps):
        idx = [(step * r.batch + i) % len(chunks) for i in range(r.batch)]
        batch = chunks[idx]
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, r.steps, r.lr, max(1, r.steps // 10))
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 20 == 0 or step == r.steps - 1:
            log.append({"step": step, "loss": round(float(loss), 4), "s": round(time.time() - t0, 1)})
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    record = {
        "null": "prose LoRA: a fine-tune on plain prose windows (no chats, no refusals)",
        "recipe": asdict(r),
        "base": str(base_dir),
        "tokens": r.steps * r.batch * r.seq,
        "log": log,
        "wall_seconds": round(time.time() - t0, 1),
    }
    (out / "recipe.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def _pairs(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[str, str]]:
    """module prefix -> (lora_A key, lora_B key) of an adapter's state dict."""
    out = {}
    for key in tensors:
        if ".lora_A." in key:
            prefix = key.split(".lora_A.")[0]
            out[prefix] = (key, key.replace(".lora_A.", ".lora_B."))
    return out


def _random_factors(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...], target: float, scaling: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian A [r, in] and B [out, r] with ``||scaling * B A||_F == target``."""
    a = torch.randn(shape_a, generator=g) / math.sqrt(shape_a[1])
    b = torch.randn(shape_b, generator=g) / math.sqrt(shape_b[1])
    return a, b * (target / max(1e-30, scaling * float(torch.linalg.matrix_norm(b @ a))))


def random_lora(reference_dir: str | Path, out_dir: str | Path, seed: int) -> dict[str, Any]:
    """A LoRA with the reference adapter's config and, module by module, its update's Frobenius norm
    ``||B A||_F``, in random directions (A and B Gaussian, seeded): fine-tuning of the same size with no
    training signal at all. The reference's NOTICE (Gemma's terms) is copied with it."""
    from safetensors.torch import load_file, save_file

    ref, out = Path(reference_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(ref / "adapter_model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    new: dict[str, torch.Tensor] = {}
    norms = []
    for _prefix, (ka, kb) in sorted(_pairs(tensors).items()):
        a_ref, b_ref = tensors[ka].float(), tensors[kb].float()
        target = float(torch.linalg.matrix_norm(b_ref @ a_ref))
        a, b = _random_factors(tuple(a_ref.shape), tuple(b_ref.shape), target, 1.0, g)
        new[ka], new[kb] = a.to(tensors[ka].dtype), b.to(tensors[kb].dtype)
        norms.append(target)
    for key, value in tensors.items():  # anything that is not a LoRA pair (none in tuco's adapters) as is
        new.setdefault(key, value)
    save_file(new, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    shutil.copy(ref / "adapter_config.json", out / "adapter_config.json")
    if (ref / "NOTICE").exists():
        shutil.copy(ref / "NOTICE", out / "NOTICE")
    return _record(out, "random LoRA at the reference adapter's per-module update norm ||B A||_F (no training)", seed, ref, norms)


def random_lora_like(base_dir: str | Path, tuned_dir: str | Path, out_dir: str | Path, seed: int, rank: int = 16) -> dict[str, Any]:
    """A rank-``rank`` LoRA on ``base_dir`` whose update has, module by module, the Frobenius norm of the full
    fine-tune's ``||W_tuned - W_base||_F`` (every projection of every decoder block), in random directions:
    the size of a real fine-tune with no training signal. The demo recipe's nulls."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    base: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    tuned = AutoModelForCausalLM.from_pretrained(tuned_dir, dtype=torch.float32)
    tuned_weights = dict(tuned.named_parameters())
    delta = {n: float((p.detach() - tuned_weights[n].detach()).norm()) for n, p in base.named_parameters()}
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    model: Any = get_peft_model(base, config)
    g = torch.Generator().manual_seed(seed)
    norms = []
    with torch.no_grad():
        for name, module in sorted(model.named_modules(), key=lambda kv: kv[0]):
            if not hasattr(module, "lora_A") or "default" not in getattr(module, "lora_A", {}):
                continue
            weight_name = name.removeprefix("base_model.model.") + ".weight"
            target = delta[weight_name]
            la, lb = module.lora_A["default"].weight, module.lora_B["default"].weight
            a, b = _random_factors(tuple(la.shape), tuple(lb.shape), target, module.scaling["default"], g)
            la.copy_(a)
            lb.copy_(b)
            norms.append(target)
    model.save_pretrained(out, safe_serialization=True)
    return _record(
        out, "random LoRA at the full fine-tune's per-module update norm ||W_tuned - W_base||_F (no training)", seed, tuned_dir, norms
    )


def _record(out: Path, what: str, seed: int, reference: str | Path, norms: list[float]) -> dict[str, Any]:
    record = {
        "null": what,
        "seed": seed,
        "reference": str(reference),
        "modules": len(norms),
        "mean_module_norm": round(sum(norms) / max(1, len(norms)), 6),
    }
    (out / "recipe.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record
