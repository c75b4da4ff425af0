"""Values as the plain text a report shows (numbers to 4 decimals, yes/no, short lists, texts cut with an
ellipsis). Plain text only: the templates escape it."""

from __future__ import annotations

ELLIPSIS = "…"


def number(value: object) -> float | None:
    """A finite-or-not real number from a row value (bools and NaN are not numbers), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return float(value)
    return None


def fmt(value: object) -> str:
    """A cell's text: yes/no, integers as they are, reals to 4 decimals, lists shortened, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    n = number(value)
    if n is not None:
        return f"{n:.4f}"
    if isinstance(value, list):
        return ", ".join(fmt(x) for x in value[:6]) + (f" {ELLIPSIS}" if len(value) > 6 else "")
    return str(value)


def clip(text: object, limit: int, *, keep_end: bool = False) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis where it was cut (``keep_end``: keep its end,
    as for a long prompt whose last turn matters)."""
    s = "" if text is None else str(text)
    if len(s) <= limit:
        return s
    return ELLIPSIS + s[-(limit - 1) :] if keep_end else s[: limit - 1] + ELLIPSIS
