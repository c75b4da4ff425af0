"""Every place tuco touches another library's private state, in one module, each touch with its reason and a
test pinned to the versions it was checked on (tests/test_compat.py: transformers 4.57 and 5.x, peft 0.17
and 0.21, uvicorn 0.3x). Where a public API does the job, it is used instead (``PeftModel.disable_adapter``
for the pre-trained model on its own, ``Cache.batch_select_indices`` for dropping rows of a KV cache).

- peft: a LoRA layer's active adapters, switched for ONE block call (the engine runs every stage of a
  stacked-adapter chain through the same block). peft's public switches (``enable_adapters``,
  ``set_adapter``) also set ``requires_grad`` on the adapter weights, which would freeze or unfreeze a model
  that is being trained (``tuco.TucoCallback`` measures inside a training loop), so the two flags they set
  are set and restored directly.
- transformers: the attention implementation a config names, swapped for one block call (the fast path's
  one-query attention); the output-capture collector of transformers 5 (``output_hidden_states`` is
  recorded by hooks on the decoder blocks: the earlier stages' calls must not be recorded, and under
  steering the running block's recorded state is replaced by the mixed one); the KV cache layers' tensors
  (the decoder merges a prefilled group into a running batch, and cuts the left padding no row needs:
  no public API concatenates caches or drops leading positions).
- uvicorn: the signals a server captured while draining (a drained server exits 0 instead of re-raising
  the signal).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tuco.errors import TucoError

if TYPE_CHECKING:
    import uvicorn
    from transformers import PretrainedConfig
    from transformers.cache_utils import Cache

try:  # transformers 5: `output_hidden_states` is collected by hooks on the decoder blocks
    from transformers.utils.output_capturing import _active_collector
except ImportError:  # transformers 4.x
    _active_collector = None  # type: ignore[assignment]


# ---- peft ----


def tuner_layers(block: nn.Module) -> list[nn.Module]:
    """PEFT adapter layers (LoRA, ...) inside a block: the modules carrying peft's adapter switch."""
    return [m for m in block.modules() if hasattr(m, "_disable_adapters") and hasattr(m, "active_adapters")]


@contextmanager
def adapters_active(tuners: list[Any], adapters: tuple[str, ...]) -> Iterator[None]:
    """For one call: ``tuners`` run with ``adapters`` active (``()``: every adapter off, the base), restored
    after, without touching any weight's ``requires_grad`` (see the module docstring)."""
    saved = [(m._disable_adapters, m._active_adapter) for m in tuners]
    for m in tuners:
        if adapters:
            m._disable_adapters = False
            m._active_adapter = list(adapters)
        else:
            m._disable_adapters = True
    try:
        yield
    finally:
        for m, (off, names) in zip(tuners, saved):
            m._disable_adapters, m._active_adapter = off, names


# ---- transformers: attention implementation ----


def attention_implementation(config: PretrainedConfig | None) -> str | None:
    """The attention implementation a (sub)config names (``eager``, ``sdpa``, ...)."""
    return getattr(config, "_attn_implementation", None)


@contextmanager
def attention_swapped(config: PretrainedConfig, name: str) -> Iterator[None]:
    """For one call: ``config`` names the attention function registered as ``name``."""
    saved = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = saved


# ---- transformers 5: output capture ----


@contextmanager
def unobserved() -> Iterator[None]:
    """Output-capturing hooks (``output_hidden_states``, ...) do not see the calls inside (no-op on 4.x)."""
    token = _active_collector.set(None) if _active_collector is not None else None
    try:
        yield
    finally:
        if _active_collector is not None:
            _active_collector.reset(token)


def replace_captured_hidden_state(recorded: torch.Tensor, actual: torch.Tensor) -> None:
    """transformers 5 records ``output_hidden_states`` from the running block's output (``recorded``); under
    steering the residual stream is ``actual``: swap the entry just recorded (4.x returns the stream the model
    passes on, which is already ``actual``)."""
    if _active_collector is None:
        return
    collected = _active_collector.get()
    states = collected.get("hidden_states") if isinstance(collected, dict) else None
    if states and states[-1] is recorded:
        states[-1] = actual


# ---- transformers: KV cache layers ----

_LAYER_KINDS = ("DynamicLayer", "DynamicSlidingWindowLayer")


def cache_layers(cache: Cache) -> list[Any]:
    """The layers of a dynamic KV cache (full attention and sliding window), or TucoError naming the kind."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TucoError(f"tuco serve batches requests through the KV cache's layers; this model's cache ({type(cache).__name__}) has none")
    for layer in layers:
        kind = type(layer).__name__
        if kind not in _LAYER_KINDS:
            raise TucoError(f"tuco serve cannot batch requests over a {kind} KV cache layer (only full attention and sliding window)")
    return list(layers)


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - t.shape[-2]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[-2] = missing
    return torch.cat([t.new_zeros(shape), t], dim=-2)


def merge_cache_layers(running: Cache, new: Cache) -> None:
    """Append ``new``'s rows to ``running`` (both [B, heads, T, d] per layer), left-padding the shorter."""
    for a, b in zip(cache_layers(running), cache_layers(new), strict=True):
        if not (a.is_initialized and b.is_initialized):
            if a.is_initialized or b.is_initialized:
                raise TucoError("a KV cache layer was filled for some requests and not others; cannot batch them")
            continue
        width = max(a.keys.shape[-2], b.keys.shape[-2])
        a.keys = torch.cat([_left_pad(a.keys, width), _left_pad(b.keys, width)])
        a.values = torch.cat([_left_pad(a.values, width), _left_pad(b.values, width)])
        if hasattr(a, "cumulative_length"):  # sliding window: positions seen (the mask's width), padding included
            a.cumulative_length = max(a.cumulative_length, b.cumulative_length)


def select_cache_layers(cache: Cache, index: torch.Tensor, cut: int) -> None:
    """Keep the rows ``index`` of every layer (the public ``batch_select_indices``) and drop the first ``cut``
    positions (padding in every kept row)."""
    layers = cache_layers(cache)
    cache.batch_select_indices(index)
    for layer in layers:
        if not layer.is_initialized or cut == 0:
            continue
        if hasattr(layer, "cumulative_length"):  # holds the last min(window - 1, seen) positions
            layer.cumulative_length -= cut
            held = min(layer.keys.shape[-2], layer.cumulative_length)
            start = layer.keys.shape[-2] - held
            layer.keys, layer.values = layer.keys[..., start:, :], layer.values[..., start:, :]
        else:
            layer.keys, layer.values = layer.keys[..., cut:, :], layer.values[..., cut:, :]


# ---- uvicorn ----


def forget_captured_signals(server: uvicorn.Server) -> None:
    """A drained uvicorn server exits 0 rather than re-raising the signal that started the drain."""
    server._captured_signals.clear()
