"""Tiny random model pairs of every supported family, built from configs (no download), for tests and benches.

A "pair" here is a random pre-trained model and a copy whose decoder blocks are perturbed (the
"fine-tune"); embeddings and head are shared, so alpha = 0 reproduces the pre-trained logits.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tuco.runs import make_readable

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2", "gpt2", "gpt_neox")
MOE_FAMILIES = ("mixtral", "qwen2_moe")  # mixture-of-experts blocks (fast-path tests)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "How do I bake bread? Mix flour, water, salt and yeast, then wait.",
    "Tell me a story about a dragon who learned to read.",
    "Sorry, I cannot help with that request.",
    "What is the capital of France? Paris is the capital of France.",
]


def tiny_tokenizer(vocab_size: int = 300) -> Any:
    """A byte-level BPE tokenizer (trained on a few sentences) with BOS/EOS/PAD and a chat template: the
    demo recipe's builder with ``</s>`` as end of sequence and BOS prepended."""
    from tuco.demo.train import train_tokenizer

    return train_tokenizer(_CORPUS * 4, vocab_size, eos="</s>", prepend_bos=True)


def tiny_config(family: str, vocab_size: int, *, layers: int = 3, hidden: int = 32, context: int = 256) -> Any:
    """A random-init config of the given family with ``layers`` blocks of width ``hidden``."""
    import transformers as tf

    heads, kv = 4, 2
    common: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=context,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    head_dim = hidden // heads
    if family == "llama":
        return tf.LlamaConfig(**common)
    if family == "mistral":
        return tf.MistralConfig(**common, sliding_window=16)
    if family == "qwen2":
        return tf.Qwen2Config(**common)
    if family == "qwen3":
        return tf.Qwen3Config(**common, head_dim=head_dim)
    if family == "gemma":
        return tf.GemmaConfig(**common, head_dim=head_dim)
    if family == "gemma2":
        return tf.Gemma2Config(**common, head_dim=head_dim, sliding_window=16)
    if family == "gemma3_text":
        return tf.Gemma3TextConfig(**common, head_dim=head_dim, sliding_window=16)
    if family == "phi3":
        return tf.Phi3Config(**common)
    if family == "olmo2":
        return tf.Olmo2Config(**common)
    if family == "mixtral":
        return tf.MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2, sliding_window=None)
    if family == "qwen2_moe":
        return tf.Qwen2MoeConfig(
            **common,
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=hidden,
            shared_expert_intermediate_size=hidden,
            decoder_sparse_step=1,
        )
    if family == "gpt2":
        return tf.GPT2Config(
            vocab_size=vocab_size,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=context,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=2 * hidden,
            max_position_embeddings=context,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
    raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


def perturb_blocks(model: torch.nn.Module, layers: torch.nn.ModuleList, scale: float, seed: int, only: int | None = None) -> None:
    """Add Gaussian noise (``scale`` x each tensor's std, or x 0.02 for constant ones) to block weights."""
    gens: dict[torch.device, torch.Generator] = {}  # one per device: the noise is drawn where the weights live
    with torch.no_grad():
        for i, block in enumerate(layers):
            if only is not None and i != only:
                continue
            for p in block.parameters():
                gen = gens.setdefault(p.device, torch.Generator(device=p.device).manual_seed(seed))
                std = float(p.float().std()) if p.numel() > 1 and float(p.float().std()) > 0 else 0.02
                p.add_(torch.randn(p.shape, generator=gen, device=p.device).to(p.dtype) * std * scale)


def tiny_models(
    family: str,
    *,
    layers: int = 3,
    hidden: int = 32,
    scale: float = 0.5,
    seed: int = 0,
    vocab_size: int | None = None,
    only_layer: int | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[Any, Any, Any]:
    """(base, tuned, tokenizer) in memory: tuned = base with perturbed blocks (all, or ``only_layer``)."""
    from transformers import AutoModelForCausalLM

    from tuco.engine.layers import decoder_layers

    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    config = tiny_config(family, vocab_size or len(tok), layers=layers, hidden=hidden)
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    base.eval()
    tuned = copy.deepcopy(base)
    perturb_blocks(tuned, decoder_layers(tuned), scale, seed + 1, only=only_layer)
    return base, tuned, tok


def save_tiny_pair(root: str | Path, family: str = "llama", **kwargs: Any) -> tuple[Path, Path]:
    """Save a tiny pair as two checkpoint dirs (safetensors + tokenizer) under ``root``; returns (base, tuned)."""
    root = Path(root)
    base, tuned, tok = tiny_models(family, **kwargs)
    base_dir, tuned_dir = root / f"{family}-base", root / f"{family}-tuned"
    base.save_pretrained(base_dir)
    tuned.save_pretrained(tuned_dir)
    tok.save_pretrained(tuned_dir)
    plain = copy.deepcopy(tok)
    plain.chat_template = None
    plain.save_pretrained(base_dir)
    make_readable(base_dir, tuned_dir)
    return base_dir, tuned_dir
