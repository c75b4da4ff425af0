"""The fast path's attention at the read position: an earlier stage's attention core for one query per row.

On the fast path an earlier stage's block output is read at one position per row. Its keys and values
still come from every position, but the attention itself (scores, softmax, the weighted sum of the
values) is needed only for the query at the read position: with it, the cost of that stage stops
growing with the square of the context. For one block call, the block's attention module looks up
``tuco_at_positions`` (an attention function registered with transformers' ``AttentionInterface``)
instead of its own implementation; it gathers each row's query and mask row at the read position, calls
the model's own implementation on them (eager: the family's function; sdpa: transformers') and returns
that row's result at every position (a broadcast view; only the read position is read). Other implementations (flash, flex, paged), a model
without its eager function, and GPT-2's reordered upcast keep the whole attention.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuco._compat import attention_implementation, attention_swapped

NAME = "tuco_at_positions"


@dataclass
class _Call:
    """The attention call being restricted: the module, the implementation it would have used, the rows."""

    module: nn.Module
    inner: Callable[..., Any]
    index: torch.Tensor | None
    counter: list[int]


_ACTIVE: ContextVar[_Call | None] = ContextVar("tuco_attention_at", default=None)
_REGISTERED = [False]


def _implementation(module: nn.Module) -> Callable[..., Any] | None:
    """The attention function ``module`` would call (eager or sdpa only), or None to keep it whole."""
    name = attention_implementation(getattr(module, "config", None))
    if getattr(module, "reorder_and_upcast_attn", False):  # GPT-2's own eager variant, outside the interface
        return None
    if name == "eager":
        fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
        return fn if callable(fn) else None
    if name == "sdpa":
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        return ALL_ATTENTION_FUNCTIONS["sdpa"]  # type: ignore[no-any-return]
    return None


def _attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: object, **kwargs: Any) -> Any:
    """query [B, H, T, hd] -> output [B, T, H, hd], computed at the read position of each row only."""
    call = _ACTIVE.get()
    if call is None or call.module is not module:  # internal invariant: set by restricted() for this module
        raise RuntimeError("tuco's restricted attention was called outside its block call")
    b, t = query.shape[0], query.shape[2]
    if mask is not None and not isinstance(mask, torch.Tensor):  # e.g. a block mask: keep the whole attention
        return call.inner(module, query, key, value, mask, **kwargs)
    if call.index is None:  # position -1 of every row
        q, row_mask = query[:, :, -1:], None if mask is None else mask[:, :, -1:]
    elif mask is None:  # no mask: only the last position's row is known to be causal
        return call.inner(module, query, key, value, mask, **kwargs)
    else:
        rows, pos = torch.arange(b, device=query.device), call.index.to(query.device)
        q = query[rows, :, pos].unsqueeze(2)
        row_mask = mask.expand(b, mask.shape[1], t, mask.shape[-1])[rows, :, pos].unsqueeze(2)  # [B, ., 1, S]
    # one query per row: causality is in its mask row, or it is the last query and sees every key (a causal
    # flag, e.g. the one GPT-2 computes from the whole query in transformers 4.x, would let it see only the first)
    kwargs["is_causal"] = False
    out, _ = call.inner(module, q, key, value, row_mask, **kwargs)  # [B, 1, H, hd]
    call.counter[0] += b
    return out.expand(b, t, *out.shape[2:]), None  # [B, 1, H, hd] -> every position (only the read one is read)


def _register() -> None:
    if not _REGISTERED[0]:
        from transformers import AttentionInterface

        AttentionInterface.register(NAME, _attention)
        _REGISTERED[0] = True


@contextmanager
def restricted(block: nn.Module, path: str | None, index: torch.Tensor | None, counter: list[int]) -> Iterator[None]:
    """For one call of ``block``, its attention module at ``path`` attends from position ``index`` ([B], or
    -1) only; ``counter[0]`` adds the rows it ran on. A no-op where the implementation is not eager/sdpa."""
    module = block.get_submodule(path) if path else None
    inner = _implementation(module) if module is not None else None
    if module is None or inner is None:
        yield
        return
    _register()
    token = _ACTIVE.set(_Call(module, inner, index, counter))
    try:
        with attention_swapped(module.config, NAME):  # type: ignore[arg-type]  # an attention module's config
            yield
    finally:
        _ACTIVE.reset(token)
