"""Tokens as readable text, and a row's prompt and response as token views (each token with its TuCo).
Pure Python.

Tokenizers store tokens in their own alphabets: byte-level BPE (GPT-2, Llama 3, Qwen, the demo pair) maps
each byte to a printable character (space -> ``Ġ``, newline -> ``Ċ``, the bytes of ``’`` -> ``âĢĻ``);
SentencePiece writes a space as ``▁`` and unknown characters as byte tokens ``<0xE2>``. A view decodes a
whole sequence at once, so a character whose bytes span two tokens shows in the token that completes it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from tuco.report.groups import alpha_of
from tuco.report.text import clip, fmt, number
from tuco.runs.schema import HEADLINE, headline, kind_of

PLAIN_PROMPT = 600  # characters of a prompt without per-token data shown beside a response
_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@cache
def byte_of() -> dict[str, int]:
    """The inverse of GPT-2's ``bytes_to_unicode``: printable character -> the byte it stands for."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + shifted)
            shifted += 1
    return {c: b for b, c in chars.items()}


def _decode(chunks: Sequence[bytes]) -> list[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = [decoder.decode(c) for c in chunks]
    if out:
        out[-1] += decoder.decode(b"", final=True)
    return out


def token_texts(tokens: Sequence[str]) -> list[str]:
    """The readable text of each token of one sequence (see the module's docstring); a token that only
    starts a character shows as "". Tokens of an unknown alphabet are shown as they are."""
    toks = [str(t) for t in tokens]
    if any("▁" in t for t in toks):  # SentencePiece
        return _decode([bytes([int(m.group(1), 16)]) if (m := _SP_BYTE.fullmatch(t)) else t.replace("▁", " ").encode() for t in toks])
    table = byte_of()
    # byte-level tokens map back to bytes; others (added tokens, unknown alphabets) stay as they are
    chunks = [bytes(table[c] for c in t) if all(c in table for c in t) else t.encode() for t in toks]
    if not any(ord(c) >= 256 and c in table for t in toks for c in t):  # no space/newline markers (Ġ, Ċ)
        try:  # byte-level only if the bytes are text: "café" from another alphabet must stay "café"
            b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError:
            return toks
    return _decode(chunks)


def display_token(token: str) -> str:
    """The readable text of one token on its own."""
    return token_texts([token])[0]


@dataclass(frozen=True)
class Token:
    """One token's text and its TuCo (None: no value)."""

    text: str
    value: float | None


@dataclass(frozen=True)
class Segment:
    """A labelled part of a view: coloured ``tokens``, or plain ``text`` where there are none."""

    label: str
    tokens: list[Token] | None = None
    text: str = ""


@dataclass(frozen=True)
class TokenView:
    """A row shown token by token: its id, what it was measured under, its segments."""

    id: str
    meta: list[tuple[str, str]]
    segments: list[Segment]


def tokens_of(tokens: object, values: object) -> list[Token] | None:
    """Tokens with their values (a value missing or not a number: None), or None without tokens."""
    if not isinstance(tokens, list) or not tokens:
        return None
    vals = values if isinstance(values, list) else []
    return [Token(text, number(vals[k]) if k < len(vals) else None) for k, text in enumerate(token_texts(tokens))]


def _segments(row: dict[str, Any]) -> list[Segment]:
    kind = kind_of(row)
    if kind == "generation":
        prompt = tokens_of(row.get("prompt_tokens"), row.get("prompt_token_tuco"))
        first = Segment("prompt", prompt) if prompt else Segment("prompt", text=clip(row.get("prompt"), PLAIN_PROMPT, keep_end=True))
        return [first, Segment("response", tokens_of(row.get("tokens"), row.get("token_tuco")))]
    if kind == "score":
        out = [Segment("prompt", tokens_of(row.get("tokens"), row.get("token_tuco")))]
        response = tokens_of(row.get("response_tokens"), row.get("response_token_tuco"))
        return out + ([Segment("response", response)] if response else [])
    return []


def token_view(row: dict[str, Any], group: str | None) -> TokenView | None:
    """A row's prompt and response token by token (kinds: generation, score), or None without per-token data."""
    segments = [s for s in _segments(row) if s.tokens or s.text]
    if not any(s.tokens for s in segments):
        return None
    meta = [(group, fmt(row[group]))] if group and group != "alpha" and row.get(group) is not None else []
    meta.append(("alpha", alpha_of(row)))
    if (value := headline(row)) is not None:
        meta.append((HEADLINE, fmt(value)))
    meta += [(k, fmt(row[k])) for k in ("mean_tuco", "refused") if row.get(k) is not None]
    return TokenView(str(row.get("id")), meta, segments)
