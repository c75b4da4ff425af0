"""Continuous batching: sequences with their own alpha, sampler and limits share one forward pass per step,
join the running batch after their prefill and leave it when they finish or are cancelled.

A ``Decoder`` keeps one engine context open for its lifetime; every forward pass gets its rows' alphas
(``RowAlphas``: mixed alphas in one pass) and a fresh recorder through ``Engine.set_pass``. The running
batch is left-padded: one attention mask [B, T], the running model's KV cache and one cache per earlier
stage (the engine's, ``Engine.stage_caches``), always edited together: a prefilled group is left-padded
and concatenated into them (``_merge``); finished rows are dropped and the left padding no row needs any
more is cut (``_keep``). Positions are counted per row from its first real token, so what a row computes
does not depend on the rows beside it (float32: to rounding; tested equal to ``tuco.generate`` and
``tuco.score`` on the row alone). Sampling draws from each row's own ``torch.Generator``.

``token_tuco[i]`` is TuCo at the position whose next-token distribution produced token i (index 0: the
prompt's last token), as in ``tuco.generation``; the end-of-sequence token counts as generated.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from tuco import metrics
from tuco.batching import pad
from tuco.decomposition import Recorder
from tuco.errors import ConfigError, TucoError
from tuco.generation import eos_ids
from tuco.steering import RowAlphas

if TYPE_CHECKING:
    from tuco.model import Decomposable


@dataclass(eq=False)
class Row:
    """One sequence of the running batch: prompt ids, alpha, sampling and limits, and what it produced.

    ``logprobs``: how many top alternatives to return per generated token (None: no logprobs; 0: the
    chosen token's only); ``prompt_logprobs``: also the logprob of every prompt token given the ones
    before (the first is None). ``finish_reason``: "stop" (an end-of-sequence token, or the caller's stop
    rule), "length" (``max_new_tokens``), "cancelled" (the caller gave up on it).
    """

    ids: list[int]
    alpha: Any = 1.0
    max_new_tokens: int = 16
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    logprobs: int | None = None
    prompt_logprobs: bool = False
    tokens: list[int] = field(default_factory=list)
    token_tuco: list[float] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
    prompt_tuco: float = float("nan")
    prompt_token_logprobs: list[float | None] = field(default_factory=list)
    prompt_top_logprobs: list[dict[int, float] | None] = field(default_factory=list)
    finish_reason: str | None = None
    generator: torch.Generator | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """True once the row has left (or is about to leave) the batch."""
        return self.finish_reason is not None

    @property
    def response_tuco(self) -> float:
        """Mean TuCo over the generated tokens (the prompt's TuCo when nothing was generated)."""
        return sum(self.token_tuco) / len(self.token_tuco) if self.token_tuco else self.prompt_tuco


def check_row(row: Row) -> None:
    """Raise ConfigError on a row's settings that cannot work (before it reaches a batch)."""
    if not row.ids:
        raise ConfigError("the prompt is empty (no tokens); give some text")
    if row.max_new_tokens < 0 or (row.max_new_tokens == 0 and not row.prompt_logprobs):
        raise ConfigError(f"max_tokens must be >= 1 (0 only with echo and logprobs), got {row.max_new_tokens}")
    if not row.temperature >= 0:
        raise ConfigError(f"temperature must be >= 0, got {row.temperature}")
    if row.top_p is not None and not 0 < row.top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {row.top_p}")
    if row.logprobs is not None and not 0 <= row.logprobs <= 20:
        raise ConfigError(f"logprobs must be between 0 and 20, got {row.logprobs}")


class Decoder:
    """The running batch of one model (a pair or chain): ``add`` prefills rows into it, ``step`` decodes one
    token for every running row, ``finish`` marks a row to leave. Not thread-safe: one thread drives it.
    Use as a context manager (the engine's wrappers stay installed until it exits)."""

    def __init__(self, model: Decomposable) -> None:
        self.model = model
        self.eos = eos_ids(model)
        self.rows: list[Row] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None  # [B, T] over the running cache's positions
        self._stack = contextlib.ExitStack()
        self._engine: Any = None
        self._cache_arg = _cache_argument(model.tuned)

    def __enter__(self) -> Decoder:
        self._stack.enter_context(torch.inference_mode())
        self._engine = self._stack.enter_context(self.model.engine())
        return self

    def __exit__(self, *exc: object) -> None:
        self.rows, self._cache, self._mask = [], None, None
        self._stack.close()

    # ---- the two kinds of forward pass ----

    def add(self, rows: list[Row]) -> None:
        """Prefill ``rows`` in one forward pass (each at its own alpha), pick their first tokens, and merge
        them into the running batch. TuCo of each prompt's last token is the row's ``prompt_tuco``."""
        self._prune()
        if not rows:
            return
        for row in rows:
            check_row(row)
            if row.temperature > 0 and row.generator is None:
                row.generator = _generator(row.seed, self.model.device)
        b = pad([r.ids for r in rows], self.model.tokenizer.pad_token_id, self.model.device)
        every_position = any(r.prompt_logprobs for r in rows)
        rec = Recorder(self.model.n_layers)
        self._engine.set_pass(alpha=RowAlphas(r.alpha for r in rows), recorder=rec)
        out = self.model.tuned(**b.model_inputs(), use_cache=True, logits_to_keep=0 if every_position else 1)
        (record,) = rec.records
        tu = metrics.tuco(record.sum_ptc, record.sum_ftc_steered).tolist()
        logits = out.logits.float()  # [B, T or 1, V]
        for i, row in enumerate(rows):
            row.prompt_tuco = tu[i]
            if row.prompt_logprobs:
                self._prompt_logprobs(row, logits[i, b.width - len(row.ids) :])
            if row.max_new_tokens == 0:
                row.finish_reason = "length"
            else:
                self._take(row, logits[i, -1], tu[i])
        self._merge(_returned_cache(out), b.attention_mask, rows)

    def step(self) -> list[Row]:
        """One decoding step: every running row is fed its last token (one forward pass, each row at its own
        alpha) and picks its next one. Returns the rows that got a token."""
        self._prune()
        if not self.rows:
            return []
        rows, mask = self.rows, self._mask
        assert mask is not None  # internal: rows imply a mask
        device = mask.device
        inputs = torch.tensor([[r.tokens[-1]] for r in rows], device=device)
        positions = torch.tensor([[len(r.ids) + len(r.tokens) - 1] for r in rows], device=device)
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        rec = Recorder(self.model.n_layers)
        self._engine.set_pass(alpha=RowAlphas(r.alpha for r in rows), recorder=rec)
        out = self.model.tuned(
            input_ids=inputs,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_arg: self._cache},
        )
        self._mask = mask
        (record,) = rec.records
        tu = metrics.tuco(record.sum_ptc, record.sum_ftc_steered).tolist()
        logits = out.logits[:, -1].float()
        for i, row in enumerate(rows):
            self._take(row, logits[i], tu[i])
        return list(rows)

    def finish(self, row: Row, reason: str) -> None:
        """Mark ``row`` finished (``reason``: "stop", "cancelled", ...); it leaves the batch before the next pass."""
        if row.finish_reason is None:
            row.finish_reason = reason

    @property
    def width(self) -> int:
        """Positions in the running cache (padding included): what the next step attends over."""
        return 0 if self._mask is None else int(self._mask.shape[1])

    # ---- picking tokens ----

    def _take(self, row: Row, logits: torch.Tensor, tuco: float) -> None:
        """Append the token picked from ``logits`` [V] (and its logprobs), and TuCo of the position that produced it."""
        token = _pick(logits, row.temperature, row.top_p, row.generator)
        row.tokens.append(token)
        row.token_tuco.append(tuco)
        if row.logprobs is not None:
            logp = torch.log_softmax(logits, -1)
            row.token_logprobs.append(float(logp[token]))
            row.top_logprobs.append(_top(logp, row.logprobs))
        if token in self.eos:
            row.finish_reason = "stop"
        elif len(row.tokens) >= row.max_new_tokens:
            row.finish_reason = "length"

    def _prompt_logprobs(self, row: Row, logits: torch.Tensor) -> None:
        """Logprob of each prompt token given the ones before it, from the prefill's logits [n, V] (first: None)."""
        logp = torch.log_softmax(logits[:-1], -1)  # position j predicts token j + 1
        ids = torch.tensor(row.ids[1:], device=logp.device)
        chosen = logp.gather(-1, ids[:, None])[:, 0].tolist()
        k = max(1, row.logprobs or 0)
        row.prompt_token_logprobs = [None, *chosen]
        row.prompt_top_logprobs = [None, *(_top(logp[j], k) for j in range(logp.shape[0]))]

    # ---- the running batch's caches: merge a prefilled group, keep some rows ----

    def _caches(self, cache: Any) -> list[Any]:
        """The running model's cache and the earlier stages' that follow it."""
        return [cache, *self._engine.stage_caches(cache)]

    def _merge(self, cache: Any, mask: torch.Tensor, rows: list[Row]) -> None:
        if self._cache is None or self._mask is None:
            self._cache, self._mask, self.rows = cache, mask, list(rows)
            return
        width = max(self.width, int(mask.shape[1]))
        for running, new in zip(self._caches(self._cache), self._caches(cache), strict=True):
            _merge_cache(running, new)
        self._mask = torch.cat([_left_pad(self._mask, width, 1), _left_pad(mask, width, 1)])
        self.rows = self.rows + list(rows)

    def _prune(self) -> None:
        """Drop finished rows from the batch and every cache; cut the left padding no row needs any more."""
        keep = [i for i, r in enumerate(self.rows) if not r.finished]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self._cache, self._mask = [], None, None
            return
        assert self._mask is not None  # internal: rows imply a mask
        index = torch.tensor(keep, device=self._mask.device)
        mask = self._mask[index]
        cut = int(mask.any(0).long().argmax())  # leading positions that are padding in every kept row
        for cache in self._caches(self._cache):
            _select_cache(cache, index, cut)
        self._mask = mask[:, cut:]
        self.rows = [self.rows[i] for i in keep]


def _cache_argument(model: torch.nn.Module) -> str:
    """The forward keyword of the KV cache: ``cache`` (transformers >= 5.x) or ``past_key_values``."""
    import inspect

    from tuco.layers import unwrap_peft

    return "cache" if "cache" in inspect.signature(unwrap_peft(model).forward).parameters else "past_key_values"


def _returned_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator of its own for one row: its samples never depend on the other rows or the global RNG."""
    g = torch.Generator(device=device)
    g.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") & ((1 << 63) - 1))
    return g


def _pick(logits: torch.Tensor, temperature: float, top_p: float | None, generator: torch.Generator | None) -> int:
    """Greedy (temperature 0) or a sample at ``temperature`` from the top-``top_p`` nucleus of ``logits`` [V]."""
    if temperature == 0:
        return int(logits.argmax())
    scores = logits / temperature
    if top_p is not None and top_p < 1:
        ordered, order = scores.sort(descending=False)
        outside = ordered.softmax(-1).cumsum(-1) <= 1 - top_p  # the low tail whose mass is at most 1 - top_p
        outside[-1] = False  # the most likely token always stays
        scores = scores.scatter(-1, order, ordered.masked_fill(outside, float("-inf")))
    return int(torch.multinomial(scores.softmax(-1), 1, generator=generator))


def _top(logp: torch.Tensor, k: int) -> dict[int, float]:
    """The ``k`` most likely tokens with their logprobs (empty for k = 0)."""
    if k <= 0:
        return {}
    values, ids = logp.topk(k)
    return {int(i): float(v) for i, v in zip(ids, values)}


# ---- KV cache surgery (transformers' DynamicCache layers: full attention and sliding window) ----


def _layers(cache: Any) -> list[Any]:
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TucoError(f"tuco serve batches requests through the KV cache's layers; this model's cache ({type(cache).__name__}) has none")
    for layer in layers:
        kind = type(layer).__name__
        if kind not in ("DynamicLayer", "DynamicSlidingWindowLayer"):
            raise TucoError(f"tuco serve cannot batch requests over a {kind} KV cache layer (only full attention and sliding window)")
    return list(layers)


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``t`` left-padded with zeros to ``width`` along ``dim``."""
    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _merge_cache(running: Any, new: Any) -> None:
    """Append ``new``'s rows to ``running`` (both [B, heads, T, d] per layer), left-padding the shorter."""
    for a, b in zip(_layers(running), _layers(new), strict=True):
        if not (a.is_initialized and b.is_initialized):
            if a.is_initialized or b.is_initialized:
                raise TucoError("a KV cache layer was filled for some requests and not others; cannot batch them")
            continue
        width = max(a.keys.shape[-2], b.keys.shape[-2])
        a.keys = torch.cat([_left_pad(a.keys, width, -2), _left_pad(b.keys, width, -2)])
        a.values = torch.cat([_left_pad(a.values, width, -2), _left_pad(b.values, width, -2)])
        if hasattr(a, "cumulative_length"):  # sliding window: positions seen (the mask's width), padding included
            a.cumulative_length = max(a.cumulative_length, b.cumulative_length)


def _select_cache(cache: Any, index: torch.Tensor, cut: int) -> None:
    """Keep the rows ``index`` of every layer and drop the first ``cut`` positions (padding in every kept row)."""
    for layer in _layers(cache):
        if not layer.is_initialized:
            continue
        keys, values = layer.keys[index.to(layer.keys.device)], layer.values[index.to(layer.values.device)]
        if hasattr(layer, "cumulative_length"):  # holds the last min(window - 1, seen) positions
            layer.cumulative_length -= cut
            held = min(keys.shape[-2], layer.cumulative_length)
            keys, values = keys[..., keys.shape[-2] - held :, :], values[..., values.shape[-2] - held :, :]
        else:
            keys, values = keys[..., cut:, :], values[..., cut:, :]
        layer.keys, layer.values = keys, values
