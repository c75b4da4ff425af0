"""Model-parallel placement: one device map computed once and applied to both models of a pair.

Each layer's blocks of every checkpoint must sit on the same device (the wrapper calls both on the same
input). The map is computed for the tuned architecture with every device's memory budget halved,
because each device holds both copies of its layers; the base model, having the same module names,
is loaded with the very same map. A PEFT pair holds one model and needs no such care.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tuco.engine.layers import decoder_layers

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def _config_dtype(config: PretrainedConfig, dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    found = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(found, str):
        found = getattr(torch, found, None)
    return found if isinstance(found, torch.dtype) else torch.float32


def shared_device_map(
    config: PretrainedConfig, *, dtype: torch.dtype | str = "auto", max_memory: dict | None = None, copies: int = 2
) -> dict[str, Any]:
    """A device map for the tuned architecture that leaves room for the other copies of every layer
    (``copies`` full models share each device: 2 for a pair, one per full checkpoint of a chain).

    Args:
        config: the tuned model's config (the base has the same module names).
        dtype: the dtype the weights will be loaded in ("auto": the config's).
        max_memory: per-device budgets for ALL copies together, e.g. {0: "20GiB", "cpu": "60GiB"};
            default: what accelerate detects as available.
        copies: how many full models will be loaded with this map.
    """
    from accelerate import infer_auto_device_map, init_empty_weights
    from accelerate.utils import get_max_memory
    from transformers import AutoModelForCausalLM

    torch_dtype = _config_dtype(config, dtype)
    with init_empty_weights():
        meta = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    budget = get_max_memory(max_memory) if max_memory is None else get_max_memory(dict(max_memory))
    halved = {device: int(size) // max(1, copies) for device, size in budget.items()}
    no_split = list(getattr(meta, "_no_split_modules", None) or [])
    return dict(infer_auto_device_map(meta, max_memory=halved, no_split_module_classes=no_split, dtype=torch_dtype))


def _device(module: nn.Module) -> torch.device | None:
    for p in module.parameters():
        return p.device
    return None


def misplaced_layers(tuned: nn.Module, base: nn.Module | None) -> list[int]:
    """Indices of layers whose FT and PT blocks hold their weights on different devices."""
    if base is None:
        return []
    return [i for i, (f, p) in enumerate(zip(decoder_layers(tuned), decoder_layers(base))) if _device(f) != _device(p)]
