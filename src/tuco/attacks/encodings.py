"""Built-in "languages" for conjugate prompting that need no translator: the same request written in
an encoding the pre-training text rarely shows (docs/method.md section 5.2; the paper used translations,
which users supply as files or from MultiJail).
"""

from __future__ import annotations

import base64
import codecs
from collections.abc import Callable

from tuco.errors import ConfigError

_LEET = str.maketrans(
    {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "A": "4", "E": "3", "I": "1", "O": "0", "S": "5", "T": "7"}
)


def leetspeak(text: str) -> str:
    """Letters replaced by look-alike digits: "steal" -> "5734l"."""
    return text.translate(_LEET)


def rot13(text: str) -> str:
    """Caesar cipher by 13 letters."""
    return codecs.encode(text, "rot13")


def reverse_words(text: str) -> str:
    """Each word spelled backwards, word order kept."""
    return " ".join(w[::-1] for w in text.split(" "))


def spaced(text: str) -> str:
    """Letters separated by spaces (words by ' / ')."""
    return " / ".join(" ".join(w) for w in text.split())


def b64(text: str) -> str:
    """Base64 of the UTF-8 text."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda t: t,
    "leetspeak": leetspeak,
    "rot13": rot13,
    "reversed": reverse_words,
    "spaced": spaced,
    "base64": b64,
}


def encode_as(name: str, text: str) -> str:
    """``text`` in the built-in encoding ``name``."""
    if name not in ENCODINGS:
        raise ConfigError(f"unknown encoding {name!r}: choose from {', '.join(ENCODINGS)}")
    return ENCODINGS[name](text)
