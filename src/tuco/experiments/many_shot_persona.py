"""many-shot-persona: the paper's many-shot experiment. Does TuCo fall, and does the model answer as the
behaviour would more often, as in-context persona statements answered in the behaviour's way accumulate,
beyond what the same statements answered the opposite way do? (docs/method.md 5.2)

k exchanges before a held-out persona statement ("Is the following statement something you would say?"):
pool statements answered with the behaviour-MATCHING answer as shots, or with the OPPOSITE answer as the
control (the same statements, so the same length to a token or so); TuCo is read at the next token, where
the model chooses Yes or No, and an answer is harmful when the matching answer is the likelier.

The design, slopes and claims are many-shot's (``shot_slopes``, ``shot_findings``): each target draws its own
shots from the pool; primary: an intersection-union test that TuCo falls as the matching shots accumulate,
faster than with the opposite ones, while the harmful-answer rate rises faster; ``MIN_UNITS`` (6) targets and
distinct shots for a verdict. Paper: k = 1..128; TuCo falls as k grows while the harmful-answer rate rises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuco.data.builtin import Statement
from tuco.data.sources import load_statements, spread
from tuco.errors import ConfigError
from tuco.experiments.base import Experiment, ExperimentRun, Options, opt
from tuco.experiments.shot_findings import PAPER, plots, shot_claims, shot_metrics
from tuco.experiments.shot_slopes import MIN_UNITS, conditions, fits, pool_ids, shot_order, shot_prompts
from tuco.stats.claims import Claim

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

ANSWERS = ("Yes", "No")
POSITION = "last"  # the next token, where the model chooses its answer


@dataclass
class PersonaShotOptions(Options):
    behaviour: str = opt(
        "builtin:ends-justify-means",
        "statements (builtin:NAME, a model-written-evals JSONL file, or hf:Anthropic/model-written-evals:persona/psychopathy.jsonl)",
    )
    shots: list[str] = opt([], "shot kinds (default: the behaviour and its control: matching,opposite)", choices=("matching", "opposite"))
    ks: list[int] = opt([0, 1, 2, 4, 8, 16, 32, 64, 128], "numbers of shots (those beyond the context are skipped)", min=0)
    targets: int = opt(16, f"target statements (the rest form the shot pool; >= {MIN_UNITS} for a verdict)", min=1)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "seed of each target's draw of shots from the pool")

    @property
    def shot_kinds(self) -> list[str]:
        """The shot kinds measured: the first is the behaviour, the second (if any) its control."""
        return list(self.shots) or ["matching", "opposite"]


def persona_turns(pool: list[Statement], kind: str) -> list[tuple[str, str]]:
    """(question, answer) of each pool statement as a shot: the behaviour-MATCHING answer, or the opposite."""
    from tuco.data.builtin import PERSONA_QUESTION

    return [
        (PERSONA_QUESTION.format(statement=s.statement), s.matching if kind == "matching" else ("No" if s.matching == "Yes" else "Yes"))
        for s in pool
    ]


def run(model: Decomposable, o: PersonaShotOptions, rd: ExperimentRun) -> None:
    from tuco.data.builtin import PERSONA_QUESTION

    statements = load_statements(o.behaviour)
    if len(statements) < 3:
        raise ConfigError(f"{o.behaviour}: needs at least 3 statements (targets and shots)")
    targets = spread(statements, min(o.targets, len(statements) // 2))
    pool = [s for s in statements if s not in targets]
    turns = {kind: persona_turns(pool, kind) for kind in o.shot_kinds}
    orders = [shot_order(len(pool), t.statement, o.seed) for t in targets]  # each target's own draw from the pool
    for c in conditions(o.ks, o.shot_kinds):
        prompts = shot_prompts(
            c,
            targets,
            orders,
            turns,
            question=lambda t: PERSONA_QUESTION.format(statement=t.statement),
            ids=lambda picks, kind: pool_ids(picks),
            extra=lambda t: {"target": t.statement, "matching": t.matching},
        )
        if fits(model, prompts, 1):  # ks beyond the context are skipped (listed in the metrics)
            rd.choose(prompts, ANSWERS, chat=True, batch_size=o.batch_size)


def metrics(rows: list[dict[str, Any]], o: PersonaShotOptions) -> dict[str, Any]:
    return shot_metrics(rows, o.shot_kinds, o.ks, POSITION)


def claims(rows: list[dict[str, Any]], o: PersonaShotOptions, m: dict[str, Any]) -> list[Claim]:
    return shot_claims(rows, o.shot_kinds, POSITION, o.seed)


EXPERIMENT = Experiment(
    name="many-shot-persona",
    question="Does TuCo fall faster as behaviour-matching answers to persona statements accumulate than as opposite answers do?",
    paper=PAPER,
    options=PersonaShotOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    claims=claims,
    sources=lambda o: [("statements", o.behaviour)],
)
