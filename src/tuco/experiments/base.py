"""What every experiment shares: typed options validated on construction, the ``Experiment`` spec, and
``ExperimentRun`` (what ``run`` writes through: the one pipeline of ``tuco.runs.jobs``, so experiments get
the same batching, seeding, bad-prompt reporting, resume and data parallelism as ``score_to``).

An experiment is a module with one ``EXPERIMENT = Experiment(...)``: its options (a dataclass of typed
fields), ``run`` (writes rows, each with a unique ``id``; work whose rows exist is skipped on resume),
``metrics`` (a pure function of the rows: what was measured, per condition), ``claims`` (what the rows
say about the paper's claims: the PRIMARY claim is the controlled comparison the experiment exists for,
the rest exploratory; ``tuco.stats.claims.judge`` labels them) and ``plots``. Torch is imported only when a measurement runs.
"""

from __future__ import annotations

import json
import random
import statistics
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.engine.alpha import Alpha, AlphaLike
from tuco.errors import ConfigError
from tuco.measures.positions import POSITION_HELP, POSITIONS  # noqa: F401  (the experiments' --position)
from tuco.measures.prompts import Prompt
from tuco.measures.sampling import Sampling
from tuco.runs import atomic_write_text
from tuco.runs.specs import ChooseSpec, GenerateSpec, ScoreSpec
from tuco.stats.claims import Claim

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tuco.data.judges import Judge
    from tuco.measures.batching import Encoded
    from tuco.models.decomposable import Decomposable
    from tuco.runs.jobs import Enrich, Job
    from tuco.runs.schema import Row

# --------------------------------------------------------------------------------------------
# Typed options.
# --------------------------------------------------------------------------------------------


def opt(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    choices: Sequence[str] | None = None,  # noqa: A002
    cli: bool = True,
) -> Any:
    """An option field: default, help text, and what a valid value is (``min``, ``choices``)."""
    meta = {"help": help, "min": min, "choices": tuple(choices) if choices else None, "cli": cli}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def option_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type of an options dataclass."""
    return typing.get_type_hints(cls)


def _element(tp: Any) -> Any:
    args = typing.get_args(tp)
    return args[0] if args else str


def parse_value(text: str, tp: Any, name: str) -> Any:
    """A CLI string as a value of ``tp`` (int, float, str, bool, list[int|float|str]: comma-separated)."""
    flag = "--" + name.replace("_", "-")
    if typing.get_origin(tp) is list:
        elem = _element(tp)
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        return [parse_value(p, elem, name) for p in parts]
    try:
        if tp is bool:
            if str(text).lower() in ("1", "true", "yes", "on"):
                return True
            if str(text).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        return tp(text)
    except ValueError as err:
        kind = {int: "a whole number", float: "a number", bool: "true or false"}.get(tp, "a value")
        raise ConfigError(
            f"{flag} {text!r}: give {kind}" + (" (or several, comma-separated)" if typing.get_origin(tp) is list else "")
        ) from err


def validate_options(obj: Any) -> None:
    """Check every field of an options dataclass against its type and metadata; ConfigError naming the flag."""
    types = option_types(type(obj))
    for f in fields(obj):
        value, tp, flag = getattr(obj, f.name), types[f.name], "--" + f.name.replace("_", "-")
        values = value if typing.get_origin(tp) is list else [value]
        elem = _element(tp) if typing.get_origin(tp) is list else tp
        if typing.get_origin(tp) is list and not isinstance(value, list):
            raise ConfigError(f"{flag} must be a list, got {value!r}")
        twice = list(dict.fromkeys(str(values[values.index(v)]) for v in values if values.count(v) > 1))  # 1 == 1.0
        if twice:
            raise ConfigError(f"{flag}: {', '.join(twice)} given more than once; give each value once")
        for v in values:
            ok = isinstance(v, elem) or (elem is float and isinstance(v, int) and not isinstance(v, bool))
            if not ok or (elem in (int, float) and isinstance(v, bool)):
                raise ConfigError(f"{flag} must be {getattr(elem, '__name__', elem)}, got {v!r}")
            if f.metadata.get("min") is not None and v < f.metadata["min"]:
                raise ConfigError(f"{flag} must be >= {f.metadata['min']:g}, got {v!r}")
            if f.metadata.get("choices") and v not in f.metadata["choices"]:
                raise ConfigError(f"{flag} {v!r}: choose from {', '.join(f.metadata['choices'])}")


class Options:
    """Base of experiment options: validated on construction (``__post_init__``)."""

    def __post_init__(self) -> None:
        validate_options(self)
        position, tokens = getattr(self, "position", None), getattr(self, "max_new_tokens", None)
        if position in ("first-generated", "response-mean") and tokens is not None and tokens < 2:
            raise ConfigError(
                f"--position {position} reads TuCo where generated tokens are fed back, so it needs "
                f"--max-new-tokens 2 or more (got {tokens})"
            )
        self.check()

    def check(self) -> None:
        """Cross-field checks of one experiment (override)."""


# --------------------------------------------------------------------------------------------
# The experiment spec.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """One of the paper's analyses (or a new one) as a plugin."""

    name: str
    question: str
    paper: str
    options: type
    run: Callable[[Any, Any, ExperimentRun], None]
    metrics: Callable[[list[dict[str, Any]], Any], dict[str, Any]]
    plots: Callable[[list[dict[str, Any]], dict[str, Any], Path], None]
    claims: Callable[[list[dict[str, Any]], Any, dict[str, Any]], list[Claim]]
    sources: Callable[[Any], list[tuple[str, str]]] = lambda o: []  # (kind, spec) to validate before loading
    judge: Callable[[Any], str | None] = lambda o: None
    #: Options the analysis had once, each with the one-line message naming what to do instead (the CLI
    #: still parses the flag, so the user reads the message, not "unrecognized arguments").
    retired: dict[str, str] = field(default_factory=dict)

    def make_options(self, **values: Any) -> Any:
        """Options from keyword values (unknown names raise ConfigError listing the known ones; retired ones,
        ConfigError with their message)."""
        for name in values:
            if name in self.retired:
                raise ConfigError(self.retired[name])
        known = {f.name for f in fields(self.options)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"experiment {self.name!r} has no option {unknown[0]!r}; options: {', '.join(sorted(known))}")
        return self.options(**values)


def option_fields(options_cls: type) -> list[Any]:
    """The fields of an experiment's options that the CLI exposes."""
    return [f for f in fields(options_cls) if f.metadata.get("cli", True)]


def default_of(f: Any) -> Any:
    """A field's default value."""
    return f.default if f.default is not MISSING else f.default_factory()


# --------------------------------------------------------------------------------------------
# What an experiment writes through: its run and the one pipeline (tuco.runs.jobs.Job).
# --------------------------------------------------------------------------------------------


class ExperimentRun:
    """An experiment's run directory as its ``run`` function sees it: measurements (``score``,
    ``generate``, ``choose``) go through the same pipeline as ``score_to`` / ``generate_to`` (one batch
    plan, one seeding rule, bad prompts reported in the manifest, resumable, data-parallel), and
    ``once`` computes something a single time per run (on rank 0; every rank reads it).

    Rows carry the prompt's ``condition`` and ``item`` (``Prompt.extra``); a measurement's samples are
    seeded from (seed, alpha, its condition, batch number).
    """

    def __init__(self, path: Path, options: Any, model: Decomposable, job: Job) -> None:
        self.path = path
        self.options = options
        self.model = model
        self.job = job

    @property
    def resumed(self) -> bool:
        """True when this run continues an interrupted one."""
        return bool(self.job.run.resumed)

    @staticmethod
    def _tag(prompts: Sequence[Prompt], tag: str | None) -> str:
        if tag is not None:
            return tag
        conditions = {str(p.extra.get("condition", "")) for p in prompts}
        return conditions.pop() if len(conditions) == 1 else ""

    def score(
        self,
        prompts: Sequence[Prompt],
        *,
        chat: bool,
        position: str = "last",
        batch_size: int = 8,
        alpha: AlphaLike = 1.0,
        baselines: bool = False,
        tag: str | None = None,
    ) -> None:
        """TuCo of each prompt into rows (``tuco``: at ``position``; "first-generated" and "response-mean"
        generate 16 tokens to read it); ``baselines`` adds ``output_co`` and ``kl_ft_pt``."""
        if position in ("first-generated", "response-mean"):
            self.generate(prompts, chat=chat, max_new_tokens=16, batch_size=batch_size, alpha=alpha, position=position, baselines=baselines)
            return
        spec = ScoreSpec(alpha=Alpha.of(alpha), chat=chat, per_token=position == "request-mean", baselines=baselines)
        enrich = read_at(position, self.model.tokenizer, chat)
        self.job.measure(spec, prompts, batch_size=batch_size, tag=self._tag(prompts, tag), enrich=enrich)

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        chat: bool,
        max_new_tokens: int,
        batch_size: int = 8,
        alpha: AlphaLike = 1.0,
        samples: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
        position: str = "last",
        judge: Judge | None = None,
        per_token: bool = False,
        baselines: bool = False,
        tag: str | None = None,
    ) -> None:
        """Responses into rows (``samples`` per prompt), TuCo at every position kind (``tuco`` =
        ``position``'s), with a ``judge`` the refusals."""
        sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        spec = GenerateSpec(
            alpha=Alpha.of(alpha),
            chat=chat,
            per_token=per_token or position == "request-mean",
            sampling=sampling,
            samples=samples,
            baselines=baselines,
        )
        steps = [read_at(position, self.model.tokenizer, chat)] + ([judged(judge, samples)] if judge is not None else [])
        self.job.measure(spec, prompts, batch_size=batch_size, tag=self._tag(prompts, tag), enrich=chained(steps))

    def choose(
        self,
        prompts: Sequence[Prompt],
        options: Sequence[str],
        *,
        alpha: AlphaLike = 1.0,
        chat: bool = True,
        batch_size: int = 8,
        tag: str | None = None,
    ) -> None:
        """Next-token choice among ``options`` (log-probabilities, chosen option, TuCo) into rows."""
        spec = ChooseSpec(alpha=Alpha.of(alpha), chat=chat, options=tuple(options))
        self.job.measure(spec, prompts, batch_size=batch_size, tag=self._tag(prompts, tag))

    def note(self, **fields: Any) -> None:
        """Facts the run's manifest records (documents left out, counts)."""
        self.job.run.note(**fields)

    def once(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` (JSON-serialisable) done once per run: by rank 0, saved as ``NAME.json`` in the run
        directory (a resumed run reads it instead of computing again), then read by every rank."""
        from tuco.runs.parallel import barrier

        path = self.path / f"{name}.json"
        if self.job.run.is_main and not (self.resumed and path.exists()):
            atomic_write_text(path, json.dumps(compute()))
        barrier()
        return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# What experiments add to a measured row (``Job.measure``'s ``enrich``).
# --------------------------------------------------------------------------------------------


def read_at(position: str, tokenizer: PreTrainedTokenizerBase, chat: bool) -> Enrich:
    """The row's ``tuco`` read at ``position`` (docs: ``tuco.measures.positions``), the other positions kept
    beside it (``tuco_last``, ``tuco_first_generated``, ``tuco_response``, ``tuco_request``/``tuco_context``)."""
    from tuco.measures.generation import Generation
    from tuco.measures.positions import at_generated, request_split
    from tuco.measures.scoring import Score
    from tuco.runs.schema import POSITION_FIELDS, GenerationRow, ScoreRow

    def enrich(row: Row, encoded: Encoded, result: object) -> None:
        if isinstance(row, ScoreRow) and isinstance(result, Score):
            row.tuco_last = result.tuco
            if position == "request-mean":
                row.tuco_request, row.tuco_context = request_split(tokenizer, encoded.prompt, result.token_tuco, chat)
                row.tuco = row.tuco_request
        elif isinstance(row, GenerationRow) and isinstance(result, list) and isinstance(result[0], Generation):
            g = result[0]
            row.tuco_last = g.prompt_tuco
            row.tuco_first_generated = at_generated(g.token_tuco, "first")
            row.tuco_response = at_generated(g.token_tuco, "mean")
            row.layer_ptc_l1, row.layer_ftc_l1 = g.prompt_layer_ptc_l1, g.prompt_layer_ftc_l1
            if g.prompt_token_tuco is not None:
                row.tuco_request, row.tuco_context = request_split(tokenizer, encoded.prompt, g.prompt_token_tuco, chat)
            row.tuco = getattr(row, POSITION_FIELDS[position])

    return enrich


def judged(judge: Judge, samples: int) -> Enrich:
    """The judge's verdict on a generation row's responses: ``refused`` (one sample) and the counts
    ``refusals`` / ``non_refusals``, each judged against the prompt's ``request`` field, else the prompt."""

    from tuco.runs.schema import GenerationRow

    def enrich(row: Row, encoded: Encoded, result: object) -> None:
        if not isinstance(row, GenerationRow) or not isinstance(result, list):
            raise TypeError(f"judged() enriches generation rows, got {type(row).__name__}")
        texts = [g.text for g in result]
        refused = judge.refused([str(encoded.prompt.extra.get("request", encoded.prompt.display))] * len(texts), texts)
        row.refused = refused[0] if samples == 1 else None
        row.refusals, row.non_refusals = sum(refused), len(texts) - sum(refused)

    return enrich


def chained(steps: Sequence[Enrich]) -> Enrich:
    """One enrichment doing each of ``steps`` in turn."""

    def enrich(row: Row, encoded: Encoded, result: object) -> None:
        for step in steps:
            step(row, encoded, result)

    return enrich


def shuffled(items: list, seed: int) -> list:
    """A seeded shuffled copy."""
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


def rows_of(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """Rows whose fields equal ``match``."""
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def paired(rows: list[dict[str, Any]], first: dict[str, Any], second: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(row matching ``first``, row matching ``second``) for every ``item`` measured under both, in the
    order of the ``second`` rows: the one way rows are paired across conditions."""
    from tuco.runs.schema import item_of

    index = {item_of(r): r for r in rows_of(rows, **first)}
    return [(index[item_of(r)], r) for r in rows_of(rows, **second) if item_of(r) in index]


def mean_of(xs: Sequence[float]) -> float | None:
    """The mean, or None for no values (e.g. TuCo at generated tokens when every response ended at once)."""
    return statistics.fmean(xs) if xs else None


def values(rows: list[dict[str, Any]], key: str = "tuco", **match: Any) -> list[float]:
    """The numeric ``key`` of the rows matching ``match`` (missing values left out)."""
    return [float(r[key]) for r in rows_of(rows, **match) if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


# --------------------------------------------------------------------------------------------
# Claims from rows (tuco.stats.claims judges them; tuco.stats.intervals computes their intervals).
# --------------------------------------------------------------------------------------------


def item_means(rows: list[dict[str, Any]], key: str = "tuco", **match: Any) -> dict[str, float]:
    """The mean of ``key`` per ``item`` over the rows matching ``match``: an item measured several times
    (several suffixes, samples, ks) counts once. Items without a value are left out."""
    from tuco.runs.schema import item_of

    got: dict[str, list[float]] = {}
    for r in rows_of(rows, **match):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            got.setdefault(item_of(r), []).append(float(v))
    return {k: statistics.fmean(v) for k, v in got.items()}


def paired_claim(
    claim: str,
    before: dict[str, float],
    after: dict[str, float],
    *,
    expect: str,
    what: str,
    paper: str | None,
    primary: bool = False,
    paper_range: tuple[float, float] | None = None,
    mde: bool = False,
    clusters: dict[str, str] | None = None,
) -> Claim:
    """mean(after - before) over the items measured under both (``item_means`` of two conditions);
    ``clusters``: item -> cluster (e.g. the request's topic), so items of one cluster count once."""
    from tuco.stats.claims import Claim
    from tuco.stats.recompute import compute

    items = [i for i in after if i in before]
    if len(items) < 2:
        return Claim(claim, None, expect, what, paper, primary, paper_range, reason=f"{len(items)} items measured under both conditions")
    kw: dict[str, Any] = {"clusters": [clusters.get(i, i) for i in items]} if clusters else {}
    iv, inputs = compute("paired_diff_ci", before=[before[i] for i in items], after=[after[i] for i in items], **kw)
    return Claim(claim, iv, expect, what, paper, primary, paper_range, mde=mde, extra={"paired": True}, inputs=inputs)


def item_slopes(rows: list[dict[str, Any]], key: str = "tuco", by: str = "k") -> dict[str, float]:
    """Per item: the least-squares slope of ``key`` over log2(1 + ``by``) (k = 0, 1, 3, 7 ... equally
    spaced: the papers' grids double k). A per-item trend, not an endpoint difference."""
    import math

    from tuco.runs.schema import item_of
    from tuco.stats.intervals import slope

    points: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and _number(v):
            points.setdefault(item_of(r), []).append((math.log2(1 + float(r[by])), float(v)))
    out = {}
    for item, pts in points.items():
        s = slope([p[0] for p in pts], [p[1] for p in pts])
        if s is not None:
            out[item] = s
    return out


def mean_claim(
    claim: str,
    per_item: dict[str, float],
    *,
    expect: str,
    what: str,
    paper: str | None,
    primary: bool = False,
    paper_range: tuple[float, float] | None = None,
    clusters: dict[str, str] | None = None,
) -> Claim:
    """The mean of a per-item quantity (a slope, a difference computed per item) against 0; ``clusters``:
    item -> cluster, so items of one cluster count once."""
    from tuco.stats.claims import Claim
    from tuco.stats.recompute import compute

    if len(per_item) < 2:
        return Claim(claim, None, expect, what, paper, primary, paper_range, reason=f"{len(per_item)} items")
    kw: dict[str, Any] = {"clusters": [clusters.get(i, i) for i in per_item]} if clusters else {}
    iv, inputs = compute("mean_ci", values=list(per_item.values()), **kw)
    return Claim(claim, iv, expect, what, paper, primary, paper_range, inputs=inputs)


def auc_claim(
    claim: str,
    positives: list[dict[str, Any]],
    negatives: list[dict[str, Any]],
    *,
    key: str = "tuco",
    expect: str = "above",
    what: str = "AUC",
    paper: str | None,
    primary: bool = False,
    paper_range: tuple[float, float] | None = None,
    strata: str | None = None,
    cluster: str | None = None,
    min_per_class: int = 5,
) -> Claim:
    """ROC-AUC of ``key`` (positives above negatives). Rows of one cluster are dependent: the cluster is the
    row's ``cluster`` field (e.g. the request's topic), else its ``item``. With ``strata`` (a row field) only
    pairs within one stratum count, and a stratum with fewer than ``min_per_class`` clusters in either class
    is dropped and named (``tuco.stats.strata``)."""
    from tuco.runs.schema import item_of
    from tuco.stats.claims import Claim
    from tuco.stats.recompute import compute

    pos = [r for r in positives if _number(r.get(key))]
    neg = [r for r in negatives if _number(r.get(key))]
    if not pos or not neg:
        return Claim(
            claim, None, expect, what, paper, primary, paper_range, reason=f"a group is empty ({len(pos)} vs {len(neg)})", digits=2
        )

    def clusters(rs: list[dict[str, Any]]) -> list[str]:
        return [str(r.get(cluster, item_of(r))) if cluster else item_of(r) for r in rs]

    args: dict[str, Any] = dict(
        positives=[float(r[key]) for r in pos],
        negatives=[float(r[key]) for r in neg],
        pos_clusters=clusters(pos),
        neg_clusters=clusters(neg),
    )
    try:
        if strata:
            iv, inputs = compute(
                "stratified_auc_ci",
                **args,
                pos_strata=[str(r.get(strata)) for r in pos],
                neg_strata=[str(r.get(strata)) for r in neg],
                min_per_class=min_per_class,
            )
        else:
            iv, inputs = compute("auc_ci", **args)
    except ValueError as err:
        return Claim(claim, None, expect, what, paper, primary, paper_range, reason=str(err), digits=2)
    return Claim(claim, iv, expect, what, paper, primary, paper_range, digits=2, inputs=inputs)


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
