"""FTC-alpha scaling (Definition 5.1): alpha as ONE type, parsed once, resolved once per model shape.

    x_{l+1} = x_l + PTC_l + sum_k alpha_k,l * FTC_k,l

One syntax for alpha as text, everywhere (CLI, experiment grids, lm-eval model args, the server): a number
(``1.1``), one number per layer separated by ``:`` (``1:1:0.5``), and for a chain of checkpoints one entry
per fine-tuning stage separated by ``/`` (``1/0.5``, ``1/1:1:0``). In Python the same values are accepted
as numbers, sequences, ``StageAlphas`` and ``RowAlphas`` (one alpha per row of a batch).

``Alpha.of(anything)`` parses (and validates what can be validated without a model) once; the result is
passed down whole. ``Alpha.resolve(n_stages, n_layers)`` checks it against a model's shape and gives what
the engine runs with (one value per stage and layer, or a [K, L, B] tensor when rows differ), cached on
the value, so a decode loop that re-forms its batch every step never parses or validates again. Torch is
imported only to build a per-row tensor (the CLI reads alphas before any model loads).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from tuco.errors import ConfigError

if TYPE_CHECKING:
    import torch


class StageAlphas(tuple):
    """Alpha per fine-tuning stage of a chain (``1/0.5``): each entry a number or one per layer."""


class RowAlphas(tuple):
    """One alpha per row of a batch (``tuco.score``/``tuco.generate``: one per prompt), each entry any alpha
    (a number, one per layer, one per stage): ``RowAlphas([0, 1, 1.25])``. Rows of one forward pass are mixed
    with their own alpha; a row's numbers equal those of the same row run alone at its alpha."""


AlphaValue = float | tuple[float, ...] | StageAlphas
Alphas = tuple[tuple[float, ...], ...]  # [stage k = 1..K][layer l]
# What the engine runs with: one ``Alphas`` for every row, or a float32 tensor [K, L, B] (one alpha per row).
EngineAlphas: TypeAlias = "Alphas | torch.Tensor"
# What a user may give wherever an alpha is taken.
AlphaLike: TypeAlias = "Alpha | float | int | str | Sequence[float] | Sequence[Sequence[float]] | StageAlphas | RowAlphas"

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


def _exact_text(x: float) -> str:
    """The shortest text that reads back as the same float (``1.0`` -> ``'1'``, ``1.0000001`` stays):
    alphas that differ never share a row key or a seed."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _value_text(value: object) -> str:
    """The text of a shared alpha value: ``1.0`` -> ``'1'``, ``(1, 0.5)`` -> ``'1:0.5'`` (per layer),
    ``StageAlphas((1, 0.5))`` or a nested sequence -> ``'1/0.5'`` (per stage)."""
    if isinstance(value, (int, float)):
        return _exact_text(value)
    parts = list(value)  # type: ignore[call-overload]
    if not isinstance(value, StageAlphas) and parts and all(isinstance(a, (int, float)) for a in parts):
        return ":".join(_exact_text(a) for a in parts)
    return "/".join(_value_text(a) for a in parts)


def _check_values(value: object) -> AlphaValue:
    """A shared alpha given in Python, its numbers checked (finite, >= 0) and frozen into tuples."""
    if isinstance(value, bool):
        raise ConfigError(f"alpha must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return _number(repr(float(value)), repr(value))
    if isinstance(value, str):
        return parse_alpha(value)
    if not isinstance(value, Iterable):
        raise ConfigError(f"alpha must be a number, one per layer or one per stage, got {value!r}")
    entries = list(value)
    if not entries:
        raise ConfigError("alpha is an empty sequence; give a number, one per layer or one per stage")
    nested = isinstance(value, StageAlphas) or any(not isinstance(e, (int, float)) for e in entries)
    if not nested:
        return tuple(_number(repr(float(e)), repr(value)) for e in entries)
    stages = [_check_values(e) for e in entries]
    if any(isinstance(s, StageAlphas) for s in stages):
        raise ConfigError(f"alpha {value!r}: a stage's entry is itself per stage; give each stage a number or one per layer")
    return StageAlphas(stages)


@dataclass(frozen=True, eq=False)
class Alpha:
    """An alpha, parsed once: one value shared by every row (``shared``: a number, one per layer, or a
    ``StageAlphas``), or one ``Alpha`` per row (``rows``). Equal alphas have equal ``text``."""

    shared: AlphaValue | None = None
    rows: tuple[Alpha, ...] | None = None
    _resolved: dict[tuple[int, int], EngineAlphas] = field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def of(value: AlphaLike) -> Alpha:
        """The ``Alpha`` of any accepted form (an ``Alpha`` is returned as it is)."""
        if isinstance(value, Alpha):
            return value
        if isinstance(value, RowAlphas):
            if not value:
                raise ConfigError("RowAlphas is empty; give one alpha per row of the batch")
            if any(isinstance(a, RowAlphas) or (isinstance(a, Alpha) and a.per_row) for a in value):
                raise ConfigError("a RowAlphas entry is itself a RowAlphas; give each row one alpha (a number, per layer or per stage)")
            return Alpha(rows=tuple(Alpha.of(a) for a in value))
        return Alpha(shared=_check_values(value))

    @staticmethod
    def per_rows(alphas: Sequence[AlphaLike]) -> Alpha:
        """One alpha per row (each any accepted form)."""
        return Alpha.of(RowAlphas(alphas))

    # ---- what it is ----

    @property
    def per_row(self) -> bool:
        """True when each row has its own alpha."""
        return self.rows is not None

    @property
    def text(self) -> str:
        """The written form (``1``, ``1:1:0.5``, ``1/0.5``): what row keys, seeds and manifests use. Per-row
        alphas have none (each row is labelled with its own)."""
        if self.rows is not None:
            raise ConfigError("a RowAlphas (one alpha per prompt) has no single text form; label each row with its own alpha")
        return _value_text(self.shared)

    @property
    def label(self) -> float | str:
        """As stored in result rows and manifests: a float, or the text (``1:1:0.5``, ``1/0.5``), which says
        unambiguously whether the values are per layer or per stage."""
        if isinstance(self.shared, (int, float)):
            return float(self.shared)
        return self.text

    @property
    def is_one(self) -> bool:
        """True for the plain fine-tuned model (every value 1, shared by every row)."""
        return self.rows is None and _all_one(self.shared)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Alpha):
            return NotImplemented
        if self.rows is not None or other.rows is not None:
            return self.rows == other.rows
        return self.text == other.text

    def __hash__(self) -> int:
        return hash(self.rows) if self.rows is not None else hash(self.text)

    def __repr__(self) -> str:
        return f"Alpha({', '.join(repr(r) for r in self.rows)})" if self.rows is not None else f"Alpha({self.text!r})"

    # ---- rows ----

    def row(self, i: int) -> Alpha:
        """The alpha of row ``i`` (a shared alpha is every row's)."""
        return self.rows[i] if self.rows is not None else self

    def subset(self, rows: Sequence[int]) -> Alpha:
        """The alpha of a batch made of ``rows`` (indices): per-row alphas are subset, a shared one stays."""
        return Alpha(rows=tuple(self.rows[i] for i in rows)) if self.rows is not None else self

    def check_rows(self, n: int) -> None:
        """Raise ConfigError when a per-row alpha does not give exactly one alpha per prompt (``n``)."""
        if self.rows is not None and len(self.rows) != n:
            raise ConfigError(f"RowAlphas gives {len(self.rows)} alphas for {n} prompts; give one alpha per prompt")

    # ---- against a model ----

    def resolve(self, n_stages: int, n_layers: int) -> EngineAlphas:
        """alpha_k,l for each of ``n_stages`` fine-tuning stages (k = 1..K) and ``n_layers`` layers, checked
        against that shape (ConfigError naming the mismatch): one ``Alphas`` shared by every row, or a float32
        tensor [K, L, B] when rows differ (rows that all agree give their shared ``Alphas``, so alpha 1 on every
        row keeps the plain model and its fast path). Cached per shape."""
        key = (n_stages, n_layers)
        got = self._resolved.get(key)
        if got is None:
            if self.rows is None:
                got = _uniform(self.shared, n_stages, n_layers)
            else:
                rows = [r.resolve(n_stages, n_layers) for r in self.rows]
                if all(r == rows[0] for r in rows):
                    got = rows[0]
                else:
                    import torch

                    got = torch.tensor(rows, dtype=torch.float32).permute(1, 2, 0).contiguous()  # [B, K, L] -> [K, L, B]
            self._resolved[key] = got
        return got

    def check(self, n_stages: int, n_layers: int) -> Alpha:
        """``self`` after checking it fits a model of this shape (ConfigError otherwise)."""
        self.resolve(n_stages, n_layers)
        return self


def _all_one(value: object) -> bool:
    if isinstance(value, (int, float)):
        return float(value) == 1.0
    return all(_all_one(v) for v in value)  # type: ignore[attr-defined]


def _uniform(alpha: object, n_stages: int, n_layers: int) -> Alphas:
    """One shared alpha as one value per stage and layer."""

    def layer_values(a: object, what: str) -> tuple[float, ...]:
        if isinstance(a, (int, float)):
            return (float(a),) * n_layers
        values = tuple(float(v) for v in a)  # type: ignore[attr-defined]
        if len(values) != n_layers:
            raise ConfigError(f"{what} has {len(values)} values but the model has {n_layers} layers; give one value or {n_layers}")
        return values

    if isinstance(alpha, (int, float)):
        return tuple(layer_values(alpha, "alpha") for _ in range(n_stages))
    entries = list(alpha)  # type: ignore[call-overload]
    per_stage = isinstance(alpha, StageAlphas)  # "1/0.5" on the command line
    nested = any(not isinstance(e, (int, float)) for e in entries)
    if n_stages == 1 and not nested and not per_stage:
        return (layer_values(entries, "alpha"),)
    if len(entries) != n_stages:
        stages = f"{n_stages} fine-tuning stage" + ("" if n_stages == 1 else "s")
        raise ConfigError(
            f"alpha has {len(entries)} entries but there {'is' if n_stages == 1 else 'are'} {stages}; give one value or one per stage"
        )
    return tuple(layer_values(a, f"alpha of stage {k + 1}") for k, a in enumerate(entries))


# ---- the written forms, for callers holding any accepted form ----


def alpha_text(alpha: AlphaLike) -> str:
    """The inverse of ``parse_alpha``: ``1.0`` -> ``'1'``, ``(1, 0.5)`` -> ``'1:0.5'``, ``StageAlphas((1, 0.5))``
    -> ``'1/0.5'``; text is returned as it is."""
    return alpha if isinstance(alpha, str) else Alpha.of(alpha).text


def alpha_label(alpha: AlphaLike) -> float | str:
    """``Alpha.label`` of any accepted form."""
    return Alpha.of(alpha).label


def check_distinct(alphas: Sequence[AlphaLike]) -> None:
    """Raise ConfigError when one alpha is given twice (its rows would share one key)."""
    texts = [alpha_text(a) for a in alphas]
    twice = sorted({t for t in texts if texts.count(t) > 1})
    if twice:
        raise ConfigError(f"alpha {', '.join(twice)} is given more than once; give each alpha once")


def normalize_alphas(alpha: AlphaLike, n_stages: int, n_layers: int) -> EngineAlphas:
    """``Alpha.of(alpha).resolve(n_stages, n_layers)``: what the engine runs with."""
    return Alpha.of(alpha).resolve(n_stages, n_layers)
