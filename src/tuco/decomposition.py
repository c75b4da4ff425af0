"""Algorithm 1 inside a real Hugging Face model: the layer wrapper, the PT cache and the recorder.

Every decoder block of the fine-tuned (FT) model is replaced, for the duration of an ``Engine``
context, by a ``TuCoLayer`` that holds the FT block and the pre-trained (PT) block of the same
index. Both are called on the SAME input x_l (the running stream of the model being run):

    PTC_l = f_PT(x_l) = PT(x_l) - x_l
    FTC_l = f_FT(x_l) - f_PT(x_l) = FT(x_l) - PT(x_l)
    x_{l+1} = x_l + PTC_l + alpha_l * FTC_l        (alpha = 1: exactly the FT block's output)

and PTC_l / FTC_l are added, in float32, into a ``Recorder``. The model's own forward keeps doing
embeddings, masks, positions, caches and ``generate``. Nothing about files, prompts or plots here.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tuco.errors import ConfigError, TucoError

try:  # transformers >= 4.36
    from transformers.cache_utils import Cache as _HFCache
except ImportError:  # pragma: no cover - very old transformers
    _HFCache = ()  # type: ignore[assignment]

try:  # transformers 5: `output_hidden_states` is collected by hooks on the decoder blocks
    from transformers.utils.output_capturing import _active_collector
except ImportError:  # transformers 4.x
    _active_collector = None


# --------------------------------------------------------------------------------------------
# Recorder: what one forward pass contributed, per component, in float32.
# --------------------------------------------------------------------------------------------


@dataclass
class ForwardRecord:
    """PTC/FTC sums of one forward pass of the whole model (one prefill or one decoding step).

    ``sum_ptc``/``sum_ftc``: [B, d] at the last position, or [B, T, d] at every position when the
    recorder runs per token. ``layer_ptc_l1``/``layer_ftc_l1``: [B, L], the L1 norm of PTC_l and
    FTC_l at the last position, for every layer l.
    """

    sum_ptc: torch.Tensor
    sum_ftc: torch.Tensor
    layer_ptc_l1: torch.Tensor
    layer_ftc_l1: torch.Tensor


@dataclass
class Recorder:
    """Accumulates PTC and FTC over the layers of each forward pass; one ``ForwardRecord`` per pass.

    ``last_index`` ([B] long, optional) names the last real token of each row of forward passes
    of length ``last_index_len`` (right padding); for passes of any other length, and when it is
    None, the last position is -1 (left padding, and every decoding step).
    """

    n_layers: int
    per_token: bool = False
    last_index: torch.Tensor | None = None
    last_index_len: int = -1
    records: list[ForwardRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._sum_ptc: torch.Tensor | None = None
        self._sum_ftc: torch.Tensor | None = None
        self._layer_ptc: list[torch.Tensor] = []
        self._layer_ftc: list[torch.Tensor] = []

    def _last(self, v: torch.Tensor) -> torch.Tensor:
        """[B, T, d] -> [B, d] at the last real position of each row."""
        idx = self.last_index
        if idx is None or v.shape[1] != self.last_index_len:
            return v[:, -1]
        rows = torch.arange(v.shape[0], device=v.device)
        return v[rows, idx.to(v.device)]

    @torch.no_grad()
    def add(self, layer: int, x: torch.Tensor, pt_h: torch.Tensor, ft_h: torch.Tensor) -> None:
        """Record layer ``layer`` from its input x and the PT/FT block outputs (all [B, T, d])."""
        if self.per_token:
            xs, pts, fts = x, pt_h, ft_h
        else:  # only the last position is ever needed: do the float32 work on [B, d] only
            xs, pts, fts = self._last(x), self._last(pt_h), self._last(ft_h)
        pts = pts.float()
        ptc = pts - xs.float()  # PTC_l = f_PT(x_l)
        ftc = fts.float() - pts  # FTC_l = f_FT(x_l) - f_PT(x_l)
        if self._sum_ptc is None:
            self._sum_ptc, self._sum_ftc = ptc.clone(), ftc.clone()
        else:
            dev = self._sum_ptc.device  # device_map: layers may live on several devices
            self._sum_ptc += ptc.to(dev)
            self._sum_ftc += ftc.to(dev)
        ptc_last = self._last(ptc) if self.per_token else ptc
        ftc_last = self._last(ftc) if self.per_token else ftc
        self._layer_ptc.append(ptc_last.abs().sum(-1).to(self._sum_ptc.device))
        self._layer_ftc.append(ftc_last.abs().sum(-1).to(self._sum_ptc.device))
        if layer == self.n_layers - 1:
            self._commit()

    def _commit(self) -> None:
        assert self._sum_ptc is not None and self._sum_ftc is not None  # internal invariant
        self.records.append(
            ForwardRecord(
                sum_ptc=self._sum_ptc,
                sum_ftc=self._sum_ftc,
                layer_ptc_l1=torch.stack(self._layer_ptc, dim=-1),
                layer_ftc_l1=torch.stack(self._layer_ftc, dim=-1),
            )
        )
        self._reset()


# --------------------------------------------------------------------------------------------
# Alpha: one value for every layer, or one per layer.
# --------------------------------------------------------------------------------------------


def normalize_alpha(alpha: float | Sequence[float], n_layers: int) -> tuple[float, ...]:
    """Validate alpha (scalar or one value per layer, each >= 0) and expand it to one per layer."""
    values = [float(alpha)] * n_layers if isinstance(alpha, (int, float)) else [float(a) for a in alpha]
    if len(values) != n_layers:
        raise ConfigError(f"alpha has {len(values)} values but the model has {n_layers} layers; give one value or {n_layers}")
    bad = [a for a in values if not (a >= 0.0) or a != a or a == float("inf")]
    if bad:
        raise ConfigError(f"alpha must be a finite number >= 0, got {bad[0]} (alpha=1 is the fine-tuned model, 0 the pre-trained blocks)")
    return tuple(values)


# --------------------------------------------------------------------------------------------
# The layer wrapper.
# --------------------------------------------------------------------------------------------


class _EngineState:
    """What all wrappers of one Engine share: alpha, the recorder, the PT caches, PEFT switches."""

    def __init__(self, alphas: tuple[float, ...], recorder: Recorder | None, peft: bool) -> None:
        self.alphas = alphas
        self.recorder = recorder
        self.peft = peft
        # FT cache object -> the PT blocks' own cache (same type, advanced in lockstep).
        self.pt_caches: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def pt_cache(self, ft_cache: Any) -> Any:
        """The PT blocks' cache matching ``ft_cache`` (made, empty, the first time it is seen)."""
        pt = self.pt_caches.get(ft_cache)
        if pt is None:
            seen = ft_cache.get_seq_length() if hasattr(ft_cache, "get_seq_length") else 0
            if int(seen) != 0:
                raise TucoError(
                    f"the model was given a cache already holding {int(seen)} tokens that were not computed "
                    "under tuco, so the pre-trained blocks have no matching cache; run the whole sequence "
                    "inside the tuco context (or pass no past_key_values)"
                )
            pt = copy.deepcopy(ft_cache)  # empty: copies the structure (layer types, sizes), no data
            self.pt_caches[ft_cache] = pt
        return pt

    def swap_cache(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """The call's arguments with any HF cache (found by type, whatever its name) swapped for PT's."""
        if not _HFCache:
            return args, kwargs
        new_args = tuple(self.pt_cache(a) if isinstance(a, _HFCache) else a for a in args)
        new_kwargs = {k: (self.pt_cache(v) if isinstance(v, _HFCache) else v) for k, v in kwargs.items()}
        return new_args, new_kwargs


def _hidden(out: Any) -> torch.Tensor:
    """Hidden states from a decoder layer output: a tensor (transformers 5) or a tuple (4.x)."""
    return out if isinstance(out, torch.Tensor) else out[0]


def _fix_captured_hidden_state(ft_h: torch.Tensor, out: torch.Tensor) -> None:
    """transformers 5 records ``output_hidden_states`` from the FT block's output; under steering the
    residual stream is ``out`` instead, so swap the entry just recorded (4.x: not reachable, documented)."""
    if _active_collector is None:
        return
    collected = _active_collector.get()
    states = collected.get("hidden_states") if isinstance(collected, dict) else None
    if states and states[-1] is ft_h:
        states[-1] = out


def _tuner_layers(block: nn.Module) -> list[nn.Module]:
    """PEFT adapter layers (LoRA, ...) inside a block: they carry a ``_disable_adapters`` switch."""
    return [m for m in block.modules() if hasattr(m, "_disable_adapters") and hasattr(m, "active_adapters")]


class TuCoLayer(nn.Module):
    """One decoder layer of Algorithm 1: runs the FT and PT blocks on the same input.

    Returns the same kind of output as the FT block (tensor or tuple), with the hidden states
    replaced by x + PTC + alpha * FTC. Attribute look-ups it does not own (``attention_type``, ...)
    fall through to the FT block, so model code that inspects its layers keeps working.

    The PT block is held as a plain attribute, NOT a registered submodule: it belongs to the base
    model, so the tuned model's ``modules()``, ``state_dict()``, ``.to()`` and the hooks transformers
    installs on its blocks never reach it.
    """

    def __init__(self, index: int, ft_block: nn.Module, pt_block: nn.Module, state: _EngineState) -> None:
        super().__init__()
        self.index = index
        self.ft_block = ft_block
        object.__setattr__(self, "pt_block", pt_block)  # unregistered on purpose (see class docstring)
        self._state = state
        self._adapters = _tuner_layers(ft_block) if state.peft else []

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("ft_block"), name)

    @contextmanager
    def _pretrained(self) -> Iterator[None]:
        """PEFT pairs: the PT block is the FT block with its adapters switched off."""
        before = [m._disable_adapters for m in self._adapters]
        for m in self._adapters:
            m._disable_adapters = True
        try:
            yield
        finally:
            for m, b in zip(self._adapters, before):
                m._disable_adapters = b

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        state = self._state
        x = args[0] if args else kwargs["hidden_states"]  # [B, T, d]: x_l, the running stream
        pt_args, pt_kwargs = state.swap_cache(args, kwargs)  # before FT runs: PT cache copies an empty one
        ft_out = self.ft_block(*args, **kwargs)
        token = _active_collector.set(None) if _active_collector is not None else None
        try:  # output-capturing hooks (output_hidden_states, ...) must not see the PT call
            with self._pretrained():
                pt_out = self.pt_block(*pt_args, **pt_kwargs)
        finally:
            if _active_collector is not None:
                _active_collector.reset(token)
        ft_h, pt_h = _hidden(ft_out), _hidden(pt_out)
        if pt_h.device != ft_h.device:  # device_map placed the two blocks apart
            pt_h = pt_h.to(ft_h.device)
        if state.recorder is not None:
            state.recorder.add(self.index, x, pt_h, ft_h)
        alpha = state.alphas[self.index]
        if alpha == 1.0:
            out = ft_h  # exactly the FT model
        elif alpha == 0.0:
            out = pt_h  # exactly the PT block on this stream
        else:  # x + PTC + alpha * FTC, in float32
            pt32 = pt_h.float()
            out = (pt32 + alpha * (ft_h.float() - pt32)).to(ft_h.dtype)
        if out is not ft_h:
            _fix_captured_hidden_state(ft_h, out)
        return out if isinstance(ft_out, torch.Tensor) else (out, *ft_out[1:])


# --------------------------------------------------------------------------------------------
# Engine: install the wrappers for the duration of a context; always restore.
# --------------------------------------------------------------------------------------------


class Engine:
    """Installs ``TuCoLayer`` wrappers into the FT model's block list and removes them on exit.

    ``ft_layers`` and ``pt_layers`` are the two models' block lists (the same list for a PEFT pair,
    where the PT call disables the adapters). Use as a context manager; not re-entrant.
    """

    def __init__(
        self,
        ft_layers: nn.ModuleList,
        pt_layers: nn.ModuleList,
        *,
        alpha: float | Sequence[float] = 1.0,
        recorder: Recorder | None = None,
        peft: bool = False,
    ) -> None:
        if len(ft_layers) != len(pt_layers):
            raise ConfigError(f"FT has {len(ft_layers)} layers, PT has {len(pt_layers)}")
        self.ft_layers = ft_layers
        self.pt_layers = pt_layers
        self.state = _EngineState(normalize_alpha(alpha, len(ft_layers)), recorder, peft)
        self._originals: list[nn.Module] | None = None

    def __enter__(self) -> Engine:
        if any(isinstance(b, TuCoLayer) for b in self.ft_layers):
            raise TucoError("tuco is already active on this model (nested scoring/steering contexts are not supported)")
        self._originals = list(self.ft_layers)
        pt_blocks = list(self.pt_layers)  # snapshot: for PEFT pairs it is the same list we edit
        for i, (ft_block, pt_block) in enumerate(zip(self._originals, pt_blocks)):
            self.ft_layers[i] = TuCoLayer(i, ft_block, pt_block, self.state)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._originals is not None:
            for i, block in enumerate(self._originals):
                self.ft_layers[i] = block
            self._originals = None
        self.state.pt_caches.clear()
