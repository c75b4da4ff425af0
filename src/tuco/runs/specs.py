"""One typed spec per measurement, validated once where it is built and passed down whole: ``ScoreSpec``
(TuCo at the last prompt token; a given response teacher-forced), ``GenerateSpec`` (responses under alpha,
TuCo at every generated token; ``Sampling`` decides the tokens) and ``ChooseSpec`` (a next-token choice
among options). Each owns what of it goes into a run's plan digest (``settings``) and configuration
(``config``), how its prompts are encoded, and how a batch of results becomes schema rows (``rows``).

``tuco.runs.jobs.Job.measure(spec, prompts)`` runs any of them through the one pipeline; ``score_to`` and
``generate_to``, the experiments, the CLI and ``tuco serve`` build specs. A new kind of measurement is one
new spec here, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tuco.engine.alpha import Alpha, AlphaLike
from tuco.errors import ConfigError
from tuco.measures.sampling import Sampling
from tuco.runs.schema import ChoiceRow, GenerationRow, Row, ScoreRow

if TYPE_CHECKING:
    from tuco.measures.batching import Encoded
    from tuco.models.decomposable import Decomposable

S = TypeVar("S", bound="Spec")
# A measured row with what it was computed from: (row, the encoded prompt, the measurement's result).
Measured = tuple[Row, "Encoded", Any]


def _one() -> Alpha:
    return Alpha.of(1.0)


@dataclass(frozen=True)
class Spec:
    """What every measurement has: alpha (any written form; parsed once here), the chat template
    (``chat``: None = when the tokenizer has one), a ``system`` prompt, per-token mode and the full path."""

    alpha: Alpha = field(default_factory=_one, metadata={"help": "FTC scale: a number, per layer 1:1:0.5, per stage 1/0.5"})
    chat: bool | None = None
    system: str | None = None
    per_token: bool = field(default=False, metadata={"help": "also store TuCo at every prompt token"})
    full_path: bool = False

    verb: ClassVar[str] = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", Alpha.of(self.alpha))
        if self.alpha.per_row:
            raise ConfigError("a run's measurement takes one alpha (several: one measurement per alpha, or a list of alphas)")

    def with_alpha(self: S, alpha: AlphaLike) -> S:
        """The same spec at another alpha."""
        from dataclasses import replace

        return replace(self, alpha=Alpha.of(alpha))

    # ---- what a run records ----

    def settings(self) -> dict[str, Any]:
        """What of the spec decides its rows: part of the measurement's plan digest."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """What the run's configuration records of the spec (besides the model's)."""
        return {"verb": self.verb, "chat": self.chat, "system": self.system, "per_token": self.per_token}

    # ---- prompts in, rows out ----

    @property
    def extra_tokens(self) -> int:
        """Positions left for generation when prompts are checked against the context."""
        return 0

    @property
    def responses(self) -> bool:
        """True when a chat ending with the assistant's message carries that response (scored teacher-forced)."""
        return False

    def rows(
        self, model: Decomposable, items: Sequence[Encoded], *, chat: bool, tag: str = "", on_backoff: Callable[[int], None] | None = None
    ) -> list[Measured]:
        """Measure one batch of encoded prompts; one schema row per prompt (with what it came from)."""
        raise NotImplementedError


def _fields(item: Encoded) -> tuple[str, str | None]:
    """(item, condition) of a prompt: ``item`` pairs a request across conditions (default: the prompt's id)."""
    extra = item.prompt.extra
    condition = extra.get("condition")
    return str(extra.get("item", item.prompt.id)), None if condition is None else str(condition)


def _baselines(model: Decomposable, items: Sequence[Encoded], chat: bool, system: str | None) -> list[tuple[float | None, float | None]]:
    """(OutputCo, next-token KL(FT || PT)) of each prompt (each model on its own trajectory)."""
    from tuco.measures.outputco import output_baselines

    got = output_baselines(model, [e.prompt for e in items], chat=chat, system=system, batch_size=len(items))
    return [(b.output_co, b.kl) for b in got]


SCORE_FIELDS = frozenset(
    {
        "tuco",
        "tuco_unscaled",
        "preco",
        "ptc_l1",
        "ftc_l1",
        "n_tokens",
        "layer_ptc_l1",
        "layer_ftc_l1",
        "tokens",
        "token_tuco",
        "stage_share",
        "stage_l1",
        "layer_stage_l1",
        "token_stage",
        "response_ids",
        "response_tokens",
        "response_token_tuco",
        "tuco_response",
    }
)


@dataclass(frozen=True)
class ScoreSpec(Spec):
    """TuCo of each prompt at its last token. A chat ending with the assistant's message is scored
    teacher-forced over that response unless ``next_turn``; ``baselines`` adds OutputCo and the KL."""

    next_turn: bool = field(
        default=False,
        metadata={
            "help": "a chat ending with the assistant's message: score the start of the next turn (a generation prompt "
            "appended), not the response (default: the response is scored teacher-forced, TuCo at each of its tokens)"
        },
    )
    baselines: bool = False

    verb: ClassVar[str] = "score"

    @property
    def responses(self) -> bool:
        return not self.next_turn

    def settings(self) -> dict[str, Any]:
        return {"score": self.alpha.label}

    def config(self) -> dict[str, Any]:
        return {**super().config(), **({"next_turn": True} if self.next_turn else {})}

    def rows(
        self, model: Decomposable, items: Sequence[Encoded], *, chat: bool, tag: str = "", on_backoff: Callable[[int], None] | None = None
    ) -> list[Measured]:
        from tuco.measures.scoring import score_encoded

        scores = score_encoded(
            model, items, alpha=self.alpha, per_token=self.per_token, full_path=self.full_path, batch_size=len(items), on_backoff=on_backoff
        )
        more = _baselines(model, items, chat, self.system) if self.baselines else [(None, None)] * len(items)
        out: list[Measured] = []
        for e, s, (output_co, kl) in zip(items, scores, more):
            item, condition = _fields(e)
            values = {k: v for k, v in asdict(s).items() if k in SCORE_FIELDS}
            label = self.alpha.label
            row = ScoreRow(id=e.prompt.id, item=item, prompt=e.prompt.display, alpha=label, condition=condition, chat=chat, **values)
            row.output_co, row.kl_ft_pt = output_co, kl
            if e.response is not None:
                row.response = e.response
            out.append((row, e, s))
        return out


@dataclass(frozen=True)
class GenerateSpec(Spec):
    """``samples`` responses per prompt under alpha (one row per prompt: the first response, all their
    texts in ``responses``), TuCo at every generated token; ``sampling`` decides the tokens."""

    sampling: Sampling = field(default_factory=Sampling)
    samples: int = 1
    baselines: bool = False

    verb: ClassVar[str] = "generate"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError(f"samples must be a whole number >= 1, got {self.samples!r}")

    @property
    def extra_tokens(self) -> int:
        return self.sampling.max_new_tokens

    def settings(self) -> dict[str, Any]:
        return {"alpha": self.alpha.label, **self.sampling.settings()}

    def config(self) -> dict[str, Any]:
        s = self.sampling
        return {**super().config(), "max_new_tokens": s.max_new_tokens, "temperature": s.temperature, "top_p": s.top_p, "seed": s.seed}

    def rows(
        self, model: Decomposable, items: Sequence[Encoded], *, chat: bool, tag: str = "", on_backoff: Callable[[int], None] | None = None
    ) -> list[Measured]:
        from tuco.measures.generation import generate_batch

        gens = generate_batch(
            model,
            items,
            alpha=self.alpha,
            sampling=self.sampling,
            tag=tag,
            samples=self.samples,
            per_token=self.per_token,
            full_path=self.full_path,
        )
        more = _baselines(model, items, chat, self.system) if self.baselines else [(None, None)] * len(items)
        out: list[Measured] = []
        for e, mine, (output_co, kl) in zip(items, gens, more):
            g = mine[0]
            item, condition = _fields(e)
            row = GenerationRow(
                id=e.prompt.id,
                item=item,
                prompt=e.prompt.display,
                tuco=g.prompt_tuco,
                alpha=self.alpha.label,
                condition=condition,
                n_tokens=len(e.ids),
                prompt_tuco=g.prompt_tuco,
                mean_tuco=g.mean_tuco,
                response=g.text,
                token_ids=g.token_ids,
                tokens=g.tokens,
                token_tuco=g.token_tuco,
                n_new_tokens=len(g.token_ids),
                finished=g.finished,
                seed=self.sampling.seed,
                temperature=self.sampling.temperature,
                stage_share=g.stage_share,
                token_stage_share=g.token_stage_share,
            )
            row.output_co, row.kl_ft_pt = output_co, kl
            if self.per_token:
                row.prompt_tokens, row.prompt_token_tuco = g.prompt_tokens, g.prompt_token_tuco
            if self.samples > 1:
                row.responses = [x.text for x in mine]
            out.append((row, e, mine))
        return out


@dataclass(frozen=True)
class ChooseSpec(Spec):
    """The next-token choice among ``options`` under alpha (each option's first token's log-probability,
    the chosen option, TuCo)."""

    options: tuple[str, ...] = ()
    chat: bool | None = True

    verb: ClassVar[str] = "choose"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "options", tuple(self.options))
        if len(self.options) < 2:
            raise ConfigError(f"a choice needs at least two options, got {list(self.options)}")

    def settings(self) -> dict[str, Any]:
        return {"choose": list(self.options), "alpha": self.alpha.label}

    def rows(
        self, model: Decomposable, items: Sequence[Encoded], *, chat: bool, tag: str = "", on_backoff: Callable[[int], None] | None = None
    ) -> list[Measured]:
        from tuco.measures.choices import choose

        got = choose(model, [e.prompt for e in items], self.options, alpha=self.alpha, chat=chat, system=self.system, batch_size=len(items))
        out: list[Measured] = []
        for e, c in zip(items, got):
            item, condition = _fields(e)
            row = ChoiceRow(
                id=e.prompt.id,
                item=item,
                prompt=e.prompt.display,
                tuco=c.tuco,
                alpha=self.alpha.label,
                condition=condition,
                chosen=self.options[c.chosen],
                logprobs=c.logprobs,
            )
            out.append((row, e, c))
        return out
