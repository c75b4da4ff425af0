"""The one decode loop: sequences with their own alpha, sampling settings and generator share one forward
pass per step. ``tuco.generate``, every run (``generate_to``, the experiments) and ``tuco serve`` decode
through it, with one sampler and one seeding rule (``tuco.measures.sampling``).

A ``Decoder`` keeps one engine context open for its lifetime; every forward pass gets its rows' alphas
(mixed alphas in one pass) and a fresh recorder through ``Engine.set_pass``. The running batch is
left-padded: one attention mask [B, T], the running model's KV cache and one cache per earlier stage (the
engine's, ``Engine.stage_caches``), always edited together. Two policies for finished rows:

- ``continuous=True`` (the server): a prefilled group joins the running batch at any step (left-padded
  and concatenated into every cache), and finished or cancelled rows leave it (dropped from every cache,
  the left padding no row needs any more cut), so the batch never carries dead rows;
- ``continuous=False`` (a batch of prompts, ``generate_ids``): every row is prefilled together and a
  finished row stays in the batch, fed the pad token, until the last row finishes, so every pass has the
  shapes of Hugging Face's ``generate`` and the numbers are bit for bit those of the batch (a row that
  leaves changes the shapes the kernels see, which moves float32 results by about 1e-7).

Positions are counted per row from its first real token, so what a row computes does not depend on the
rows beside it beyond float rounding (tested equal to ``tuco.score`` on the row alone).
``token_tuco[i]`` is TuCo at the position whose next-token distribution produced token i (index 0: the
prompt's last token); the end-of-sequence token counts as generated.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from tuco._compat import cache_layers, merge_cache_layers, select_cache_layers
from tuco.engine import metrics
from tuco.engine.alpha import Alpha
from tuco.engine.decomposition import Engine, ForwardRecord, Recorder
from tuco.engine.layers import unwrap_peft
from tuco.errors import ConfigError
from tuco.measures.batching import pad
from tuco.measures.sampling import Sampling, generator, pick
from tuco.models.decomposable import eos_ids

if TYPE_CHECKING:
    from transformers.cache_utils import Cache
    from transformers.utils import ModelOutput

    from tuco.models.decomposable import Decomposable


@dataclass(eq=False)
class Row:
    """One sequence: prompt ids, alpha, sampling settings and its own generator's seed, and what it produced.

    ``seed``: this row's generator seed (``tuco.measures.sampling.row_seed``; None: fresh randomness).
    ``prompt_only``: nothing is generated (the prompt's logprobs and TuCo alone). ``logprobs``: how many top
    alternatives to return per generated token (None: no logprobs; 0: the chosen token's only);
    ``prompt_logprobs``: also the logprob of every prompt token given the ones before (the first is None).
    ``layer_norms``: also record, for every generated token, ||PTC_l||_1 and ||FTC_l||_1 per layer at the
    position that produced it (``token_layer_ptc_l1``/``token_layer_ftc_l1``; ``[0]`` is the prompt's).
    ``finish_reason``: "stop" (an end-of-sequence token, or the caller's stop rule), "length"
    (``max_new_tokens``), "cancelled" (the caller gave up on it).
    """

    ids: list[int]
    alpha: Alpha = field(default_factory=lambda: Alpha.of(1.0))
    sampling: Sampling = field(default_factory=Sampling)
    seed: int | None = None
    logprobs: int | None = None
    prompt_logprobs: bool = False
    prompt_only: bool = False
    layer_norms: bool = False
    tokens: list[int] = field(default_factory=list)
    token_tuco: list[float] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
    prompt_tuco: float = float("nan")
    prompt_token_tuco: list[float] | None = None
    prompt_layer_ptc_l1: list[float] | None = None
    prompt_layer_ftc_l1: list[float] | None = None
    stage_share: list[float] | None = None
    token_stage_share: list[list[float]] | None = None
    token_layer_ptc_l1: list[list[float]] = field(default_factory=list)
    token_layer_ftc_l1: list[list[float]] = field(default_factory=list)
    prompt_token_logprobs: list[float | None] = field(default_factory=list)
    prompt_top_logprobs: list[dict[int, float] | None] = field(default_factory=list)
    finish_reason: str | None = None
    generator: torch.Generator | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.alpha = Alpha.of(self.alpha)
        if not self.ids:
            raise ConfigError("the prompt is empty (no tokens); give some text")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise ConfigError(f"logprobs must be between 0 and 20, got {self.logprobs}")

    @property
    def max_new_tokens(self) -> int:
        """Tokens this row may generate (``prompt_only``: none, the prompt's logprobs alone)."""
        return 0 if self.prompt_only else self.sampling.max_new_tokens

    @property
    def finished(self) -> bool:
        """True once the row has left (or is about to leave) the batch."""
        return self.finish_reason is not None

    @property
    def response_tuco(self) -> float:
        """Mean TuCo over the generated tokens (the prompt's TuCo when nothing was generated)."""
        return sum(self.token_tuco) / len(self.token_tuco) if self.token_tuco else self.prompt_tuco


class Decoder:
    """The running batch of one model (a pair or chain): ``add`` prefills rows into it, ``step`` decodes one
    token for every running row, ``finish`` marks a row to leave. Not thread-safe: one thread drives it.
    Use as a context manager (the engine's wrappers stay installed until it exits).

    ``continuous``: rows join and leave at any step (the server); False: one batch decoded to its end
    with the shapes of ``generate`` (see the module docstring). ``per_token``: every pass records TuCo at
    every position (the prompt's per-token TuCo; whole blocks). ``use_cache``: False recomputes every
    sequence from its first token at every step (the reference the cached path is tested against).
    ``full_path``: the engine's, never the fast path.
    """

    def __init__(
        self, model: Decomposable, *, continuous: bool = True, per_token: bool = False, use_cache: bool = True, full_path: bool = False
    ) -> None:
        if not use_cache and continuous:
            raise ConfigError("decoding without a KV cache is for one batch at a time: continuous=False")
        self.model = model
        self.continuous, self.per_token, self.use_cache, self.full_path = continuous, per_token, use_cache, full_path
        self.eos = eos_ids(model)
        self.pad_id = model.tokenizer.pad_token_id
        self.rows: list[Row] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None  # [B, T] over the running cache's positions
        self._fed = torch.zeros((0, 0), dtype=torch.long)  # without a cache: every sequence so far, left-padded
        self._stack = contextlib.ExitStack()
        self._engine: Any = None
        self._cache_arg = _cache_argument(model.tuned)
        self._chain = model.reports_stages or model.n_stages > 1

    def __enter__(self) -> Decoder:
        self._stack.enter_context(torch.inference_mode())
        self._engine = self._stack.enter_context(self.model.engine(full_path=self.full_path))
        return self

    def __exit__(self, *exc: object) -> None:
        self.rows, self._cache, self._mask = [], None, None
        self._stack.close()

    @property
    def engine(self) -> Engine:
        """The engine this decoder keeps installed: other measurements between its passes (the server's
        teacher-forced scoring) set their own pass on it (``tuco.measures.scoring.score_ids(engine=...)``)."""
        if self._engine is None:
            raise ConfigError("the decoder is not open: use it as a context manager")
        return self._engine  # type: ignore[no-any-return]

    # ---- the two kinds of forward pass ----

    def add(self, rows: list[Row]) -> None:
        """Prefill ``rows`` in one forward pass (each at its own alpha), pick their first tokens, and put them
        in the running batch. TuCo of each prompt's last token is the row's ``prompt_tuco``."""
        self._prune()
        if not rows:
            return
        if not self.continuous and self.rows:
            raise ConfigError("a batch decoder (continuous=False) takes its rows in one add()")
        for row in rows:
            if not row.sampling.greedy and row.generator is None:
                row.generator = generator(row.seed, self.model.device)
        b = pad([r.ids for r in rows], self.pad_id, self.model.device)
        every_position = any(r.prompt_logprobs for r in rows)
        rec = self._pass(rows)
        out = self.model.tuned(**b.model_inputs(), use_cache=self.use_cache, logits_to_keep=0 if every_position else 1)
        (record,) = rec.records
        tu = self._tuco(record)
        logits = out.logits.float()  # [B, T or 1, V]
        prompt_tok = metrics.tuco(record.sum_ptc, record.sum_ftc_steered).cpu() if self.per_token else None  # [B, T]
        shares = self._shares(record)
        for i, row in enumerate(rows):
            row.prompt_tuco = tu[i]
            row.prompt_layer_ptc_l1 = record.layer_ptc_l1[i].tolist()
            row.prompt_layer_ftc_l1 = record.layer_ftc_l1[i].tolist()
            if prompt_tok is not None:
                row.prompt_token_tuco = prompt_tok[i][b.attention_mask[i].bool().cpu()].tolist()
            if shares is not None:
                row.stage_share, row.token_stage_share = shares[i], []
            if row.prompt_logprobs:
                self._prompt_logprobs(row, logits[i, b.width - len(row.ids) :])
            if row.max_new_tokens == 0:
                row.finish_reason = "length"
            else:
                layers = (row.prompt_layer_ptc_l1, row.prompt_layer_ftc_l1)
                self._take(row, logits[i, -1], tu[i], shares[i] if shares is not None else None, layers)
        self._merge(_returned_cache(out) if self.use_cache else None, b.attention_mask, rows)

    def step(self) -> list[Row]:
        """One decoding step: every running row is fed its last token (one forward pass, each row at its own
        alpha) and picks its next one. Returns the rows that got a token."""
        self._prune()
        live = [r for r in self.rows if not r.finished]
        if not live or self._mask is None:
            return []
        rows, mask = self.rows, self._mask
        device = mask.device
        last = [r.tokens[-1] if not r.finished else self.pad_id for r in rows]  # a finished row of a batch: fed padding
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        rec = self._pass(rows)
        if self.use_cache:
            inputs = torch.tensor([[t] for t in last], device=device)
            positions = (mask.cumsum(-1)[:, -1:] - 1).clamp(min=0)
            out = self.model.tuned(
                input_ids=inputs,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_arg: self._cache},
            )
        else:  # the whole sequences again, no cache
            self._fed = torch.cat([self._fed, torch.tensor([[t] for t in last], device=device)], dim=1)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model.tuned(input_ids=self._fed, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=1)
        self._mask = mask
        (record,) = rec.records
        tu = self._tuco(record)
        shares = self._shares(record)
        logits = out.logits[:, -1].float()
        norms = (record.layer_ptc_l1.tolist(), record.layer_ftc_l1.tolist()) if any(r.layer_norms for r in rows) else None
        got = []
        for i, row in enumerate(rows):
            if not row.finished:
                layers = (norms[0][i], norms[1][i]) if norms is not None else None
                self._take(row, logits[i], tu[i], shares[i] if shares is not None else None, layers)
                got.append(row)
        return got

    def run(self) -> None:
        """Step until every row has finished."""
        while any(not r.finished for r in self.rows):
            self.step()

    def finish(self, row: Row, reason: str) -> None:
        """Mark ``row`` finished (``reason``: "stop", "cancelled", ...); it leaves a continuous batch before the
        next pass."""
        if row.finish_reason is None:
            row.finish_reason = reason

    @property
    def width(self) -> int:
        """Positions in the running cache (padding included): what the next step attends over."""
        return 0 if self._mask is None else int(self._mask.shape[1])

    # ---- one pass's alphas, recorder and readings ----

    def _pass(self, rows: list[Row]) -> Recorder:
        rec = Recorder(self.model.n_layers, per_token=self.per_token)
        alpha = Alpha(rows=tuple(r.alpha for r in rows)) if len(rows) > 1 else rows[0].alpha
        self._engine.set_pass(alpha=alpha, recorder=rec)
        return rec

    def _last(self, v: torch.Tensor) -> torch.Tensor:
        return v[..., -1, :] if self.per_token else v

    def _tuco(self, record: ForwardRecord) -> list[float]:
        values: list[float] = metrics.tuco(self._last(record.sum_ptc), self._last(record.sum_ftc_steered)).tolist()
        return values

    def _shares(self, record: ForwardRecord) -> list[list[float]] | None:
        """Each row's stages' shares at the position read (chains only)."""
        if not self._chain and record.sums.shape[0] <= 2:
            return None
        shares: list[list[float]] = metrics.stage_shares(self._last(record.sums)).transpose(0, 1).tolist()
        return shares

    # ---- picking tokens ----

    def _take(
        self,
        row: Row,
        logits: torch.Tensor,
        tuco: float,
        shares: list[float] | None,
        layers: tuple[list[float] | None, list[float] | None] | None = None,
    ) -> None:
        """Append the token picked from ``logits`` [V] (and its logprobs), and TuCo (and, when the row asks,
        the per-layer norms ``layers``) of the position that produced it."""
        token = pick(logits, row.sampling, row.generator)
        row.tokens.append(token)
        row.token_tuco.append(tuco)
        if row.layer_norms and layers is not None and layers[0] is not None and layers[1] is not None:
            row.token_layer_ptc_l1.append(layers[0])
            row.token_layer_ftc_l1.append(layers[1])
        if shares is not None and row.token_stage_share is not None:
            row.token_stage_share.append(shares)
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

    def _caches(self, cache: Cache) -> list[Cache]:
        """The running model's cache and the earlier stages' that follow it."""
        return [cache, *self._engine.stage_caches(cache)]

    def _merge(self, cache: Cache | None, mask: torch.Tensor, rows: list[Row]) -> None:
        if self._mask is None:
            self._cache, self._mask, self.rows = cache, mask, list(rows)
            if not self.use_cache:
                self._fed = pad([r.ids for r in rows], self.pad_id, self.model.device).input_ids
            return
        width = max(self.width, int(mask.shape[1]))
        if cache is None:  # internal invariant: only a batch decoder without a cache merges nothing, and it adds once
            raise RuntimeError("a second group was added to a decoder without a KV cache")
        for running, new in zip(self._caches(self._cache), self._caches(cache), strict=True):
            merge_cache_layers(running, new)
        self._mask = torch.cat([_left_pad(self._mask, width, 1), _left_pad(mask, width, 1)])
        self.rows = self.rows + list(rows)

    def _prune(self) -> None:
        """Continuous batches: drop finished rows from the batch and every cache; cut the left padding no row
        needs any more. A batch decoder keeps its rows (the shapes of ``generate``) until all have finished."""
        if not self.continuous:
            if self.rows and all(r.finished for r in self.rows):
                self.rows, self._cache, self._mask = [], None, None
            return
        keep = [i for i, r in enumerate(self.rows) if not r.finished]
        if len(keep) == len(self.rows):
            return
        if not keep or self._mask is None:
            self.rows, self._cache, self._mask = [], None, None
            return
        index = torch.tensor(keep, device=self._mask.device)
        mask = self._mask[index]
        cut = int(mask.any(0).long().argmax())  # leading positions that are padding in every kept row
        for cache in self._caches(self._cache):
            select_cache_layers(cache, index, cut)
        self._mask = mask[:, cut:]
        self.rows = [self.rows[i] for i in keep]


def _cache_argument(model: torch.nn.Module) -> str:
    """The forward keyword of the KV cache: ``cache`` (transformers >= 5.x) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(unwrap_peft(model).forward).parameters else "past_key_values"


def _returned_cache(out: ModelOutput) -> Cache:
    cache = getattr(out, "cache", None)
    found: Cache = cache if cache is not None else out.past_key_values
    return found


def _top(logp: torch.Tensor, k: int) -> dict[int, float]:
    """The ``k`` most likely tokens with their logprobs (empty for k = 0)."""
    if k <= 0:
        return {}
    values, ids = logp.topk(k)
    return {int(i): float(v) for i, v in zip(ids, values)}


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``t`` left-padded with zeros to ``width`` along ``dim``."""
    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


__all__ = ["Decoder", "Row", "cache_layers"]
