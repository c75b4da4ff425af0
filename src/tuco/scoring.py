"""Per-prompt TuCo scoring: batches of prompts through the tuned model under Algorithm 1.

One forward pass per batch (each layer runs its FT and PT block), left padding, the last real token
taken from the attention mask. Returns one ``Score`` per prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from tuco import metrics
from tuco.decomposition import Recorder
from tuco.errors import PromptError, TucoError
from tuco.layers import unwrap_peft
from tuco.pair import ModelPair
from tuco.prompts import Messages, Prompt, as_prompts, encode


@dataclass
class Score:
    """TuCo of one prompt at its last token, with the numbers it is made of.

    ``ptc_l1``/``ftc_l1`` are ||S_PTC||_1 and ||S_FTC||_1; ``layer_ptc_l1``/``layer_ftc_l1`` the L1 norms
    of each layer's PTC_l and FTC_l at the last token; ``token_tuco`` (per-token mode) TuCo at every
    prompt position, with ``tokens`` the matching token strings.
    """

    tuco: float
    preco: float
    ptc_l1: float
    ftc_l1: float
    layer_ptc_l1: list[float]
    layer_ftc_l1: list[float]
    n_tokens: int
    token_tuco: list[float] | None = None
    tokens: list[str] | None = None


def left_pad(batch: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists into (input_ids, attention_mask), both [B, T]."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids) :] = 1
    return input_ids.to(device), mask.to(device)


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token (what ``generate`` does for left padding)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """[B] index of the last real token of each row, read from the attention mask (any padding side)."""
    t = mask.shape[1]
    positions = torch.arange(t, device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(-1).values


def _backbone_forward(pair: ModelPair, input_ids: torch.Tensor, mask: torch.Tensor) -> None:
    """Run the tuned model's blocks on a batch; skips the LM head when the model exposes its backbone."""
    model = unwrap_peft(pair.tuned)
    backbone = getattr(model, "base_model", None)
    kwargs = dict(input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False)
    if backbone is not None and backbone is not model:
        backbone(**kwargs)
    else:
        pair.tuned(**kwargs)


@torch.inference_mode()
def score_ids(
    pair: ModelPair,
    batch: Sequence[Sequence[int]],
    *,
    alpha: float | Sequence[float] = 1.0,
    per_token: bool = False,
) -> list[Score]:
    """Score one batch of already tokenised prompts (one forward pass)."""
    input_ids, mask = left_pad(batch, pair.tokenizer.pad_token_id, pair.device)
    last = last_index(mask)
    recorder = Recorder(pair.n_layers, per_token=per_token, last_index=last, last_index_len=mask.shape[1])
    with pair.engine(alpha=alpha, recorder=recorder):
        _backbone_forward(pair, input_ids, mask)
    (rec,) = recorder.records
    rows = torch.arange(len(batch), device=rec.sum_ptc.device)
    s_ptc, s_ftc = (rec.sum_ptc, rec.sum_ftc) if not per_token else (rec.sum_ptc[rows, last], rec.sum_ftc[rows, last])
    ptc_l1, ftc_l1 = metrics.l1(s_ptc), metrics.l1(s_ftc)
    tu = metrics.tuco_from_norms(ptc_l1, ftc_l1)
    pre = metrics.preco_from_norms(ptc_l1, ftc_l1)
    token_tuco = metrics.tuco(rec.sum_ptc, rec.sum_ftc) if per_token else None  # [B, T]
    out = []
    for b, ids in enumerate(batch):
        n = len(ids)
        score = Score(
            tuco=float(tu[b]),
            preco=float(pre[b]),
            ptc_l1=float(ptc_l1[b]),
            ftc_l1=float(ftc_l1[b]),
            layer_ptc_l1=rec.layer_ptc_l1[b].tolist(),
            layer_ftc_l1=rec.layer_ftc_l1[b].tolist(),
            n_tokens=n,
        )
        if token_tuco is not None:
            real = mask[b].bool()
            score.token_tuco = token_tuco[b][real.to(token_tuco.device)].tolist()
            score.tokens = pair.tokenizer.convert_ids_to_tokens(list(ids))
        out.append(score)
    return out


def check_length(pair: ModelPair, ids: Sequence[int], prompt_id: str) -> None:
    """Raise PromptError when a prompt is longer than the tuned model's context."""
    limit = pair.max_length
    if limit is not None and len(ids) > limit:
        raise PromptError(f"prompt {prompt_id} has {len(ids)} tokens, more than the model's context of {limit}; shorten it")


def _is_oom(err: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(err, oom) or (isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def _free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def iter_scores(
    pair: ModelPair,
    batch: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    alpha: float | Sequence[float] = 1.0,
    per_token: bool = False,
    on_backoff: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[int], list[Score]]]:
    """Score token id lists in length-bucketed batches; yields (indices into ``batch``, their scores).

    Prompts are sorted by length (longest first, so a batch too large for memory shows up at once)
    and batched with their neighbours, which keeps padding low. On an out-of-memory error the batch
    size is halved and the same prompts retried (``on_backoff`` is told the new size); a single
    prompt that does not fit raises a TucoError.
    """
    order = sorted(range(len(batch)), key=lambda i: -len(batch[i]))
    size, pos = max(1, batch_size), 0
    while pos < len(order):
        idx = order[pos : pos + size]
        try:
            scores = score_ids(pair, [batch[i] for i in idx], alpha=alpha, per_token=per_token)
        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            if not _is_oom(err):
                raise
            _free_memory()
            if size == 1:
                raise TucoError(
                    f"a prompt of {len(batch[idx[0]])} tokens does not fit in memory even alone; use a smaller "
                    "--dtype, --device-map auto, or a larger device"
                ) from err
            size = max(1, size // 2)
            if on_backoff is not None:
                on_backoff(size)
            continue
        yield idx, scores
        pos += len(idx)


def score(
    pair: ModelPair,
    prompts: Sequence[str | Messages | Prompt],
    *,
    chat: bool | None = None,
    system: str | None = None,
    alpha: float | Sequence[float] = 1.0,
    batch_size: int = 8,
    per_token: bool = False,
) -> list[Score]:
    """TuCo of each prompt (paper definition: L1, last token fed to the model, sum over layers first).

    Args:
        pair: the loaded model pair.
        prompts: strings, chats (lists of messages) or Prompt objects.
        chat: apply the tuned tokenizer's chat template (None: when it has one).
        system: system prompt placed before the user message when the template is used.
        alpha: FTC scale (scalar or one per layer); 1 measures the fine-tuned model itself.
        batch_size: prompts per forward pass (length-bucketed, left padded; results do not depend
            on it); halved automatically on out-of-memory.
        per_token: also return TuCo at every prompt position.
    """
    items = as_prompts(prompts)
    encoded = [encode(pair.tokenizer, p, chat=chat, system=system) for p in items]
    for p, ids in zip(items, encoded):
        check_length(pair, ids, p.id)
    scores: list[Score | None] = [None] * len(encoded)
    for idx, batch_scores in iter_scores(pair, encoded, batch_size=batch_size, alpha=alpha, per_token=per_token):
        for i, s in zip(idx, batch_scores):
            scores[i] = s
    return scores  # type: ignore[return-value]
