"""Per-prompt TuCo scoring: batches of prompts through the tuned model under Algorithm 1.

One forward pass per batch (each layer runs every stage's block; the earlier stages at the last token
only where the fast path applies), left padding, the last real token read from the attention mask.
Returns one ``Score`` per prompt. Works on a ``ModelPair`` and on a ``ModelChain`` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tuco.engine import metrics
from tuco.engine.alpha import Alpha, AlphaLike
from tuco.engine.decomposition import Engine, ForwardRecord, Recorder
from tuco.measures.batching import Encoded, by_length, encode_all, in_batches, in_input_order, pad, run_backbone
from tuco.measures.prompts import Messages, Prompt

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable


@dataclass
class Score:
    """TuCo of one prompt at its last token, with the numbers it is made of.

    ``tuco``: the share of the last token's update that fine-tuning actually wrote,
    ||sum_l alpha_l FTC_l||_1 / (||S_PTC||_1 + ||sum_l alpha_l FTC_l||_1): the paper's TuCo at alpha = 1,
    0 at alpha = 0. ``tuco_unscaled``: the same with alpha_l left out (what fine-tuning WOULD add at the
    states this run visits); equal to ``tuco`` at alpha = 1. ``ptc_l1``/``ftc_l1``: ||S_PTC||_1 and the
    norm of fine-tuning's (scaled) sum; ``layer_ptc_l1``/``layer_ftc_l1``: ||PTC_l||_1 and ||FTC_l||_1
    (unscaled) at the last token. ``token_tuco`` (per-token mode): ``tuco`` at every prompt position.
    Chains add ``stage_share`` (K + 1 values summing to 1, stage 0 = pre-training), ``stage_l1``,
    ``layer_stage_l1`` ([stage][layer]) and, per token, ``token_stage`` (the stage with the largest share
    at each prompt position). A given response (a chat ending with the assistant's message, scored
    teacher-forced) adds ``response_ids``/``response_tokens``, ``response_token_tuco`` (``[i]``: TuCo at
    the position whose next-token distribution produces response token i, so ``[0]`` is ``tuco``; what
    ``tuco.generate`` reports as ``token_tuco`` for the same tokens) and ``tuco_response`` (their mean,
    ``Generation.mean_tuco``); ``tuco`` stays TuCo at the last prompt token.
    """

    tuco: float
    preco: float
    ptc_l1: float
    ftc_l1: float
    layer_ptc_l1: list[float]
    layer_ftc_l1: list[float]
    n_tokens: int
    tuco_unscaled: float | None = None
    token_tuco: list[float] | None = None
    tokens: list[str] | None = None
    stage_share: list[float] | None = None
    stage_l1: list[float] | None = None
    layer_stage_l1: list[list[float]] | None = None
    token_stage: list[int] | None = None
    response_ids: list[int] | None = None
    response_tokens: list[str] | None = None
    response_token_tuco: list[float] | None = None
    tuco_response: float | None = None


def scores_from_record(
    rec: ForwardRecord,
    batch_lengths: Sequence[int],
    *,
    per_token: bool,
    last: torch.Tensor,
    mask: torch.Tensor,
    tokens: list[list[str]] | None = None,
    stages: bool = False,
) -> list[Score]:
    """One ``Score`` per row of a recorded forward pass (per-token records are read at ``last``)."""
    rows = torch.arange(len(batch_lengths), device=rec.sums.device)
    at_last = (lambda v: v[..., rows, last.to(v.device), :]) if per_token else (lambda v: v)
    s_ptc, s_ftc, s_steered = at_last(rec.sum_ptc), at_last(rec.sum_ftc), at_last(rec.sum_ftc_steered)
    ptc_l1, ftc_l1 = metrics.l1(s_ptc), metrics.l1(s_steered)
    tu = metrics.tuco_from_norms(ptc_l1, ftc_l1)
    pre = metrics.preco_from_norms(ptc_l1, ftc_l1)
    unscaled = tu if rec.steered is None else metrics.tuco(s_ptc, s_ftc)
    token_tuco = metrics.tuco(rec.sum_ptc, rec.sum_ftc_steered) if per_token else None  # [B, T]
    chain = stages or rec.sums.shape[0] > 2  # a chain reports per-stage shares, even with one stage
    shares = metrics.stage_shares(at_last(rec.sums)) if chain else None
    out = []
    for b, n in enumerate(batch_lengths):
        score = Score(
            tuco=float(tu[b]),
            preco=float(pre[b]),
            ptc_l1=float(ptc_l1[b]),
            ftc_l1=float(ftc_l1[b]),
            layer_ptc_l1=rec.layer_ptc_l1[b].tolist(),
            layer_ftc_l1=rec.layer_ftc_l1[b].tolist(),
            n_tokens=n,
            tuco_unscaled=float(unscaled[b]),
        )
        if token_tuco is not None:
            score.token_tuco = token_tuco[b][mask[b].bool().to(token_tuco.device)].tolist()
            score.tokens = tokens[b] if tokens is not None else None
        if shares is not None:
            score.stage_share = shares[:, b].tolist()
            if per_token:
                dominant = metrics.l1(rec.sums[:, b]).argmax(0)  # [T]: the stage writing most at each position
                score.token_stage = dominant[mask[b].bool().to(dominant.device)].tolist()
            score.stage_l1 = metrics.l1(at_last(rec.sums))[:, b].tolist()
            score.layer_stage_l1 = rec.layer_l1[:, b].tolist()
        out.append(score)
    return out


@torch.inference_mode()
def score_ids(
    model: Decomposable,
    batch: Sequence[Sequence[int]],
    *,
    alpha: AlphaLike = 1.0,
    per_token: bool = False,
    full_path: bool = False,
    responses: Sequence[Sequence[int] | None] | None = None,
    engine: Engine | None = None,
) -> list[Score]:
    """Score one batch of already tokenised prompts (one forward pass); ``model`` is a pair or chain.

    ``responses[i]`` (optional): the token ids of a given response to prompt i, scored teacher-forced in
    the same pass (the prompt, then every response token but the last, is fed; per-token TuCo is read at
    the positions that produce the response's tokens). ``engine``: one already installed on ``model`` (a
    decode loop's, ``Decoder.engine``): this pass runs inside it with its own alpha and recorder instead of
    installing another (``full_path`` is then the engine's).
    """
    given = [list(r) if r else [] for r in responses] if responses is not None else [[] for _ in batch]
    fed = [list(ids) + r[:-1] for ids, r in zip(batch, given)]
    b = pad(fed, model.tokenizer.pad_token_id, model.device)
    # [B] the last prompt token of each row (left padding: the row starts at width - len(fed))
    last = torch.tensor([b.width - len(f) + len(ids) - 1 for f, ids in zip(fed, batch)], device=b.last.device)
    every = per_token or any(given)  # a response needs TuCo at every position it covers
    recorder = Recorder(model.n_layers, per_token=every, last_index=last, last_index_len=b.width)
    if engine is None:
        with model.engine(alpha=alpha, recorder=recorder, full_path=full_path):
            run_backbone(model, b)
    else:  # inside an engine that is already installed: only this pass's alpha and recorder are set
        engine.set_pass(alpha=alpha, recorder=recorder)
        run_backbone(model, b)
    (rec,) = recorder.records
    tok = model.tokenizer
    tokens = [tok.convert_ids_to_tokens(list(ids)) for ids in batch] if every else None
    scores = scores_from_record(
        rec, [len(ids) for ids in batch], per_token=every, last=last, mask=b.attention_mask, tokens=tokens, stages=model.reports_stages
    )
    for s, ids, r in zip(scores, batch, given):
        n = len(ids)
        if r and s.token_tuco is not None:  # token_tuco covers every fed position: the prompt's, then the response's
            s.response_ids, s.response_tokens = r, tok.convert_ids_to_tokens(r)
            s.response_token_tuco = s.token_tuco[n - 1 : n - 1 + len(r)]
            s.tuco_response = sum(s.response_token_tuco) / len(s.response_token_tuco)
        if per_token:
            s.token_tuco = s.token_tuco[:n] if s.token_tuco is not None else None
            s.token_stage = s.token_stage[:n] if s.token_stage is not None else None
        else:
            s.token_tuco = s.tokens = s.token_stage = None
    return scores


def iter_scores(
    model: Decomposable,
    batch: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    alpha: AlphaLike = 1.0,
    per_token: bool = False,
    full_path: bool = False,
    on_backoff: Callable[[int], None] | None = None,
    responses: Sequence[Sequence[int] | None] | None = None,
) -> Iterator[tuple[list[int], list[Score]]]:
    """Score token id lists in length-bucketed batches; yields (indices into ``batch``, their scores).

    Longest first, so a batch too large for memory shows up at once; halved and retried on out-of-memory.
    ``alpha`` may be a ``RowAlphas`` with one alpha per token id list; ``responses``: ``score_ids``'s.
    """
    a = Alpha.of(alpha)
    a.check_rows(len(batch))
    given = list(responses) if responses is not None else [None] * len(batch)
    lengths = [len(ids) + max(0, len(r or []) - 1) for ids, r in zip(batch, given)]
    yield from in_batches(
        len(batch),
        lambda idx: score_ids(
            model,
            [batch[i] for i in idx],
            alpha=a.subset(idx),
            per_token=per_token,
            full_path=full_path,
            responses=[given[i] for i in idx],
        ),
        batch_size=batch_size,
        order=by_length(lengths),
        on_backoff=on_backoff,
        describe=lambda idx: f"a prompt of {lengths[idx[0]]} tokens",
    )


def score_encoded(model: Decomposable, encoded: Sequence[Encoded], **kwargs: Any) -> list[Score]:
    """Scores of already encoded prompts (their given responses teacher-forced), in input order."""
    pieces = iter_scores(model, [e.ids for e in encoded], responses=[e.response_ids for e in encoded], **kwargs)
    return in_input_order(len(encoded), pieces)


def score(
    pair: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    *,
    chat: bool | None = None,
    system: str | None = None,
    alpha: AlphaLike = 1.0,
    batch_size: int = 8,
    per_token: bool = False,
    full_path: bool = False,
    next_turn: bool = False,
) -> list[Score]:
    """TuCo of each prompt (paper definition: L1, last token fed to the model, sum over layers first).

    A chat whose last message is the assistant's is a prompt with a given response: it is scored
    teacher-forced (no generation), TuCo at the last prompt token plus ``response_token_tuco`` and
    ``tuco_response`` over the response's tokens (equal to ``tuco.generate``'s for the same tokens).

    Args:
        pair: the loaded model pair (or chain).
        prompts: strings, chats (lists of messages) or Prompt objects.
        chat: apply the tuned tokenizer's chat template (None: when it has one).
        system: system prompt placed before the user message when the template is used.
        alpha: FTC scale (scalar or one per layer; a chain: one per stage); 1 measures the model itself.
            ``tuco.RowAlphas([...])``: one alpha per prompt (prompts batched together whatever their alphas).
        batch_size: prompts per forward pass (length-bucketed, left padded); halved on out-of-memory.
        per_token: also return TuCo at every prompt position (runs whole blocks).
        full_path: never take the fast path nor share LoRA base projections (whole pre-trained blocks
            everywhere, each computed on its own; same numbers).
        next_turn: score a chat ending with the assistant's message at the start of the NEXT assistant turn
            (the generation prompt appended after it) instead of scoring the response.
    """
    encoded = encode_all(pair, prompts, chat=chat, system=system, responses=not next_turn)
    return score_encoded(pair, encoded, batch_size=batch_size, alpha=alpha, per_token=per_token, full_path=full_path)
