"""Sharing a LoRA chain's base projections between its stages: the earlier stages reuse what the running
stage's pass computed on the same input, bit for bit.

A base model with LoRA adapters is one set of blocks: stage k runs them with adapters 1..k active (the
pre-trained stage with none), and an adapted projection computes ``base_layer(x)`` and adds its active
adapters' ``B A x``. The submodules the family registry names ``same_input`` (the input norm, and the
queries, keys and values it feeds) get the same input in every stage, so the running stage, which the
engine calls first, has already computed what each earlier stage's call needs: the norm, and each
projection's ``base_layer(x)`` (an unadapted projection as it is).

For the duration of one ``TuCoLayer`` call, each such module keeps the last (input, output) pair it
computed, and a call with the same input gets that output back: the same tensor object (the engine
hands every stage the same x, so the norm's output is then the same object too), or a tensor of the same
shape, dtype and bits (compared as integers: O(T*d), against O(T*d*d_out) for the product). Any other
call computes; an input that differs in value (an adapted norm, ``modules_to_save``) is logged once.
Exactness never rests on the input being equal, only on its being checked (``docs/concepts.md``). Not
shared, logged once: modules with a LoRA variant (DoRA, ...) or another tuner, merged adapters.
Full-checkpoint stages hold other blocks and never share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

_LOGGED: set[str] = set()

# same-size integer dtypes: inputs are compared bit for bit (+0.0 vs -0.0 and NaN payloads included)
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _log_once(message: str) -> None:
    if message not in _LOGGED:
        _LOGGED.add(message)
        log.warning(message)


def _is_tuner(module: nn.Module) -> bool:
    """A PEFT layer the engine switches per stage (LoRA, DoRA, IA3, ``modules_to_save`` wrappers, ...)."""
    return hasattr(module, "_disable_adapters") and hasattr(module, "active_adapters")


def _kind(module: nn.Module) -> str:
    """A PEFT layer's kind for a log line: ``lora.Linear with DoraLinearVariant``, ``other.ModulesToSaveWrapper``."""
    package = type(module).__module__.removeprefix("peft.tuners.").removeprefix("peft.utils.").split(".")[0]
    variants = getattr(module, "lora_variant", None) or {}
    extra = " with " + "/".join(sorted({type(v).__name__ for v in variants.values()})) if variants else ""
    return f"{package}.{type(module).__name__}{extra}"


def _lora_base(module: nn.Module) -> nn.Module | None:
    """The base layer of a plain LoRA linear layer (peft's ``lora.Linear``, no variant such as DoRA, not
    nested): the one module whose output every stage's call computes first. None for anything else.

    The one place that relies on how peft's ``lora.Linear.forward`` works (it calls ``self.base_layer(x)``
    and adds the adapters out of place, in peft 0.17 to 0.21 at least; tested on both). Reads only.
    """
    try:
        from peft.tuners.lora import Linear as LoraLinear
    except ImportError:  # pragma: no cover - no PEFT, no adapters
        return None
    if type(module) is not LoraLinear or getattr(module, "lora_variant", None):
        return None
    base = getattr(module, "base_layer", None)
    if not isinstance(base, nn.Module) or _is_tuner(base) or base is not module.get_base_layer():
        return None
    return base


@dataclass
class SharedBlock:
    """What the stages of one block share: the modules whose output is memoised for one layer call (a
    LoRA layer's base layer, or a module no adapter touches: the input norm, ...) and the LoRA layers."""

    targets: list[tuple[str, nn.Module]] = field(default_factory=list)  # (path in the block, module)
    loras: list[nn.Module] = field(default_factory=list)


def plan(blocks: Sequence[nn.Module], paths: Sequence[str]) -> SharedBlock | None:
    """What the stages of one layer may share: ``blocks`` are the stages' blocks (the running one last),
    ``paths`` the registry's same-input submodules. None unless an earlier stage runs the running
    stage's very block (a PEFT pair or stacked adapters) and some submodule can be shared."""
    running = blocks[-1]
    if not paths or not any(b is running for b in blocks[:-1]):
        return None
    shared = SharedBlock()
    for path in paths:
        module = running.get_submodule(path)
        base = _lora_base(module)
        if base is not None:
            shared.targets.append((path, base))
            shared.loras.append(module)
        elif not any(_is_tuner(m) for m in module.modules()):
            shared.targets.append((path, module))  # no adapter here (a norm, ...): every stage runs it as it is
        else:
            kinds = sorted({_kind(m) for m in module.modules() if _is_tuner(m)})
            _log_once(
                f"tuco: {path!r} is adapted by {', '.join(kinds)}: the stages do not share it (only plain LoRA layers "
                "and unadapted modules are; still exact, slower)"
            )
    others = sorted({_kind(m) for m in running.modules() if _is_tuner(m) and _lora_base(m) is None})
    if others:
        _log_once(
            f"tuco: the adapter has layers besides plain LoRA ({', '.join(others)}): a shared module whose "
            "input they change (an adapted norm, modules_to_save) is recomputed (still exact)"
        )
    return shared if shared.targets else None


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(_BITS[t.element_size()]) if t.is_floating_point() else t


class _Equal:
    """Bit equality of two tensors, each pair compared once per layer call (queries, keys and values
    usually read one input tensor)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, bool]] = {}

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        if a is b:
            return True
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            return False
        key = (id(a), id(b))
        hit = self._seen.get(key)
        if hit is None:  # holding both keeps their ids from being reused within the call
            hit = self._seen[key] = (a, b, torch.equal(_bits(a), _bits(b)))
        return hit[2]


def _memo_forward(inner: Callable[..., Any], path: str, equal: _Equal, counter: list[int]) -> Callable[..., Any]:
    """``inner`` answering a call whose input equals the last one's (bits, shape, dtype) with its output."""
    last: list[Any] = [None, None]  # input, output

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or not isinstance(x, torch.Tensor):
            return inner(x, *args, **kwargs)
        seen = last[0]
        if seen is not None and equal(seen, x):
            counter[0] += 1
            return last[1]
        if seen is not None and seen.shape == x.shape and seen.dtype == x.dtype:
            _log_once(
                f"tuco: the stages feed {path!r} different inputs (an adapted norm or modules_to_save?): "
                "it is recomputed for each (still exact; slower)"
            )
        out = inner(x)
        last[0], last[1] = x, out
        return out

    return forward


@contextmanager
def sharing(shared: SharedBlock, counter: list[int]) -> Iterator[None]:
    """For one layer call (every stage's block), the shared modules memoise their last output.

    ``counter[0]`` counts the calls answered from memory. The modules' own ``forward`` (or a hook's
    replacement of it, e.g. accelerate's) is wrapped on the instance and restored on exit; merged adapters
    (the base weights then hold an adapter until the pre-trained call unmerges them) share nothing.
    """
    if any(m.merged for m in shared.loras):
        _log_once("tuco: the LoRA adapters are merged into the base weights: no base projection is shared (still exact)")
        yield
        return
    equal = _Equal()
    saved = []
    try:
        for path, module in shared.targets:
            own = module.__dict__.get("forward")
            saved.append((module, own))
            inner = own if own is not None else module.forward
            module.__dict__["forward"] = _memo_forward(inner, path, equal, counter)
        yield
    finally:
        for module, own in reversed(saved):
            if own is None:
                del module.__dict__["forward"]
            else:
                module.__dict__["forward"] = own
