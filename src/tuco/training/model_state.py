"""The model being trained, as a measurement needs it and leaves it: unwrapped from its distributed
wrapper, checked for sharded weights, its starting point (the adapter switched off, or a frozen copy of
the starting weights of its decoder blocks), and every piece of state a measurement could touch saved
and restored exactly (each module's training flag, the random number generators).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tuco.engine.layers import decoder_layers
from tuco.errors import ConfigError, TrainingError

if TYPE_CHECKING:
    from transformers import Trainer

SHARDED_FIX = (
    "measure with DDP or DeepSpeed ZeRO-1/2 (every rank holds the whole model), or save checkpoints and "
    "score them afterwards with `tuco score --base START --tuned CHECKPOINT`"
)


def unwrap(model: nn.Module, trainer: Trainer | None = None) -> nn.Module:
    """The model inside DDP / DeepSpeed / ``torch.compile`` wrappers (the trainer's accelerator's
    ``unwrap_model`` when there is one, else accelerate's ``extract_model_from_parallel``, else ``.module``)."""
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "unwrap_model"):
        model = accelerator.unwrap_model(model)
    else:
        try:
            from accelerate.utils import extract_model_from_parallel

            model = extract_model_from_parallel(model)
        except ImportError:
            pass
    for _ in range(8):  # nested wrappers that neither knows
        inner = getattr(model, "_orig_mod", None) or (
            model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else None
        )
        if not isinstance(inner, nn.Module):
            break
        model = inner
    return model


def check_not_sharded(model: nn.Module, trainer: Trainer | None = None) -> None:
    """TrainingError when the model's weights are sharded across ranks (FSDP, FSDP2, DeepSpeed ZeRO-3):
    no rank holds a whole block to run, so TuCo cannot be measured in the training process."""
    what = None
    if trainer is not None and getattr(trainer, "is_fsdp_enabled", False):
        what = "FSDP"
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel

        if any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
            what = "FSDP"
    except ImportError:  # pragma: no cover - torch without distributed
        pass
    if what is None and any(type(m).__name__.startswith("FSDP") for m in model.modules()):
        what = "FSDP2"
    if what is None:
        for p in model.parameters():
            if hasattr(p, "ds_id") or hasattr(p, "ds_status"):
                what = "DeepSpeed ZeRO-3"
                break
            if type(p.data).__name__ == "DTensor":
                what = "sharded DTensor parameters"
                break
    if what is not None:
        raise TrainingError(f"TucoCallback cannot measure a model whose weights are sharded across ranks ({what}): {SHARDED_FIX}")


def is_peft(model: nn.Module) -> bool:
    """True for a PEFT model (adapters that can be switched off)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def trainable_outside_adapters(model: nn.Module) -> list[str]:
    """Names of trainable parameters inside the decoder blocks that belong to no PEFT adapter: with any,
    switching the adapter off does not give back the starting weights."""
    adapters = set(getattr(model, "peft_config", {}) or {})
    blocks = {id(p) for p in decoder_layers(model).parameters()}
    return [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and id(p) in blocks and not any(f".{a}." in f".{name}." for a in adapters)
    ]


def check_device(device: str | torch.device | None) -> torch.device | None:
    """A device for the starting copy, validated (ConfigError naming the fix)."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"base_device={device!r} is not a device: give 'cpu', 'cuda', 'cuda:1' (or None: the training device)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"base_device={device!r}: this machine has no usable CUDA device; use 'cpu' or None")
    return dev


def _move(value: object, device: torch.device) -> object:
    """Tensors (also inside tuples, lists and dicts) on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_move(v, device) for v in value)
    if isinstance(value, list):
        return [_move(v, device) for v in value]
    if isinstance(value, dict):
        return {k: _move(v, device) for k, v in value.items()}
    return value


def _on_device(device: torch.device) -> Any:
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return tuple(_move(a, device) for a in args), {k: _move(v, device) for k, v in kwargs.items()}

    return hook


def frozen_copy(model: nn.Module, device: torch.device | None = None) -> tuple[nn.Module, list[nn.Parameter]]:
    """The starting point of a full fine-tune: ``model`` copied with its decoder blocks' parameters and
    buffers frozen as they are now. Returns (the copy, the frozen parameters it shares with ``model``).

    Memory: only what the measurement reads is copied. Tensors outside the decoder blocks (embeddings, final
    norm, head: TuCo runs the pre-trained blocks on the TRAINED model's stream, so they are never read) are
    shared with ``model``; block parameters that do not require gradients now are shared too (checked at
    every measurement: ``check_shared``). So the copy costs one copy of the blocks' trainable parameters
    and buffers. On another ``device`` (``"cpu"``: offload) every block tensor is copied there, and the
    blocks' inputs are moved to it on each call.
    """
    layers = decoder_layers(model)
    here = next((p.device for p in layers.parameters()), None)
    target = device if device is not None else here
    moved = target is not None and here is not None and torch.device(target) != here
    in_blocks = {id(t) for t in [*layers.parameters(), *layers.buffers()]}
    memo: dict[int, Any] = {}
    shared: list[nn.Parameter] = []
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in memo:
            continue
        if id(t) not in in_blocks:
            memo[id(t)] = t  # outside the blocks: never read by the measurement
        elif isinstance(t, nn.Parameter) and not t.requires_grad and not moved:
            memo[id(t)] = t
            shared.append(t)
        elif isinstance(t, nn.Parameter):
            memo[id(t)] = nn.Parameter(t.detach().to(target, copy=True), requires_grad=False)
        else:
            memo[id(t)] = t.detach().to(target, copy=True)
    with torch.no_grad():
        clone = copy.deepcopy(model, memo)
    for m in clone.modules():
        m.training = False
    if moved and target is not None:
        for block in decoder_layers(clone):
            block.register_forward_pre_hook(_on_device(torch.device(target)), with_kwargs=True)
    return clone, shared


def check_shared(shared: list[nn.Parameter]) -> None:
    """TrainingError when a parameter the starting copy shares (frozen when training began) is trainable now."""
    if any(p.requires_grad for p in shared):
        raise TrainingError(
            "a decoder-block parameter that was frozen when training began is trainable now, and the starting copy shares "
            "it instead of copying it; unfreeze every parameter you will train before training starts, or pass base= "
            "(the starting checkpoint)"
        )


def copy_bytes(model: nn.Module, shared: list[nn.Parameter]) -> int:
    """Bytes of the decoder-block tensors a starting copy holds of its own."""
    mine = {id(p) for p in shared}
    layers = decoder_layers(model)
    return sum(t.numel() * t.element_size() for t in [*layers.parameters(), *layers.buffers()] if id(t) not in mine)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


@contextmanager
def measuring(*models: nn.Module | None) -> Iterator[None]:
    """Eval mode for the ``with`` block, then every module's training flag and every random number generator
    (torch CPU and CUDA, Python's, NumPy's) exactly as they were: training goes on as if nothing had run.
    Gradients are not computed (the measurements run under ``torch.inference_mode``)."""
    flags = [(m, m.training) for model in models if model is not None for m in model.modules()]
    rng = _rng_state()
    try:
        for m, _ in flags:
            m.training = False
        yield
    finally:
        for m, was in flags:
            m.training = was
        _set_rng_state(rng)
