"""Algorithm 1 inside a real Hugging Face model: the layer wrapper, the stages' caches and the recorder.

A chain of checkpoints M_0 (pre-trained), M_1, ..., M_K (the model that runs). For the duration of an
``Engine`` context, every decoder block of M_K is replaced by a ``TuCoLayer`` that holds the block of
the same index of every stage, f_0 ... f_K, and calls them all on the SAME input x_l (the running
stream of the model being run):

    C_0,l = f_0(x_l)                    (what the pre-trained block writes: PTC_l)
    C_k,l = f_k(x_l) - f_{k-1}(x_l)     (what stage k added on top of stage k-1), k = 1..K
    x_{l+1} = x_l + C_0,l + sum_k alpha_k,l * C_k,l      (every alpha = 1: exactly M_K's block)

A pair is the chain K = 1: C_0 = PTC, C_1 = FTC = f_FT - f_PT. The components are added, in float32,
into a ``Recorder``. The model's own forward keeps doing embeddings, masks, positions, caches and
``generate``. Nothing about files, prompts or plots here.

Fast path: where only one position per row of the earlier stages' outputs is ever read (every alpha is
1 and the recorder keeps the last position only), each earlier stage's block runs its feed-forward
part, and where the family registry knows them its query and output projections and its attention (one
query per row, ``tuco.engine.attention_at``), at that position only; keys and values still come from every
position, so what is read is exact (see ``docs/concepts.md``). Any other use runs whole blocks.

LoRA stages (a base with stacked adapters: one block object for every stage) share the base projections
whose input is the same in every stage: the earlier stages reuse what the running stage's call computed,
when its input is checked bit-identical (``tuco.engine.lora_share``).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tuco._compat import adapters_active, replace_captured_hidden_state, tuner_layers, unobserved
from tuco.engine import attention_at, lora_share
from tuco.engine.alpha import EngineAlphas, normalize_alphas
from tuco.errors import ConfigError, TucoError

if TYPE_CHECKING:
    from tuco.engine.alpha import AlphaLike

try:  # transformers >= 4.36
    from transformers.cache_utils import Cache as _HFCache
except ImportError:  # pragma: no cover - very old transformers
    _HFCache = ()  # type: ignore[assignment,misc]

_HAS_CACHE_TYPE = bool(_HFCache)


# --------------------------------------------------------------------------------------------
# Recorder: what one forward pass contributed, per stage component, in float32.
# --------------------------------------------------------------------------------------------


@dataclass
class ForwardRecord:
    """Components of one forward pass of the whole model (one prefill or one decoding step).

    ``sums``: [S, B, d] (S = K + 1 components: C_0 = PTC, then each stage's) summed over layers at the
    last position, or [S, B, T, d] at every position when the recorder runs per token.
    ``steered``: [B, d] (or [B, T, d]) = sum over layers and stages k >= 1 of alpha_k,l * C_k,l (each row
    with its own alpha when alpha is per row), the fine-tuning actually added under steering; None when every
    alpha is 1 (then it is ``sums[1:].sum(0)``).
    ``layer_l1``: [S, B, L], the L1 norm of every component C_k,l at the last position.
    """

    sums: torch.Tensor
    layer_l1: torch.Tensor
    steered: torch.Tensor | None = None

    @property
    def sum_ptc(self) -> torch.Tensor:
        """S_PTC = sum_l C_0,l."""
        return self.sums[0]

    @property
    def sum_ftc(self) -> torch.Tensor:
        """S_FTC = sum_l (f_K - f_0)(x_l) = sum over stages k >= 1 of S_k (the pair's FTC)."""
        return self.sums[1] if self.sums.shape[0] == 2 else self.sums[1:].sum(0)

    @property
    def sum_ftc_steered(self) -> torch.Tensor:
        """sum_l alpha_l * FTC_l: what fine-tuning actually added (equals ``sum_ftc`` when every alpha is 1)."""
        return self.sum_ftc if self.steered is None else self.steered

    @property
    def layer_ptc_l1(self) -> torch.Tensor:
        """[B, L] ||PTC_l||_1 at the last position."""
        return self.layer_l1[0]

    @property
    def layer_ftc_l1(self) -> torch.Tensor:
        """[B, L] ||FTC_l||_1 at the last position (a chain: of f_K - f_0)."""
        return self.layer_l1[1] if self.layer_l1.shape[0] == 2 else self._layer_ftc

    _layer_ftc: torch.Tensor = field(default=None, repr=False)  # type: ignore[assignment]


@dataclass
class Recorder:
    """Accumulates each stage's component over the layers of each forward pass; one record per pass.

    ``last_index`` ([B] long, optional) names the last real token of each row of forward passes of
    length ``last_index_len`` (right padding); for passes of any other length, and when it is None,
    the last position is -1 (left padding, and every decoding step).
    """

    n_layers: int
    per_token: bool = False
    last_index: torch.Tensor | None = None
    last_index_len: int = -1
    records: list[ForwardRecord] = field(default_factory=list)
    _at_end: bool | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._sums: torch.Tensor | None = None
        self._steered: torch.Tensor | None = None
        self._layer: list[torch.Tensor] = []
        self._layer_ftc: list[torch.Tensor] = []

    def positions(self, length: int) -> torch.Tensor | None:
        """[B] index of the position read in a pass of ``length`` tokens (None: position -1 of every row,
        also when ``last_index`` names it for every row: left padding, rows of equal length)."""
        if self.last_index is None or length != self.last_index_len:
            return None
        if self._at_end is None:  # decided once (on a GPU the check waits for the device)
            self._at_end = bool((self.last_index == length - 1).all())
        return None if self._at_end else self.last_index

    def _last(self, v: torch.Tensor) -> torch.Tensor:
        """[..., B, T, d] -> [..., B, d] at the last real position of each row."""
        idx = self.positions(v.shape[-2])
        if idx is None:
            return v[..., -1, :]
        rows = torch.arange(v.shape[-3], device=v.device)
        return v[..., rows, idx.to(v.device), :]

    @torch.no_grad()
    def add(self, layer: int, x: torch.Tensor, outs: Sequence[torch.Tensor], alphas: LayerAlphas | None) -> None:
        """Record layer ``layer`` from its input x and the blocks' outputs f_0(x) ... f_K(x) (all [B, T, d]).

        ``alphas``: alpha_k,l of stages 1..K at this layer (numbers, or one [B] tensor per stage: per row), or
        None when every alpha of the pass is 1.
        """
        if not self.per_token:  # only the last position is ever needed: do the float32 work on [B, d] only
            x, outs = self._last(x), [self._last(h) for h in outs]
        hs = torch.stack([h.float() for h in outs])  # [S, B, (T,) d]
        comps = torch.cat([hs[:1] - x.float(), hs[1:] - hs[:-1]])  # C_0 = f_0(x) - x; C_k = f_k(x) - f_{k-1}(x)
        if self._sums is None:
            self._sums = comps.clone()
        else:
            comps = comps.to(self._sums.device)  # device_map: layers may live on several devices
            self._sums += comps
        if alphas is not None:
            added = (_scale(alphas, comps[1:]) * comps[1:]).sum(0)
            self._steered = added if self._steered is None else self._steered + added
        last = self._last(comps) if self.per_token else comps  # [S, B, d]
        self._layer.append(last.abs().sum(-1))
        if comps.shape[0] > 2:
            self._layer_ftc.append(last[1:].sum(0).abs().sum(-1))
        if layer == self.n_layers - 1:
            self._commit()

    def _commit(self) -> None:
        if self._sums is None:  # internal invariant: add() ran for every layer
            raise RuntimeError("recorder committed before any layer was recorded")
        rec = ForwardRecord(sums=self._sums, layer_l1=torch.stack(self._layer, dim=-1), steered=self._steered)
        if self._layer_ftc:
            rec._layer_ftc = torch.stack(self._layer_ftc, dim=-1)
        self.records.append(rec)
        self._reset()


# --------------------------------------------------------------------------------------------
# Stages: which blocks a checkpoint contributes, and how to switch PEFT adapters for it.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One checkpoint of a chain, as the engine sees it: the block list its blocks come from and, for
    PEFT adapters stacked on one base, which adapters are active for it (``()``: all off, the base;
    None: leave the blocks as they are)."""

    layers: nn.ModuleList
    adapters: tuple[str, ...] | None = None


class _BlockView:
    """One stage's block at one layer: the module and the adapter setting it runs with."""

    def __init__(self, block: nn.Module, adapters: tuple[str, ...] | None) -> None:
        self.block = block
        self.adapters = adapters
        self._tuners: list[Any] = tuner_layers(block) if adapters is not None else []

    def active(self) -> AbstractContextManager[None]:
        """Switch the block's PEFT layers to this stage's adapters for one call (no-op otherwise)."""
        if not self._tuners or self.adapters is None:
            return nullcontext()
        return adapters_active(self._tuners, self.adapters)


# --------------------------------------------------------------------------------------------
# Fast path: run a submodule at the read positions only.
# --------------------------------------------------------------------------------------------


class _AtPositions(nn.Module):
    """Runs ``inner`` on one position per row (``index`` [B], or -1) and returns that row's result at every
    position (a broadcast view: nothing is written).

    Placed, for one call, where a per-position submodule (feed-forward, its norms, query or output
    projection) sits in an earlier stage's block; what it returns at the other positions is never read.
    """

    def __init__(self, inner: nn.Module, index: torch.Tensor | None, counter: list[int]) -> None:
        super().__init__()
        self.inner = inner
        self.index = index
        self.counter = counter

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        b, t = x.shape[0], x.shape[1]
        if self.index is None:  # position -1 of every row
            at = x[:, -1:]
        else:
            at = x[torch.arange(b, device=x.device), self.index.to(x.device)].unsqueeze(1)
        # contiguous: a strided [B, 1, d] would make the product one matrix-vector call (one weight read) per row
        out = self.inner(at.contiguous(), *args, **kwargs)  # [B, 1, ...]
        self.counter[0] += b
        first = out if isinstance(out, torch.Tensor) else out[0]
        full = first.expand(b, t, *first.shape[2:])
        return full if isinstance(out, torch.Tensor) else (full, *out[1:])


def _swap(parent: nn.Module, name: str, module: nn.Module) -> nn.Module:
    old = parent._modules[name]
    parent._modules[name] = module
    return old  # type: ignore[return-value]


@contextmanager
def _at_positions(block: nn.Module, paths: Sequence[str], index: torch.Tensor | None, counter: list[int]) -> Iterator[None]:
    """For one call, the submodules at ``paths`` (dotted, relative to ``block``) run at ``index`` only."""
    swapped = []
    try:
        for path in paths:
            parent_path, _, name = path.rpartition(".")
            parent = block.get_submodule(parent_path) if parent_path else block
            inner: Any = parent._modules[name]
            swapped.append((parent, name, _swap(parent, name, _AtPositions(inner, index, counter))))
        yield
    finally:
        for parent, name, old in reversed(swapped):
            parent._modules[name] = old


# --------------------------------------------------------------------------------------------
# The layer wrapper.
# --------------------------------------------------------------------------------------------


class _EngineState:
    """What all wrappers of one Engine share: alphas, the recorder, the stages' caches, the fast path, the
    LoRA sharing."""

    def __init__(
        self,
        alphas: EngineAlphas,
        recorder: Recorder | None,
        fast_paths: tuple[str, ...],
        share_paths: tuple[str, ...] = (),
        fast_attention: str = "",
    ) -> None:
        self.fast_paths = fast_paths
        self.fast_attention = fast_attention  # the attention module the fast path runs for one query per row
        self.configure(alphas, recorder)
        self.fast_rows = [0]  # rows the restricted submodules ran on (tests read it: the fast path was taken)
        self.share_paths = share_paths  # LoRA stages: the projections whose input every stage shares
        self.shared = [0]  # calls answered with the running stage's output (tests read it: the sharing was taken)
        # running model's cache object -> one cache per earlier stage (same type, advanced in lockstep).
        self.caches: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()

    def configure(self, alphas: EngineAlphas, recorder: Recorder | None) -> None:
        """Alphas ([stage][layer] numbers, or a [K, L, B] tensor: per row) and recorder of the next passes."""
        self.alphas = alphas  # forward reads stage[layer]: a number, or a [B] tensor of the rows' alphas
        self.recorder = recorder
        all_one = bool((alphas == 1).all()) if isinstance(alphas, torch.Tensor) else all(a == 1.0 for stage in alphas for a in stage)
        # Earlier stages' outputs are read only by the recorder, at one position per row, when every alpha
        # is 1 and nothing is recorded per token; with no recorder at all they are not read anywhere.
        self.skip_earlier = all_one and recorder is None
        self.fast = all_one and recorder is not None and not recorder.per_token and bool(self.fast_paths)
        self.record_alphas = not all_one

    def stage_caches(self, cache: object, n: int) -> list[object]:
        """The earlier stages' caches matching the running model's ``cache`` (made, empty, when first seen)."""
        found = self.caches.get(cache)
        if found is None:
            seen = cache.get_seq_length() if hasattr(cache, "get_seq_length") else 0
            if int(seen) != 0:
                raise TucoError(
                    f"the model was given a cache already holding {int(seen)} tokens that were not computed "
                    "under tuco, so the pre-trained blocks have no matching cache; run the whole sequence "
                    "inside the tuco context (or pass no past_key_values)"
                )
            found = [copy.deepcopy(cache) for _ in range(n)]  # empty: copies the structure, no data
            self.caches[cache] = found
        return found

    def args_for(self, stage: int, n: int, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """The call's arguments with any HF cache (found by type, whatever its name) swapped for ``stage``'s."""
        if not _HAS_CACHE_TYPE:
            return args, kwargs

        def swap(v: object) -> object:
            return self.stage_caches(v, n)[stage] if isinstance(v, _HFCache) else v

        return tuple(swap(a) for a in args), {k: swap(v) for k, v in kwargs.items()}


def _hidden(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Hidden states from a decoder layer output: a tensor (transformers 5) or a tuple (4.x)."""
    return out if isinstance(out, torch.Tensor) else out[0]


LayerAlphas = Sequence[float] | Sequence[torch.Tensor]  # alpha_k at one layer: numbers, or [B] per stage


def _per_row(alphas: LayerAlphas) -> bool:
    return len(alphas) > 0 and isinstance(alphas[0], torch.Tensor)


def _scale(alphas: LayerAlphas, like: torch.Tensor) -> torch.Tensor:
    """alpha_k broadcastable against ``like`` [K, B, (T,) d]: [K, 1, ...] (shared) or [K, B, 1, ...] (per row)."""
    if not _per_row(alphas):
        return torch.tensor(alphas, dtype=like.dtype, device=like.device).view(-1, *([1] * (like.dim() - 1)))
    rows = torch.stack(list(alphas)).to(like.device, like.dtype)  # type: ignore[arg-type]  # [K, B]
    if rows.shape[1] != like.shape[1]:
        raise TucoError(f"alpha is given per row for {rows.shape[1]} rows but the batch has {like.shape[1]} rows; give one alpha per row")
    return rows.view(*rows.shape, *([1] * (like.dim() - 2)))


def mix(outs: Sequence[torch.Tensor], alphas: LayerAlphas) -> torch.Tensor:
    """x + C_0 + sum_k alpha_k * C_k = f_0(x) + sum_k alpha_k * (f_k(x) - f_{k-1}(x)), exact where it can be.

    Every alpha 1: f_K(x) itself. Alphas 1 up to stage j-1 and 0 from stage j on: f_{j-1}(x) itself.
    Otherwise computed in float32 and cast back. Per-row alphas ([B] tensors): the same, row by row (a row at
    alpha 1 is f_K(x)'s row itself).
    """
    if _per_row(alphas):
        return _mix_rows(outs, alphas)  # type: ignore[arg-type]
    shared: Sequence[float] = alphas  # type: ignore[assignment]
    first_zero = next((k for k, a in enumerate(shared) if a != 1.0), len(shared))
    if all(a == 0.0 for a in shared[first_zero:]):
        return outs[first_zero]
    h = [o.float() for o in outs]
    mixed = h[0]
    for k, a in enumerate(shared, start=1):
        mixed = mixed + a * (h[k] - h[k - 1])
    return mixed.to(outs[-1].dtype)


def _mix_rows(outs: Sequence[torch.Tensor], alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """``mix`` with one alpha per row: [K, B] alphas over [B, T, d] outputs."""
    h = [o.float() for o in outs]  # each [B, T, d]
    a = _scale(alphas, h[0].unsqueeze(0))  # [K, B, 1, 1]
    mixed = h[0]
    for k in range(1, len(outs)):
        mixed = mixed + a[k - 1] * (h[k] - h[k - 1])
    mixed = mixed.to(outs[-1].dtype)
    # Rows whose alphas are 1 up to stage j-1 and 0 from stage j on are f_{j-1}(x)'s rows exactly.
    rows = a.reshape(a.shape[0], a.shape[1])  # [K, B]
    for j in range(len(outs) - 1, -1, -1):
        exact = (rows[:j] == 1).all(0) & (rows[j:] == 0).all(0)  # [B]
        if bool(exact.any()):
            mixed = torch.where(exact.view(-1, *([1] * (mixed.dim() - 1))), outs[j], mixed)
    return mixed


class TuCoLayer(nn.Module):
    """One decoder layer of Algorithm 1: runs every stage's block on the same input.

    Returns the same kind of output as the running block (tensor or tuple), with the hidden states
    replaced by x + C_0 + sum_k alpha_k * C_k. Attribute look-ups it does not own (``attention_type``,
    ...) fall through to the running block, so model code that inspects its layers keeps working.

    The earlier stages' blocks are held as plain attributes, NOT registered submodules: they belong to
    other models, so the running model's ``modules()``, ``state_dict()``, ``.to()`` and the hooks
    transformers installs on its blocks never reach them.
    """

    def __init__(self, index: int, views: list[_BlockView], state: _EngineState) -> None:
        super().__init__()
        self.index = index
        self.ft_block = views[-1].block
        object.__setattr__(self, "_views", views)  # unregistered on purpose (see class docstring)
        self._state = state
        self._shared = lora_share.plan([v.block for v in views], state.share_paths)

    @property
    def pt_block(self) -> nn.Module:
        """The pre-trained block (stage 0)."""
        block: nn.Module = self._views[0].block
        return block

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("ft_block"), name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        state, alphas = self._state, tuple(stage[self.index] for stage in self._state.alphas)
        x = args[0] if args else kwargs["hidden_states"]  # [B, T, d]: x_l, the running stream
        earlier = self._earlier_args(args, kwargs)  # before the running block: its cache must still be empty
        with self._sharing():
            out_K = self._views[-1].block(*args, **kwargs)  # f_K(x), the running model's block
            h_K = _hidden(out_K)
            if state.skip_earlier:
                return out_K
            outs = [self._run(k, x, a, kw) for k, (a, kw) in enumerate(earlier)] + [h_K]  # f_0(x) ... f_K(x)
        if state.recorder is not None:
            state.recorder.add(self.index, x, outs, alphas if state.record_alphas else None)
        out = mix(outs, alphas)
        if out is not h_K:
            replace_captured_hidden_state(h_K, out)
        return out if isinstance(out_K, torch.Tensor) else (out, *out_K[1:])

    # ---- plumbing: caches, adapters, devices, the fast path, shared LoRA base projections ----

    def _sharing(self) -> AbstractContextManager[None]:
        """LoRA stages on one block: the earlier stages' calls reuse the running call's base projections."""
        if self._shared is None or self._state.skip_earlier:
            return nullcontext()
        return lora_share.sharing(self._shared, self._state.shared)

    def _earlier_args(self, args: tuple, kwargs: dict) -> list[tuple[tuple, dict]]:
        n = len(self._views) - 1
        if self._state.skip_earlier:
            return []
        return [self._state.args_for(k, n, args, kwargs) for k in range(n)]

    def _run(self, k: int, x: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
        """f_k(x) of an earlier stage, on x's device, at the read position only when the fast path applies."""
        view, state = self._views[k], self._state
        fast = state.fast and x.shape[1] > 1
        index = state.recorder.positions(x.shape[1]) if fast and state.recorder is not None else None
        restrict = _at_positions(view.block, state.fast_paths, index, state.fast_rows) if fast else nullcontext()
        attend = attention_at.restricted(view.block, state.fast_attention, index, state.fast_rows) if fast else nullcontext()
        with unobserved(), view.active(), restrict, attend:
            h = _hidden(view.block(*args, **kwargs))
        return h if h.device == x.device else h.to(x.device)  # device_map placed the blocks apart


# --------------------------------------------------------------------------------------------
# Engine: install the wrappers for the duration of a context; always restore.
# --------------------------------------------------------------------------------------------


class Engine:
    """Installs ``TuCoLayer`` wrappers into the running model's block list and removes them on exit.

    ``stages``: M_0 ... M_K as ``Stage``s; the last one's block list is the running model's (for a
    PEFT pair, every stage points at the same list and differs in its active adapters).
    ``fast_paths``: dotted names, relative to a block, of the per-position submodules the fast path may
    restrict (from the family registry; empty: always whole blocks) and ``fast_attention`` the attention
    module it runs for one query per row (registry; "": whole attention). ``share_paths``: the submodules
    whose input is the same in every stage, which LoRA stages on one block share (registry; empty: none).
    ``full_path=True`` forces whole blocks, each stage computed on its own. Use as a context manager;
    not re-entrant.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        alpha: AlphaLike = 1.0,
        recorder: Recorder | None = None,
        fast_paths: Sequence[str] = (),
        share_paths: Sequence[str] = (),
        fast_attention: str = "",
        full_path: bool = False,
    ) -> None:
        if len(stages) < 2:
            raise ConfigError("a decomposition needs at least two checkpoints (pre-trained and fine-tuned)")
        n = len(stages[-1].layers)
        for k, s in enumerate(stages):
            if len(s.layers) != n:
                raise ConfigError(f"checkpoint {k} has {len(s.layers)} layers, the final model has {n}")
        self.stages = list(stages)
        alphas = normalize_alphas(alpha, len(stages) - 1, n)
        self.state = _EngineState(
            alphas,
            recorder,
            () if full_path else tuple(fast_paths),
            () if full_path else tuple(share_paths),
            "" if full_path else fast_attention,
        )
        self._originals: list[nn.Module] | None = None
        self._n_layers = n

    def set_pass(self, *, alpha: AlphaLike = 1.0, recorder: Recorder | None = None) -> None:
        """Alpha and recorder for the next forward passes inside this context (between passes); the stages'
        caches are kept, so a decode loop can change its rows' alphas from one step to the next."""
        self.state.configure(normalize_alphas(alpha, len(self.stages) - 1, self._n_layers), recorder)

    def stage_caches(self, cache: object) -> list[object]:
        """The earlier stages' caches that follow the running model's ``cache`` (empty before it was used
        inside this context): a caller that edits ``cache`` (drops or adds rows) edits them alike."""
        return list(self.state.caches.get(cache, []))

    @property
    def fast_rows(self) -> int:
        """Rows the fast path's restricted submodules ran on so far (0: every block ran whole)."""
        return self.state.fast_rows[0]

    @property
    def shared_calls(self) -> int:
        """Earlier stages' calls of same-input submodules (LoRA base projections, norms) answered with the
        running stage's output (0: none shared)."""
        return self.state.shared[0]

    def __enter__(self) -> Engine:
        ft_layers = self.stages[-1].layers
        if any(isinstance(b, TuCoLayer) for b in ft_layers):
            raise TucoError("tuco is already active on this model (nested scoring/steering contexts are not supported)")
        snapshot = [list(s.layers) for s in self.stages]  # before editing: a PEFT chain shares one list
        self._originals = snapshot[-1]
        for i in range(len(ft_layers)):
            views = [_BlockView(blocks[i], s.adapters) for blocks, s in zip(snapshot, self.stages)]
            ft_layers[i] = TuCoLayer(i, views, self.state)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._originals is not None:
            ft_layers = self.stages[-1].layers
            for i, block in enumerate(self._originals):
                ft_layers[i] = block
            self._originals = None
        self.state.caches.clear()
