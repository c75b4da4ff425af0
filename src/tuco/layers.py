"""Where the decoder layers (and the final norm) live in each Hugging Face model family.

All "which attribute holds the list of blocks" knowledge is in this file. Known families are
looked up in a registry; any other decoder-only model whose blocks form one ``nn.ModuleList`` of
``num_hidden_layers`` entries is found by a generic search. No TuCo math here.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tuco.errors import UnsupportedModelError


@dataclass(frozen=True)
class LayerPaths:
    """Dotted attribute paths, relative to the causal-LM module, of the block list and final norm."""

    layers: str
    final_norm: str


# family (config.model_type) -> paths. Families listed here are tested on tiny random configs.
REGISTRY: dict[str, LayerPaths] = {
    "llama": LayerPaths("model.layers", "model.norm"),
    "mistral": LayerPaths("model.layers", "model.norm"),
    "qwen2": LayerPaths("model.layers", "model.norm"),
    "qwen3": LayerPaths("model.layers", "model.norm"),
    "gemma": LayerPaths("model.layers", "model.norm"),
    "gemma2": LayerPaths("model.layers", "model.norm"),
    "gemma3_text": LayerPaths("model.layers", "model.norm"),
    "gemma3": LayerPaths("model.language_model.layers", "model.language_model.norm"),
    "phi3": LayerPaths("model.layers", "model.norm"),
    "olmo2": LayerPaths("model.layers", "model.norm"),
    "gpt2": LayerPaths("transformer.h", "transformer.ln_f"),
    "gpt_neox": LayerPaths("gpt_neox.layers", "gpt_neox.final_layer_norm"),
}

HOW_TO_ADD = (
    "To add a family, register its paths: tuco.layers.REGISTRY['<model_type>'] = "
    "tuco.layers.LayerPaths('<path.to.layers>', '<path.to.final_norm>')."
)


def unwrap_peft(model: nn.Module) -> nn.Module:
    """Return the transformers model inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _get(module: nn.Module, path: str) -> nn.Module | None:
    for name in path.split("."):
        module = getattr(module, name, None)
        if module is None:
            return None
    return module


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
