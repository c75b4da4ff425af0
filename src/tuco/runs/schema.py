"""The rows a run writes: one typed record per row kind, the fields every row shares, and how rows are
paired and grouped. Torch-free: the report, the experiments and ``tuco.load_run`` read rows through it.

Every row carries ``kind`` ("score", "generation" or "choice"), ``id`` (unique in its run), ``item``
(what the row measures: the same request under several conditions shares one ``item``, the one pairing
key), ``prompt`` and ``tuco`` (the row's headline TuCo: at the last prompt token unless the experiment's
``--position`` says otherwise). Experiments add ``condition`` (the condition a row was measured under:
``k=16``, ``clean``, ``alpha=0.5`` ...) and their own fields. A prompt's extra input fields are carried
through, renamed ``input_<name>`` where they clash with a schema field. The manifest records the schema
version (``tuco.runs.SCHEMA_VERSION``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

KINDS = ("score", "generation", "choice")
ITEM = "item"  # the one pairing key across conditions
CONDITION = "condition"  # what a row was measured under (experiments)
HEADLINE = "tuco"
# Where in a prompt/response a TuCo was read (experiments' ``--position``): the row field that holds it.
POSITION_FIELDS = {
    "last": "tuco_last",
    "request-mean": "tuco_request",
    "first-generated": "tuco_first_generated",
    "response-mean": "tuco_response",
}


@dataclass
class Row:
    """Fields every row has."""

    kind: ClassVar[str] = ""
    id: str
    item: str
    prompt: str
    tuco: float | None
    alpha: float | str = 1.0
    condition: str | None = None

    def to_dict(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The row as written: ``kind`` first, unset optional fields left out, ``extra`` (input fields,
        experiment fields) after the schema's (renamed ``input_<name>`` on a clash)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None or f.name == HEADLINE:
                out[f.name] = value
        for k, v in (extra or {}).items():
            out[f"input_{k}" if k in out or k in RESERVED else k] = v
        return out


@dataclass
class Measured:
    """Optional fields of score and generation rows: TuCo at every position kind, per-layer norms at the
    last prompt token, and the output-only baselines. Rows measured while a model trains
    (``tuco.TucoCallback``) add ``step`` (optimizer steps done: the checkpoint coordinate) and ``epoch``;
    their ``condition`` is the probe group and ``item`` the probe, the same at every step."""

    tuco_last: float | None = None
    tuco_request: float | None = None
    tuco_context: float | None = None
    layer_ptc_l1: list[float] | None = None
    layer_ftc_l1: list[float] | None = None
    output_co: float | None = None
    kl_ft_pt: float | None = None
    stage_share: list[float] | None = None
    step: int | None = None
    epoch: float | None = None


@dataclass
class ScoreRow(Measured, Row):
    """One prompt scored at its last token (``tuco score``, experiments' score measurements). With a
    given response (a chat ending with the assistant's message, teacher-forced), ``response`` is its text,
    ``response_ids``/``response_tokens`` its tokens, ``response_token_tuco[i]`` TuCo at the position that
    produces token i (``[0]`` = ``tuco``, the last prompt token's) and ``tuco_response`` their mean: what a
    generation row reports as ``token_tuco`` / ``mean_tuco`` for the same tokens."""

    kind: ClassVar[str] = "score"
    chat: bool | None = None
    tuco_unscaled: float | None = None
    preco: float | None = None
    ptc_l1: float | None = None
    ftc_l1: float | None = None
    n_tokens: int | None = None
    tokens: list[str] | None = None
    token_tuco: list[float] | None = None
    stage_l1: list[float] | None = None
    layer_stage_l1: list[list[float]] | None = None
    token_stage: list[int] | None = None
    response: str | None = None
    response_ids: list[int] | None = None
    response_tokens: list[str] | None = None
    response_token_tuco: list[float] | None = None
    tuco_response: float | None = None


@dataclass
class GenerationRow(Measured, Row):
    """One response generated under alpha, with TuCo at every generated token (``token_tuco[i]``: at the
    position that produced token i; ``token_tuco[0]`` is the prompt's)."""

    kind: ClassVar[str] = "generation"
    n_tokens: int | None = None
    prompt_tuco: float | None = None
    mean_tuco: float | None = None
    response: str | None = None
    token_ids: list[int] | None = None
    tokens: list[str] | None = None
    token_tuco: list[float] | None = None
    n_new_tokens: int | None = None
    finished: bool | None = None
    seed: int | None = None
    temperature: float | None = None
    prompt_tokens: list[str] | None = None
    prompt_token_tuco: list[float] | None = None
    token_stage_share: list[list[float]] | None = None
    tuco_first_generated: float | None = None
    tuco_response: float | None = None
    responses: list[str] | None = None
    refused: bool | None = None
    refusals: int | None = None
    non_refusals: int | None = None


@dataclass
class ChoiceRow(Row):
    """A next-token choice among answer options under alpha (log-probabilities of each option's first token)."""

    kind: ClassVar[str] = "choice"
    chosen: str | None = None
    logprobs: list[float] = field(default_factory=list)


ROW_TYPES: dict[str, type[Row]] = {"score": ScoreRow, "generation": GenerationRow, "choice": ChoiceRow}
RESERVED = frozenset({"kind", CONDITION} | {f.name for t in ROW_TYPES.values() for f in fields(t)})

# Columns a table of rows shows, in this order (those no row fills are hidden), then the texts.
NUMBERS = (
    "step",
    "epoch",
    "alpha",
    "tuco",
    "tuco_unscaled",
    "preco",
    "prompt_tuco",
    "mean_tuco",
    "tuco_last",
    "tuco_request",
    "tuco_first_generated",
    "tuco_response",
    "output_co",
    "kl_ft_pt",
    "refused",
    "chosen",
    "n_tokens",
    "n_new_tokens",
)
TEXTS = ("prompt", "response")


def kind_of(row: dict[str, Any]) -> str:
    """A row's kind: its ``kind`` field (schema 2), else read from the fields rows of schema 1 had."""
    kind = row.get("kind")
    if kind in ROW_TYPES:
        return str(kind)
    if "chosen" in row:
        return "choice"
    if "response" in row or "prompt_tuco" in row:
        return "generation"
    return "score"


def headline(row: dict[str, Any]) -> float | None:
    """The row's headline TuCo (``tuco``; schema-1 generation rows: ``prompt_tuco``), None when absent."""
    v = row.get(HEADLINE, row.get("prompt_tuco"))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


def item_of(row: dict[str, Any]) -> str:
    """The pairing key of a row (schema-1 rows without ``item``: the id)."""
    return str(row.get(ITEM, row.get("id")))


def group_field(rows: Sequence[dict[str, Any]]) -> str | None:
    """The field that splits rows into conditions: ``condition`` (experiments; schema 1: ``group``), else
    ``alpha`` when it varies, else None."""
    for key in (CONDITION, "group"):
        if any(key in r for r in rows):
            return key
    alphas = {str(r.get("alpha")) for r in rows if "alpha" in r}
    return "alpha" if len(alphas) > 1 else None


def columns(rows: Sequence[dict[str, Any]], group: str | None) -> list[str]:
    """The columns a table of ``rows`` shows: id, the group, the schema's numbers, the texts (empty ones hidden)."""
    wanted = ["id"] + ([group] if group and group != "alpha" else []) + list(NUMBERS) + list(TEXTS)
    return [c for c in dict.fromkeys(wanted) if any(r.get(c) not in (None, "", []) for r in rows)]


def pairs(rows: Iterable[dict[str, Any]], first: str, last: str, group: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(row under ``first``, row under ``last``) for every item measured under both conditions of ``group``."""
    rows = list(rows)
    index = {item_of(r): r for r in rows if str(r.get(group)) == first}
    return [(index[item_of(r)], r) for r in rows if str(r.get(group)) == last and item_of(r) in index]
