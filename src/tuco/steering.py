"""FTC-alpha scaling (Definition 5.1): alpha as text and values, validated in one place, and steering as a
context manager that always restores the model.

    with tuco.steer(pair, alpha=1.1):
        out = pair.tuned.generate(...)      # any forward/generate of the tuned model is steered

One syntax for alpha as text, everywhere (CLI, experiment grids, lm-eval model args): a number
(``1.1``), one number per layer separated by ``:`` (``1:1:0.5``), and for a chain of checkpoints one
entry per fine-tuning stage separated by ``/`` (``1/0.5``, ``1/1:1:0``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tuco.errors import ConfigError

if TYPE_CHECKING:
    from tuco.model import Decomposable


class StageAlphas(tuple):
    """Alpha per fine-tuning stage of a chain (``1/0.5``): each entry a number or one per layer."""


class RowAlphas(tuple):
    """One alpha per row of a batch (``tuco.score``/``tuco.generate``: one per prompt), each entry any alpha
    (a number, one per layer, one per stage): ``RowAlphas([0, 1, 1.25])``. Rows of one forward pass are mixed
    with their own alpha; a row's numbers equal those of the same row run alone at its alpha."""


AlphaValue = float | tuple[float, ...] | StageAlphas

ALPHA_HELP = "a number (1 = the fine-tuned model, 0 = the pre-trained blocks), or one per layer as 1:1:0.5"


def _number(text: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise ConfigError(f"alpha {whole!r} is not a number; write {ALPHA_HELP} (chains: one entry per stage, 1/0.5)") from err
    if not (value >= 0) or math.isinf(value):
        raise ConfigError(f"alpha must be a finite number >= 0, got {whole!r}")
    return value


def _stage(text: str, whole: str) -> float | tuple[float, ...]:
    parts = text.split(":")
    if len(parts) == 1:
        return _number(parts[0], whole)
    return tuple(_number(p, whole) for p in parts)


def parse_alpha(text: str | float) -> AlphaValue:
    """``'1.1'`` -> 1.1; ``'1:1:0.5'`` -> one value per layer; ``'1/0.5'`` -> one entry per chain stage.

    Raises ConfigError naming the text on anything else (negative, infinite, not a number).
    """
    if isinstance(text, (int, float)):
        return _number(str(text), str(text))
    text = text.strip()
    if "/" in text:
        return StageAlphas(_stage(part.strip(), text) for part in text.split("/"))
    return _stage(text, text)


def row_alpha(alpha: Any, row: int) -> Any:
    """The alpha of one row (prompt): entry ``row`` of a ``RowAlphas``, otherwise ``alpha`` itself."""
    return alpha[row] if isinstance(alpha, RowAlphas) else alpha


def rows_of(alpha: Any, rows: Sequence[int]) -> Any:
    """The alpha of a batch made of ``rows`` (indices into the prompts): a ``RowAlphas`` is subset, any
    other alpha is shared by every row."""
    return RowAlphas(alpha[i] for i in rows) if isinstance(alpha, RowAlphas) else alpha


def check_rows(alpha: Any, n: int) -> None:
    """Raise ConfigError when a ``RowAlphas`` does not give exactly one alpha per prompt (``n``)."""
    if isinstance(alpha, RowAlphas) and len(alpha) != n:
        raise ConfigError(f"RowAlphas gives {len(alpha)} alphas for {n} prompts; give one alpha per prompt")


def alpha_label(alpha: Any) -> float | str:
    """Alpha as stored in result rows and manifests: a float, or its text (``1:1:0.5``, ``1/0.5``), which
    says unambiguously whether the values are per layer or per stage."""
    if isinstance(alpha, (int, float)):
        return float(alpha)
    return alpha_text(alpha)


def _exact_text(x: float) -> str:
    """The shortest text that reads back as the same float (``1.0`` -> ``'1'``, ``1.0000001`` stays):
    alphas that differ never share a row key or a seed."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def alpha_text(alpha: Any) -> str:
    """The inverse of ``parse_alpha``: ``1.0`` -> ``'1'``, ``(1, 0.5)`` -> ``'1:0.5'`` (per layer),
    ``StageAlphas((1, 0.5))`` or a nested list -> ``'1/0.5'`` (per stage); text is returned as it is."""
    if isinstance(alpha, str):
        return alpha
    if isinstance(alpha, (int, float)):
        return _exact_text(alpha)
    if isinstance(alpha, RowAlphas):
        raise ConfigError("a RowAlphas (one alpha per prompt) has no single text form; label each row with its own alpha")
    parts = list(alpha)
    if not isinstance(alpha, StageAlphas) and parts and all(isinstance(a, (int, float)) for a in parts):
        return ":".join(_exact_text(a) for a in parts)
    return "/".join(alpha_text(a) for a in parts)


def check_distinct(alphas: Sequence[Any]) -> None:
    """Raise ConfigError when one alpha is given twice (its rows would share one key)."""
    texts = [alpha_text(a) for a in alphas]
    twice = sorted({t for t in texts if texts.count(t) > 1})
    if twice:
        raise ConfigError(f"alpha {', '.join(twice)} is given more than once; give each alpha once")


def check_alpha(alpha: Any, model: Decomposable) -> None:
    """Raise ConfigError unless ``alpha`` fits ``model`` (its layers and, for a chain, its stages)."""
    from tuco.decomposition import normalize_alphas

    normalize_alphas(parse_alpha(alpha) if isinstance(alpha, str) else alpha, model.n_stages, model.n_layers)


@contextmanager
def steer(pair: Decomposable, alpha: Any) -> Iterator[Any]:
    """Scale the fine-tuning component by ``alpha`` (scalar, or one value per layer, each >= 0; a chain:
    one entry per stage).

    alpha = 1 is exactly the fine-tuned model; alpha = 0 the pre-trained blocks on the tuned
    embeddings and head. Beam search is not supported inside the context (the pre-trained blocks'
    cache is not reordered with the beams); use greedy or sampling.
    """
    with pair.engine(alpha=alpha) as engine:
        yield engine
