"""What every experiment shares: typed options validated on construction, the ``Experiment`` spec, and
``RunDir`` (a run directory on the run machinery of ``tuco.runs``: rows written per batch, resume,
lock, fingerprint) with the measurements the experiments are made of.

An experiment is a module with one ``EXPERIMENT = Experiment(...)``: its options (a dataclass of typed
fields), ``run`` (writes rows, each with a unique ``id``; work whose rows exist is skipped on resume),
``metrics`` (a pure function of the rows), ``plots`` and ``findings`` (the paper's claims, each labelled
from an interval). Torch is imported only when a measurement runs.
"""

from __future__ import annotations

import json
import random
import statistics
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tuco.errors import ConfigError
from tuco.prompts import Prompt
from tuco.runs import ROWS, Run, atomic_write_text, read_rows

POSITIONS = ("last", "request-mean", "first-generated", "response-mean")
POSITION_HELP = (
    "which TuCo: last (the prompt's last token: the paper's), request-mean (mean over the request's "
    "tokens), first-generated (at the first generated token), response-mean (mean over the response)"
)


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
class Finding:
    """One claim of the paper tested on this run: what we measured, its interval, n, and the verdict
    ("reproduced" only when the interval excludes the null in the paper's direction)."""

    claim: str
    paper: str
    measured: str
    verdict: str
    ci: tuple[float, float] | None = None
    n: str = ""


@dataclass(frozen=True)
class Experiment:
    """One of the paper's analyses (or a new one) as a plugin."""

    name: str
    question: str
    paper: str
    options: type
    run: Callable[[Any, Any, RunDir], None]
    metrics: Callable[[list[dict[str, Any]], Any], dict[str, Any]]
    plots: Callable[[list[dict[str, Any]], dict[str, Any], Path], None]
    findings: Callable[[dict[str, Any]], list[Finding]]
    sources: Callable[[Any], list[tuple[str, str]]] = lambda o: []  # (kind, spec) to validate before loading
    judge: Callable[[Any], str | None] = lambda o: None

    def make_options(self, **values: Any) -> Any:
        """Options from keyword values (unknown names raise ConfigError listing the known ones)."""
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
# The run directory.
# --------------------------------------------------------------------------------------------


class RunDir:
    """A run directory (rows.jsonl, rows.manifest.json, metrics.json, plots) written through ``tuco.runs``.

    Measurements (``score``, ``generate``, ``choose``, ``baselines``) write their rows batch by batch and
    skip prompts whose row ids are already there (``resume``).
    """

    def __init__(
        self, path: str | Path, experiment: Experiment, options: Any, model: Any, *, resume: bool = False, overwrite: bool = False
    ) -> None:
        from tuco.jobs import model_config
        from tuco.runs import check_output

        self.path = check_output(path, file_ok=False)
        self.experiment = experiment
        self.options = options
        self.model = model
        self.config = {
            "experiment": experiment.name,
            "options": asdict(options),
            **model_config(model),
            "seed": getattr(options, "seed", None),
        }
        self.run = Run(self.path, self.config, resume=resume, overwrite=overwrite, info={"question": experiment.question})
        from tuco.data import sources
        from tuco.runs import manifest_path

        replaced = overwrite and manifest_path(self.path).exists()  # a previous run's metrics and plots would be stale
        self.run.open()
        sources.REVISIONS.clear()
        if replaced:
            for stale in [self.path / "metrics.json", *self.path.glob("*.png")]:
                stale.unlink(missing_ok=True)
        self.run.start_writing(self.run.done_keys() if resume else set())
        self.order: list[str] = []
        self._known: set[str] = set()

    @property
    def done(self) -> set[Any]:
        """Row ids already written (by this run or the one it resumes)."""
        return self.run.done

    def chunks(self, prompts: Sequence[Prompt], size: int) -> Iterator[list[Prompt]]:
        """The batches of ``prompts`` still to compute. Batches are cut from the whole list, so a resumed
        run forms the very same batches (and seeds) as an uninterrupted one; a batch whose rows are all
        written is skipped, one cut short by a kill is redone whole (its rows replace the partial ones)."""
        self._remember(p.id for p in prompts)
        for start in range(0, len(prompts), max(1, size)):
            chunk = list(prompts[start : start + size])
            if not all(p.id in self.done for p in chunk):
                yield chunk

    def _remember(self, ids: Iterable[str]) -> None:
        for k in ids:
            if k not in self._known:
                self._known.add(k)
                self.order.append(k)

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Append rows now (one flushed write); each needs a unique ``id``."""
        self._remember(r["id"] for r in rows)
        self.run.write(rows)
        self.done.update(r["id"] for r in rows)

    def rows(self) -> list[dict[str, Any]]:
        """Every row written so far (this run and the one it resumed), one per id, in measurement order."""
        by_id = {r["id"]: r for r in self.run.existing_rows()}
        position = {k: i for i, k in enumerate(self.order)}
        return sorted(by_id.values(), key=lambda r: position.get(r["id"], len(position)))

    def finish(self) -> dict[str, Any]:
        """Metrics from the rows, metrics.json, plots, manifest finished; returns the metrics."""
        rows = self.rows()
        exp = self.experiment
        metrics = {"experiment": exp.name, "question": exp.question, "paper": exp.paper, **exp.metrics(rows, self.options)}
        metrics["findings"] = [asdict(f) for f in exp.findings(metrics)]
        atomic_write_text(self.path / "metrics.json", json.dumps(metrics, indent=1, default=str) + "\n")
        exp.plots(rows, metrics, self.path)
        from tuco.data.sources import REVISIONS

        self.run.finish(self.order, n_prompts=len(rows), data_revisions=dict(REVISIONS))
        return metrics

    def stop(self, status: str) -> None:
        """Keep every finished row and mark the manifest (interrupted / failed: why)."""
        self.run.stop(status, self.order)

    # ---- measurements (rows streamed per batch, skipped when written) ----

    def score(
        self,
        prompts: Sequence[Prompt],
        *,
        chat: bool,
        position: str = "last",
        batch_size: int = 8,
        alpha: Any = 1.0,
        baselines: bool = False,
    ) -> None:
        """TuCo of each prompt into rows (``id``: the prompt id; ``tuco``: at ``position``, one of
        "last" / "request-mean" (score-only) or the generated ones (see ``generate``)). ``baselines``
        adds the output-only ``output_co`` and ``kl_ft_pt`` of each prompt."""
        if position in ("first-generated", "response-mean"):
            self.generate(prompts, chat=chat, max_new_tokens=16, batch_size=batch_size, alpha=alpha, position=position, baselines=baselines)
            return
        from tuco.batching import encode_all
        from tuco.scoring import score_encoded

        per_token = position == "request-mean"
        for chunk in self.chunks(prompts, batch_size):
            enc = encode_all(self.model, chunk, chat=chat)
            scores = score_encoded(self.model, enc, alpha=alpha, per_token=per_token, batch_size=batch_size)
            extra = self._baselines(chunk, chat, baselines)
            rows = []
            for p, s, more in zip(chunk, scores, extra):
                row = {
                    "id": p.id,
                    "prompt": p.display,
                    **p.extra,
                    **more,
                    "tuco": s.tuco,
                    "tuco_last": s.tuco,
                    "n_tokens": s.n_tokens,
                    "layer_ptc_l1": s.layer_ptc_l1,
                    "layer_ftc_l1": s.layer_ftc_l1,
                }
                if per_token:
                    row["tuco_request"], row["tuco_context"] = request_split(self.model.tokenizer, p, s.token_tuco, chat)
                    row["tuco"] = row["tuco_request"]
                rows.append(row)
            self.add(rows)

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        chat: bool,
        max_new_tokens: int,
        batch_size: int = 8,
        alpha: Any = 1.0,
        samples: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
        position: str = "last",
        judge: Any = None,
        per_token: bool = False,
        baselines: bool = False,
    ) -> None:
        """Responses into rows (``samples`` per prompt, seeded per batch), with TuCo at every position
        kind (``tuco_last``, ``tuco_first_generated``, ``tuco_response``; ``tuco`` = ``position``'s) and,
        with a ``judge``, ``refused`` per response (judged against the prompt's ``request`` field, else the prompt itself).
        ``per_token`` (or ``position="request-mean"``) adds ``tuco_request`` and ``tuco_context``: mean
        TuCo over the request's tokens and over everything before it (e.g. many-shot examples).
        ``baselines`` adds ``output_co`` and ``kl_ft_pt`` (see ``score``)."""
        import torch

        from tuco.batching import encode_all
        from tuco.generation import batch_seed, iter_generate

        for chunk in self.chunks(prompts, batch_size):
            enc = encode_all(self.model, chunk, chat=chat, extra=max_new_tokens)
            torch.manual_seed(batch_seed(seed, chunk[0].id))
            repeated = [e for e in enc for _ in range(samples)]
            per_token = per_token or position == "request-mean"
            gens = [
                g
                for batch in iter_generate(
                    self.model,
                    repeated,
                    alpha=alpha,
                    batch_size=len(repeated),
                    per_token=per_token,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                )
                for g in batch
            ]
            extra = self._baselines(chunk, chat, baselines)
            rows = []
            for j, p in enumerate(chunk):
                mine = gens[j * samples : (j + 1) * samples]
                texts = [g.text for g in mine]
                first = mine[0]
                row = {
                    "id": p.id,
                    "prompt": p.display,
                    **p.extra,
                    **extra[j],
                    "tuco_last": first.prompt_tuco,
                    "tuco_first_generated": at_generated(first.token_tuco, "first"),
                    "tuco_response": at_generated(first.token_tuco, "mean"),
                    "response": texts[0],
                    "tokens": first.tokens,
                    "token_tuco": first.token_tuco,
                    "finished": first.finished,
                    "layer_ptc_l1": first.prompt_layer_ptc_l1,
                    "layer_ftc_l1": first.prompt_layer_ftc_l1,
                }
                if per_token:
                    row["tuco_request"], row["tuco_context"] = request_split(self.model.tokenizer, p, first.prompt_token_tuco, chat)
                if samples > 1:
                    row["responses"] = texts
                if judge is not None:
                    request = p.extra.get("request", p.display)
                    refused = judge.refused([request] * len(texts), texts)
                    row["refused"] = refused[0] if samples == 1 else None
                    row["refusals"] = sum(refused)
                    row["non_refusals"] = len(texts) - sum(refused)
                row["tuco"] = row[
                    {
                        "last": "tuco_last",
                        "first-generated": "tuco_first_generated",
                        "response-mean": "tuco_response",
                        "request-mean": "tuco_request",
                    }[position]
                ]
                rows.append(row)
            self.add(rows)

    def choose(
        self,
        prompts: Sequence[Prompt],
        options: Sequence[str],
        *,
        alpha: Any = 1.0,
        chat: bool = True,
        batch_size: int = 8,
    ) -> None:
        """Next-token choice among ``options`` (log-probabilities, chosen option, TuCo) into rows."""
        from tuco.choices import choose

        for chunk in self.chunks(prompts, batch_size):
            got = choose(self.model, chunk, options, alpha=alpha, chat=chat, batch_size=batch_size)
            self.add(
                [
                    {
                        "id": p.id,
                        "prompt": p.display,
                        **p.extra,
                        "tuco": c.tuco,
                        "chosen": options[c.chosen],
                        "logprobs": c.logprobs,
                    }
                    for p, c in zip(chunk, got)
                ]
            )

    def _baselines(self, chunk: Sequence[Prompt], chat: bool, wanted: bool) -> list[dict[str, float]]:
        """OutputCo and next-token KL(FT || PT) of each prompt (each model on its own trajectory), or {}s."""
        if not wanted:
            return [{} for _ in chunk]
        from tuco.outputco import output_baselines

        got = output_baselines(self.model, list(chunk), chat=chat, batch_size=len(chunk))
        return [{"output_co": b.output_co, "kl_ft_pt": b.kl} for b in got]


def at_generated(token_tuco: Sequence[float], which: str) -> float | None:
    """TuCo at the generated tokens: ``token_tuco[i]`` is TuCo at the position that produced token i, so
    the first generated token's position is entry 1 ("first") and the response's positions are entries
    1..n-1 ("mean"). None when fewer than two tokens were generated."""
    rest = list(token_tuco[1:])
    if not rest:
        return None
    return rest[0] if which == "first" else sum(rest) / len(rest)


def request_split(tokenizer: Any, prompt: Prompt, token_tuco: Sequence[float] | None, chat: bool) -> tuple[float | None, float | None]:
    """(mean per-token TuCo over the request's own tokens, mean over every token before it).

    The request is the last user message's text (or the plain prompt), located in the rendered text
    through the tokenizer's character offsets; the chat template around it belongs to neither part.
    """
    from tuco.prompts import render

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


def shuffled(items: list, seed: int) -> list:
    """A seeded shuffled copy."""
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


def rows_of(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """Rows whose fields equal ``match``."""
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def mean_of(xs: Sequence[float]) -> float | None:
    """The mean, or None for no values (e.g. TuCo at generated tokens when every response ended at once)."""
    return statistics.fmean(xs) if xs else None


def values(rows: list[dict[str, Any]], key: str = "tuco", **match: Any) -> list[float]:
    """The numeric ``key`` of the rows matching ``match`` (missing values left out)."""
    return [float(r[key]) for r in rows_of(rows, **match) if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


__all__ = ["ROWS", "read_rows"]


# --------------------------------------------------------------------------------------------
# Findings from intervals.
# --------------------------------------------------------------------------------------------


def auc_summary(positives: Sequence[float], negatives: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """ROC-AUC with its 95% bootstrap interval and the group sizes (None when a group is empty)."""
    from tuco.stats import bootstrap_auc, roc_auc

    if not positives or not negatives:
        return {"auc": None, "ci": None, "n_pos": len(positives), "n_neg": len(negatives)}
    lo, hi = bootstrap_auc(positives, negatives, seed=seed)
    return {"auc": roc_auc(positives, negatives), "ci": [lo, hi], "n_pos": len(positives), "n_neg": len(negatives)}


def diff_summary(a: Sequence[float], b: Sequence[float], *, paired: bool, seed: int = 0) -> dict[str, Any]:
    """mean(b) - mean(a) with its 95% bootstrap interval (paired when a[i], b[i] are one item)."""
    from tuco.stats import bootstrap_mean_diff

    if not a or not b:
        return {"diff": None, "ci": None, "n": [len(a), len(b)], "paired": paired}
    d, lo, hi = bootstrap_mean_diff(a, b, paired=paired, seed=seed)
    return {"diff": d, "ci": [lo, hi], "n": [len(a), len(b)], "paired": paired}


# A bootstrap interval over fewer items than this is too narrow to trust (it undercovers): such a
# finding shows its interval but no verdict.
MIN_N = 10
TOO_FEW = f"too few to tell (n < {MIN_N})"


def auc_finding(claim: str, paper: str, s: dict[str, Any], *, expect: str = "above", what: str = "AUC") -> Finding:
    """A finding from ``auc_summary`` (null 0.5)."""
    from tuco.stats import verdict

    n = f"{s['n_pos']} vs {s['n_neg']}"
    if s.get("auc") is None:
        return Finding(claim, paper, f"no {what}: a group is empty", "not measured", None, n)
    lo, hi = s["ci"]
    label = verdict(lo, hi, 0.5, expect) if min(s["n_pos"], s["n_neg"]) >= MIN_N else TOO_FEW
    return Finding(claim, paper, f"{what} {s['auc']:.2f} [{lo:.2f}, {hi:.2f}]", label, (lo, hi), n)


def diff_finding(claim: str, paper: str, s: dict[str, Any], *, expect: str, what: str) -> Finding:
    """A finding from ``diff_summary`` (null 0)."""
    from tuco.stats import verdict

    n = ("paired n=" + str(s["n"][0])) if s.get("paired") else f"n={s['n'][0]} vs {s['n'][1]}"
    if s.get("diff") is None:
        return Finding(claim, paper, f"no {what}: a group is empty", "not measured", None, n)
    lo, hi = s["ci"]
    label = verdict(lo, hi, 0.0, expect) if min(s["n"]) >= MIN_N else TOO_FEW
    return Finding(claim, paper, f"{what} {s['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]", label, (lo, hi), n)
