"""Text of a response as its tokens arrive: incremental detokenisation and stop strings.

``Detokenizer`` turns one token at a time into the text it adds, decoding a window of a few tokens per
step (vLLM's and TGI's prefix/read offsets: the window starts at the tokens before the last text handed
out, so a SentencePiece word's leading space or a byte-level character split over tokens comes out right),
so a response costs time linear in its length, not one decode of the whole text per token. The pieces
joined equal ``tokenizer.decode(ids, skip_special_tokens=True)`` (tested against it).

``TextStream`` holds text back while it could still become a stop string, and cuts before the first one:
the text sent equals the whole response's text cut at its first stop string (tested against it).

Both run on the model thread (the stop decision ends a row before its next pass); the tokenizer is
shared with the request parser's thread through ``lock`` (a fast tokenizer is not safe to use from two
threads at once). Nothing here is ever awaited.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

Lock = contextlib.AbstractContextManager[object, bool | None]  # a ``threading.Lock``, or ``contextlib.nullcontext()``
REPLACEMENT = "\ufffd"  # what decoding shows for a character whose bytes are not all there yet


class Decodes(Protocol):
    """What detokenisation needs of a tokenizer (any Hugging Face tokenizer)."""

    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class Detokenizer:
    """The text each new token adds (``add``), decoded incrementally; ``flush`` at the end gives what was
    held back (a character whose bytes never completed)."""

    def __init__(self, tokenizer: Decodes, lock: Lock | None = None) -> None:
        self.tokenizer = tokenizer
        self.lock: Lock = lock if lock is not None else contextlib.nullcontext()
        self.ids: list[int] = []
        self.prefix = 0  # the window starts here: tokens whose text was handed out already, for context
        self.read = 0  # tokens up to here have had their text handed out

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token: int) -> str:
        """Add a token; the text it completes ("" while a character is incomplete or it adds none)."""
        self.ids.append(token)
        with self.lock:
            before = self._decode(self.ids[self.prefix : self.read])
            now = self._decode(self.ids[self.prefix :])
        if len(now) <= len(before) or now.endswith(REPLACEMENT):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return now[len(before) :]

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character's replacement mark included)."""
        if self.read == len(self.ids):
            return ""
        with self.lock:
            before = self._decode(self.ids[self.prefix : self.read])
            now = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return now[len(before) :]


def overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``stop``."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


class TextStream:
    """One row's text: ``feed`` a token, get (the token's own text, the text now safe to send). Text that
    could still turn into a stop string is held back; at a stop string the text is cut before it and
    ``stopped`` is set. ``text`` is everything sent so far (after ``flush``: the whole response)."""

    def __init__(self, tokenizer: Decodes, stops: list[str], lock: Lock | None = None) -> None:
        self.detokenizer = Detokenizer(tokenizer, lock)
        self.stops = list(stops)
        self.sent: list[str] = []
        self.pieces: list[str] = []  # each token's own text, before any stop-string cut
        self.pending = ""  # text not sent yet: it may be the beginning of a stop string
        self.stopped = False

    @property
    def text(self) -> str:
        """The text sent so far."""
        return "".join(self.sent)

    def feed(self, token: int, *, last: bool = False) -> tuple[str, str]:
        """Add a token: (the text it added, before any stop-string cut; the text that became safe to send).
        ``last``: the row ends with it, so nothing is held back any more."""
        piece = self.detokenizer.add(token)
        if last:
            piece += self.detokenizer.flush()
        self.pieces.append(piece)
        return piece, self._push(piece, final=last)

    def _push(self, piece: str, *, final: bool) -> str:
        if self.stopped:
            return ""
        # A stop string that ends in the new piece starts inside ``pending`` (text sent was never the
        # beginning of one), so the search never looks at more than the held-back text and the piece.
        text = self.pending + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self.pending = True, ""
            return self._send(text[:cut])
        hold = 0 if final else max((overlap(text, s) for s in self.stops), default=0)
        self.pending = text[len(text) - hold :] if hold else ""
        return self._send(text[: len(text) - hold])

    def _send(self, text: str) -> str:
        if text:
            self.sent.append(text)
        return text
