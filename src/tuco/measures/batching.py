"""Batches of prompts for the engine: the one place scoring, generation, choices and OutputCo share.

encode (with bad-row reporting) -> length check -> length-bucketed batches -> left pad -> positions ->
last real token read from the mask -> run the model, retrying with smaller batches on out-of-memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from tuco.errors import PromptError, TucoError
from tuco.measures.prompts import BadRow, Messages, Prompt, as_prompts, encode

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

T = TypeVar("T")


@dataclass
class Encoded:
    """A prompt with the token ids fed to the model; a given response (teacher-forced scoring) adds its
    text and token ids (``prompt`` is then the conversation before it)."""

    prompt: Prompt
    ids: list[int]
    response: str | None = None
    response_ids: list[int] | None = None

    @property
    def fed(self) -> list[int]:
        """The ids one forward pass reads: the prompt, then every response token but the last (the
        positions whose next-token distributions produce the response's tokens)."""
        return self.ids + self.response_ids[:-1] if self.response_ids else list(self.ids)


@dataclass
class Batch:
    """Token id lists padded into tensors on one device (left padding by default).

    ``input_ids``/``attention_mask``/``position_ids``: [B, T]; ``last``: [B] index of each row's last
    real token (read from the mask, whatever the padding side); ``lengths``: real tokens per row.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    last: torch.Tensor
    lengths: list[int]

    @property
    def width(self) -> int:
        """T, the padded length."""
        return int(self.input_ids.shape[1])

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of a forward pass over the whole batch."""
        return dict(input_ids=self.input_ids, attention_mask=self.attention_mask, position_ids=self.position_ids)


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token (what ``generate`` does for left padding)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """[B] index of the last real token of each row, read from the attention mask (any padding side)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(-1).values


def pad(batch: Sequence[Sequence[int]], pad_id: int, device: torch.device | str, *, side: str = "left") -> Batch:
    """Pad token id lists into a ``Batch`` (``side`` "left", what generation needs, or "right")."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        cols = slice(width - len(ids), width) if side == "left" else slice(0, len(ids))
        input_ids[row, cols] = torch.tensor(list(ids), dtype=torch.long)
        mask[row, cols] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    return Batch(input_ids, mask, position_ids(mask), last_index(mask), [len(ids) for ids in batch])


def check_length(model: Decomposable, ids: Sequence[int], prompt_id: str, extra: int = 0) -> None:
    """Raise PromptError when a prompt (plus ``extra`` tokens to generate) exceeds the model's context."""
    limit = model.max_length
    if limit is not None and len(ids) + extra > limit:
        more = f" plus {extra} new tokens" if extra else ""
        raise PromptError(
            f"prompt {prompt_id} has {len(ids)} tokens{more}, more than the model's context of {limit}; "
            "shorten it" + (" or lower --max-new-tokens" if extra else "")
        )


def encode_prompts(
    model: Decomposable, prompts: Sequence[Prompt], *, chat: bool | None, system: str | None, extra: int = 0, responses: bool = False
) -> tuple[list[Encoded], list[BadRow]]:
    """Tokenise every prompt for ``model`` (a pair or chain); an empty, rejected or too long prompt becomes
    a bad row naming its id, and the others go on. ``responses``: a chat whose last message is the
    assistant's is split into the prompt before it and that response's token ids (``prompts.encode_response``)."""
    from tuco.measures.prompts import encode_response, split_response
    from tuco.models.decomposable import eos_ids

    eos = eos_ids(model) if responses else set()
    good, bad = [], []
    for p in prompts:
        try:
            head, response = split_response(p) if responses else (p, None)
            if response is not None and chat is False:
                raise PromptError(f"prompt {p.id} ends with the assistant's response, which needs the chat template; drop --no-chat")
            ids = encode(model.tokenizer, head, chat=chat, system=system)
            if response is None:
                check_length(model, ids, p.id, extra)
                good.append(Encoded(p, ids))
                continue
            rids = encode_response(model.tokenizer, head, response, system=system, eos=eos)
            check_length(model, ids + rids, p.id)
            good.append(Encoded(head, ids, response, rids))
        except PromptError as err:
            text = str(err)
            bad.append(BadRow(-1, text if text.startswith("prompt") else f"prompt {p.id}: {text}"))
    return good, bad


def encode_all(
    model: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    *,
    chat: bool | None = None,
    system: str | None = None,
    extra: int = 0,
    responses: bool = False,
) -> list[Encoded]:
    """Tokenise prompts for a library call: the first bad prompt raises a PromptError naming it."""
    good, bad = encode_prompts(model, as_prompts(prompts), chat=chat, system=system, extra=extra, responses=responses)
    if bad:
        raise PromptError(bad[0].reason)
    return good


def by_length(lengths: Sequence[int]) -> list[int]:
    """Indices, longest first (a batch too large for memory shows up at once; neighbours pad little).
    Ties keep input order, so the batches formed do not depend on anything but the lengths."""
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """The batches of a run, fixed by the prompts' lengths and the batch size alone (``by_length`` cut into
    ``batch_size`` slices). Resumed and data-parallel runs form the very same batches (so even bfloat16
    rows, which depend on the batch a prompt shares, equal an uninterrupted single-process run's)."""
    order, size = by_length(lengths), max(1, batch_size)
    return [order[i : i + size] for i in range(0, len(order), size)]


def in_input_order(n: int, pieces: Iterable[tuple[Sequence[int], Sequence[T]]]) -> list[T]:
    """Results computed in batches of indices (``(indices, results)`` pairs) back in input order 0..n-1."""
    out: list[T | None] = [None] * n
    for idx, got in pieces:
        for i, v in zip(idx, got):
            out[i] = v
    missing = [i for i, v in enumerate(out) if v is None]
    if missing:  # internal invariant: every index was computed once
        raise RuntimeError(f"no result for items {missing[:5]}")
    return out  # type: ignore[return-value]


def is_oom(err: BaseException) -> bool:
    """True for an out-of-memory error of any device."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(err, oom) or (isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def in_batches(
    n: int,
    run: Callable[[list[int]], T],
    *,
    batch_size: int,
    order: Sequence[int] | None = None,
    on_backoff: Callable[[int], None] | None = None,
    describe: Callable[[list[int]], str] = lambda idx: f"{len(idx)} prompts",
) -> Iterator[tuple[list[int], T]]:
    """Call ``run`` on consecutive slices of ``order`` (default 0..n-1), yielding (indices, result).

    On an out-of-memory error the batch size is halved and the same items retried (``on_backoff`` is
    told the new size); a single item that does not fit raises a TucoError.
    """
    order = list(range(n)) if order is None else list(order)
    size, pos = max(1, batch_size), 0
    while pos < len(order):
        idx = order[pos : pos + size]
        try:
            result = run(idx)
        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            if not is_oom(err):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if size == 1:
                raise TucoError(
                    f"{describe(idx)} does not fit in memory even alone; use a smaller --dtype, --device-map auto, or a larger device"
                ) from err
            size = max(1, size // 2)
            if on_backoff is not None:
                on_backoff(size)
            continue
        yield idx, result
        pos += len(idx)


def backbone(model: Decomposable) -> Any:
    """The running model's transformer without the LM head (the model itself when it has no such part)."""
    from tuco.engine.layers import unwrap_peft

    inner = unwrap_peft(model.tuned)
    body = getattr(inner, "base_model", None)
    return body if body is not None and body is not inner else model.tuned


def run_backbone(model: Decomposable, batch: Batch) -> None:
    """One forward pass of the running model over a batch (inside whatever engine is active), skipping
    the LM head when the model exposes its backbone: for measurements that need no logits."""
    backbone(model)(**batch.model_inputs(), use_cache=False)


def last_logits(model: Decomposable, batch: Batch) -> torch.Tensor:
    """Next-token logits at each row's last real token, [B, V] float32, from one forward pass of the
    running model (inside whatever engine is active). With left padding only the last position goes
    through the LM head (``logits_to_keep``)."""
    left = bool((batch.last == batch.width - 1).all())
    out: torch.Tensor = model.tuned(**batch.model_inputs(), use_cache=False, **({"logits_to_keep": 1} if left else {})).logits
    rows = torch.arange(out.shape[0], device=out.device)
    return (out[:, -1] if left else out[rows, batch.last.to(out.device)]).float()
