"""Where the decoder layers (and the final norm) live in each Hugging Face model family.

All "which attribute holds the list of blocks" knowledge is in this file. Known families are
looked up in a registry, which also names each block's per-position submodules (feed-forward part and
its norms, query and output projections) and its attention module (what the engine's fast path may run
at one position, or for one query, only), and the input norm and the projections it feeds (what a LoRA
chain's stages may share). Any other decoder-only model whose blocks form one ``nn.ModuleList`` of
``num_hidden_layers`` entries is found by a generic search, with a logged warning naming the guessed
path, and always runs whole blocks.
No TuCo math here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from torch import nn

from tuco.errors import UnsupportedModelError

log = logging.getLogger(__name__)

# Per-position submodules of a block, relative to the block: the feed-forward part, the norms around it, and
# (Llama-style attention) the query and output projections; keys and values are not (every position is read).
_LLAMA = ("mlp", "self_attn.q_proj", "self_attn.o_proj", "post_attention_layernorm")
_GEMMA2 = (*_LLAMA, "pre_feedforward_layernorm", "post_feedforward_layernorm")  # (Gemma-3's q_norm acts on [B, H, T, hd])
_QWEN3 = (*_LLAMA, "self_attn.q_norm")  # q_norm before the heads are transposed: [B, T, H, hd]
# What a LoRA chain's stages may share: the input norm and the projections it feeds, whose input every stage
# gives the same tensor (the block's input, through the unadapted norm).
_QKV = ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")


@dataclass(frozen=True)
class LayerPaths:
    """Dotted attribute paths, relative to the causal-LM module, of the block list and final norm, and
    (relative to one block) the submodules that act on each position separately (``per_position``), the
    attention module (``attention``) and the submodules whose input is the block's input, directly or
    through its input norm alone (``same_input``). A name missing from a block (another transformers
    version) is skipped; empty turns off the fast path (``per_position``, ``attention``) or the sharing
    of LoRA base projections (``same_input``)."""

    layers: str
    final_norm: str
    per_position: tuple[str, ...] = ()
    same_input: tuple[str, ...] = ()
    attention: str = ""


# family (config.model_type) -> paths. Families listed here are tested on tiny random configs.
REGISTRY: dict[str, LayerPaths] = {
    "llama": LayerPaths("model.layers", "model.norm", _LLAMA, _QKV, "self_attn"),
    "mistral": LayerPaths("model.layers", "model.norm", _LLAMA, _QKV, "self_attn"),
    "qwen2": LayerPaths("model.layers", "model.norm", _LLAMA, _QKV, "self_attn"),
    "qwen3": LayerPaths("model.layers", "model.norm", _QWEN3, _QKV, "self_attn"),
    "gemma": LayerPaths("model.layers", "model.norm", _LLAMA, _QKV, "self_attn"),
    "gemma2": LayerPaths("model.layers", "model.norm", _GEMMA2, _QKV, "self_attn"),
    "gemma3_text": LayerPaths("model.layers", "model.norm", _GEMMA2, _QKV, "self_attn"),
    "gemma3": LayerPaths("model.language_model.layers", "model.language_model.norm", _GEMMA2, _QKV, "self_attn"),
    # no input norm: the projections read the block's input itself
    "olmo2": LayerPaths("model.layers", "model.norm", (*_QWEN3, "post_feedforward_layernorm"), _QKV[1:], "self_attn"),
    # fused query/key/value projections: the feed-forward part, its norm and the output projection
    "phi3": LayerPaths(
        "model.layers",
        "model.norm",
        ("mlp", "self_attn.o_proj", "post_attention_layernorm"),
        ("input_layernorm", "self_attn.qkv_proj"),
        "self_attn",
    ),
    "gpt2": LayerPaths("transformer.h", "transformer.ln_f", ("mlp", "attn.c_proj", "ln_2"), ("ln_1", "attn.c_attn"), "attn"),
    # with a parallel residual the MLP's norm reads the block's input too (see same_input_modules)
    "gpt_neox": LayerPaths(
        "gpt_neox.layers",
        "gpt_neox.final_layer_norm",
        ("mlp", "attention.dense", "post_attention_layernorm"),
        ("input_layernorm", "attention.query_key_value"),
        "attention",
    ),
    # mixture-of-experts blocks route each position on its own: the whole MoE block is per position
    # (transformers 5 calls it `mlp`; 4.x Mixtral calls it `block_sparse_moe`)
    "mixtral": LayerPaths("model.layers", "model.norm", (*_LLAMA, "block_sparse_moe"), _QKV, "self_attn"),
    "qwen2_moe": LayerPaths("model.layers", "model.norm", _LLAMA, _QKV, "self_attn"),
    "qwen3_moe": LayerPaths("model.layers", "model.norm", _QWEN3, _QKV, "self_attn"),
}

_WARNED: set[str] = set()

HOW_TO_ADD = (
    "To add a family, register its paths: tuco.engine.layers.REGISTRY['<model_type>'] = "
    "tuco.engine.layers.LayerPaths('<path.to.layers>', '<path.to.final_norm>')."
)


def unwrap_peft(model: nn.Module) -> nn.Module:
    """Return the transformers model inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _get(module: nn.Module, path: str) -> nn.Module | None:
    found: Any = module
    for name in path.split("."):
        found = getattr(found, name, None)
        if found is None:
            return None
    return found  # type: ignore[no-any-return]


def _config_int(config: object, keys: tuple[str, ...], what: str) -> int:
    """The first integer among ``keys`` of a config (its text config for multimodal wrappers)."""
    config = getattr(config, "text_config", None) or config
    for key in keys:
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise UnsupportedModelError(f"config of type {type(config).__name__} declares no {what}")


def num_layers(config: object) -> int:
    """Number of decoder blocks declared by a config (text config for multimodal wrappers)."""
    return _config_int(config, ("num_hidden_layers", "n_layer", "num_layers"), "number of layers")


def hidden_size(config: object) -> int:
    """Residual-stream width declared by a config."""
    return _config_int(config, ("hidden_size", "n_embd", "d_model"), "hidden size")


def _find_block_list(model: nn.Module, n: int) -> str | None:
    """Generic search: the dotted path of the unique ModuleList holding exactly ``n`` blocks."""
    found = [name for name, mod in model.named_modules() if isinstance(mod, nn.ModuleList) and len(mod) == n]
    # Nested lists (e.g. experts inside a block) sit below the block list; keep the outermost ones.
    outer = [p for p in found if not any(p != q and p.startswith(q + ".") for q in found)]
    return outer[0] if len(outer) == 1 else None


def layer_path(model: nn.Module) -> str:
    """Dotted path of the decoder block list of a (non-PEFT) causal LM; raises if it cannot be found."""
    model_type = getattr(model.config, "model_type", "?")
    known = REGISTRY.get(model_type)
    if known is not None and isinstance(_get(model, known.layers), nn.ModuleList):
        return known.layers
    path = _find_block_list(model, num_layers(model.config))
    if path is not None and model_type not in _WARNED:
        _WARNED.add(model_type)
        log.warning(
            "model type %r is not in tuco's layer registry: using the decoder blocks found at %r (%s); the fast path is off for it. %s",
            model_type,
            path,
            type(model).__name__,
            HOW_TO_ADD,
        )
    if path is None:
        raise UnsupportedModelError(
            f"cannot find the decoder layers of model type {model_type!r} "
            f"({type(model).__name__}): no unique nn.ModuleList of {num_layers(model.config)} blocks. "
            f"Supported families: {', '.join(sorted(REGISTRY))}. {HOW_TO_ADD}"
        )
    return path


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks of a causal LM (PEFT wrappers are looked through)."""
    inner = unwrap_peft(model)
    return _get(inner, layer_path(inner))  # type: ignore[return-value]


def final_norm(model: nn.Module) -> nn.Module | None:
    """The final norm applied to x_L before the LM head, or None when it cannot be located."""
    inner = unwrap_peft(model)
    known = REGISTRY.get(getattr(inner.config, "model_type", "?"))
    if known is not None:
        return _get(inner, known.final_norm)
    prefix = layer_path(inner).rsplit(".", 1)[0]
    for name in ("norm", "final_layer_norm", "ln_f", "final_layernorm"):
        mod = _get(inner, f"{prefix}.{name}" if prefix else name)
        if mod is not None:
            return mod
    return None


def per_position_modules(model: nn.Module) -> tuple[str, ...]:
    """Dotted names (relative to one decoder block) of the block's per-position submodules, for the
    engine's fast path: those the registry names for this family and the block really has. Families
    the registry does not know get none (whole blocks, never a guess)."""
    inner = unwrap_peft(model)
    known = REGISTRY.get(getattr(inner.config, "model_type", "?"))
    if known is None or not isinstance(_get(inner, known.layers), nn.ModuleList):
        return ()
    block = _get(inner, known.layers)[0]  # type: ignore[index]
    return tuple(p for p in known.per_position if _get(block, p) is not None)


def same_input_modules(model: nn.Module) -> tuple[str, ...]:
    """Dotted names (relative to one decoder block) of the submodules whose input is the block's input,
    directly or through its input norm alone, for sharing a LoRA chain's base projections: those the
    registry names for this family (plus GPT-NeoX's MLP norm and input projection when its residual is
    parallel) that the block really has. Families the registry does not know get none."""
    inner = unwrap_peft(model)
    model_type = getattr(inner.config, "model_type", "?")
    known = REGISTRY.get(model_type)
    if known is None or not isinstance(_get(inner, known.layers), nn.ModuleList):
        return ()
    paths = known.same_input
    if model_type == "gpt_neox" and getattr(inner.config, "use_parallel_residual", False):
        paths = (*paths, "post_attention_layernorm", "mlp.dense_h_to_4h")  # x + attn(ln1(x)) + mlp(ln2(x)): both read x
    block = _get(inner, known.layers)[0]  # type: ignore[index]
    return tuple(p for p in paths if _get(block, p) is not None)


def attention_module(model: nn.Module) -> str:
    """Dotted name (relative to one decoder block) of the block's attention module, for the fast path's
    attention at the read position: the registry's, when the block has it ("" otherwise: whole attention)."""
    inner = unwrap_peft(model)
    known = REGISTRY.get(getattr(inner.config, "model_type", "?"))
    if known is None or not known.attention or not isinstance(_get(inner, known.layers), nn.ModuleList):
        return ""
    block = _get(inner, known.layers)[0]  # type: ignore[index]
    return known.attention if _get(block, known.attention) is not None else ""
