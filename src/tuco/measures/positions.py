"""Where in a prompt or a response a TuCo is read: the last prompt token (the paper's), the mean over the
request's own tokens (and over everything before it, e.g. many-shot examples), the first generated
token, the mean over the response. The experiments' ``--position`` names one of them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tuco.measures.prompts import Prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

POSITIONS = ("last", "request-mean", "first-generated", "response-mean")
POSITION_HELP = (
    "which TuCo: last (the prompt's last token: the paper's), request-mean (mean over the request's "
    "tokens), first-generated (at the first generated token), response-mean (mean over the response)"
)


def at_generated(token_tuco: Sequence[float], which: str) -> float | None:
    """TuCo at the generated tokens: ``token_tuco[i]`` is TuCo at the position that produced token i, so
    the first generated token's position is entry 1 ("first") and the response's positions are entries
    1..n-1 ("mean"). None when fewer than two tokens were generated."""
    rest = list(token_tuco[1:])
    if not rest:
        return None
    return rest[0] if which == "first" else sum(rest) / len(rest)


def request_split(
    tokenizer: PreTrainedTokenizerBase, prompt: Prompt, token_tuco: Sequence[float] | None, chat: bool
) -> tuple[float | None, float | None]:
    """(mean per-token TuCo over the request's own tokens, mean over every token before it).

    The request is the last user message's text (or the plain prompt), located in the rendered text
    through the tokenizer's character offsets; the chat template around it belongs to neither part.
    """
    from tuco.measures.prompts import render

    if not token_tuco:
        return None, None
    text = render(tokenizer, prompt, chat=chat)
    request = (
        (prompt.text or "")
        if prompt.messages is None
        else next((m["content"] for m in reversed(prompt.messages) if m["role"] == "user"), "")
    )
    start = text.rfind(request.strip()) if request.strip() else -1
    try:
        offsets = tokenizer(text, add_special_tokens=not chat, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, ValueError, TypeError, KeyError):
        return None, None
    if start < 0 or len(offsets) != len(token_tuco):
        return None, None
    end = start + len(request.strip())
    inside = [t for (a, b), t in zip(offsets, token_tuco) if b > a and b > start and a < end]
    before = [t for (a, b), t in zip(offsets, token_tuco) if b > a and b <= start]
    mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
    return mean(inside), mean(before)
