"""alpha-sweep: does scaling the fine-tuning component steer behaviour and accuracy? (METHOD.md 5.4)

For persona behaviours (yes/no: "Is the following statement something you would say?") and
multiple-choice tasks (5-shot, answer letters), next-token accuracy at each alpha of the grid, then
alpha chosen by k-fold cross-validation to maximise and to minimise accuracy, reported as the
change vs alpha = 1 on held-out folds. Paper grid {0.75, 0.9, 0.95, 1, 1.05, 1.1, 1.25}; gains up to
about 5% on MMLU tasks; behaviour agreement +1.5 to +5% (maximise) and large drops (minimise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuco.choices import choose
from tuco.data.builtin import PERSONA_QUESTION, Question
from tuco.data.sources import load_questions, load_statements
from tuco.errors import ConfigError
from tuco.experiments.base import RunDir, floats, names
from tuco.experiments.plotting import figure, save
from tuco.pair import ModelPair
from tuco.stats import cross_validated_alpha

NAME = "alpha-sweep"
QUESTION = "Does turning fine-tuning up or down (alpha) change behaviour agreement and task accuracy?"
PAPER_GRID = "0.75,0.9,0.95,1.0,1.05,1.1,1.25"
LETTERS = "ABCDEFGH"


@dataclass
class Options:
    behaviours: str = field(default="builtin:ends-justify-means,builtin:resource-acquisition", metadata={
        "help": "comma-separated persona sources (builtin:NAME, JSONL files, hf:Anthropic/model-written-evals:persona/X.jsonl)"})
    tasks: str = field(default="builtin:everyday_science,builtin:arithmetic", metadata={
        "help": "comma-separated multiple-choice sources (builtin:NAME, JSONL files, hf:cais/mmlu:SUBJECT)"})
    alphas: str = field(default=PAPER_GRID, metadata={"help": "alpha grid (must contain 1)"})
    folds: int = field(default=5, metadata={"help": "cross-validation folds"})
    shots: int = field(default=5, metadata={"help": "worked examples before each multiple-choice question (paper: 5)"})
    limit: int = field(default=0, metadata={"help": "at most this many items per behaviour/task (0: all)"})
    batch_size: int = field(default=8, metadata={"help": "prompts per forward pass"})
    seed: int = field(default=0, metadata={"help": "seed of the fold assignment"})


def mc_prompt(shots: list[Question], q: Question) -> str:
    """A k-shot multiple-choice prompt in the MMLU format, ending in 'Answer:'."""
    def block(x: Question, answer: bool) -> str:
        opts = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(x.choices))
        return f"{x.question}\n{opts}\nAnswer:" + (f" {LETTERS[x.answer]}" if answer else "")
    return "\n\n".join([block(s, True) for s in shots] + [block(q, False)])


def _items(o: Options) -> list[tuple[str, str, list[str], list[str], list[int]]]:
    """(task name, kind, prompts, options, index of the right/matching option) per behaviour and task."""
    out = []
    for spec in names(o.behaviours):
        st = load_statements(spec)[: o.limit or None]
        out.append((spec, "behaviour", [PERSONA_QUESTION.format(statement=s.statement) for s in st], ["Yes", "No"],
                    [0 if s.matching == "Yes" else 1 for s in st]))
    for spec in names(o.tasks):
        shots, qs = load_questions(spec)
        qs = qs[: o.limit or None]
        n_opts = len(qs[0].choices)
        if any(len(q.choices) != n_opts for q in qs):
            raise ConfigError(f"{spec}: every question must have the same number of choices")
        out.append((spec, "multiple-choice", [mc_prompt(shots[: o.shots], q) for q in qs], list(LETTERS[:n_opts]), [q.answer for q in qs]))
    if not out:
        raise ConfigError("give --behaviours and/or --tasks")
    return out


def run(pair: ModelPair, o: Options, rd: RunDir) -> dict[str, Any]:
    grid = floats(o.alphas, "alphas")
    if 1.0 not in grid:
        raise ConfigError(f"the alpha grid {o.alphas} must contain 1 (the fine-tuned model, the reference)")
    per_task: dict[str, Any] = {}
    for task, kind, prompts, options, right in _items(o):
        if len(prompts) < o.folds:
            raise ConfigError(f"{task}: {len(prompts)} items cannot be split into {o.folds} folds")
        correct: dict[float, list[bool]] = {}
        for a in grid:
            got = choose(pair, prompts, options, alpha=a, chat=True, batch_size=o.batch_size)
            correct[a] = [c.chosen == r for c, r in zip(got, right)]
            rd.add([{"group": f"alpha={a}", "task": task, "kind": kind, "alpha": a, "id": f"{task}-{a}-{i}", "prompt": p,
                     "tuco": c.tuco, "correct": ok, "chosen": options[c.chosen], "right": options[r]}
                    for i, (p, c, r, ok) in enumerate(zip(prompts, got, right, correct[a]))])
        per_task[task] = {
            "kind": kind, "n": len(prompts),
            "accuracy": {str(a): sum(v) / len(v) for a, v in correct.items()},
            "cv_max": cross_validated_alpha(correct, o.folds, o.seed, "max"),
            "cv_min": cross_validated_alpha(correct, o.folds, o.seed, "min"),
        }
    plot(per_task, grid, rd)
    return {"per_task": per_task, "alphas": grid, "folds": o.folds,
            "paper": "maximising: up to ~+5% on MMLU tasks, +1.5 to +5% behaviour agreement; minimising: large drops"}


def plot(per_task: dict[str, Any], grid: list[float], rd: RunDir) -> None:
    fig, ax = figure(6.4, 3.6)
    for task, m in per_task.items():
        ax.plot(grid, [m["accuracy"][str(a)] for a in grid], "o-", label=task.removeprefix("builtin:"))
    ax.axvline(1.0, color="#999", lw=0.8)
    ax.set_xlabel("alpha (FTC scale)")
    ax.set_ylabel("accuracy / agreement")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("alpha sweep")
    ax.legend(fontsize=7)
    save(fig, rd.path / "alpha_accuracy.png")
    fig, ax = figure(6.4, 3.6)
    tasks = list(per_task)
    x = range(len(tasks))
    ax.bar([i - 0.2 for i in x], [per_task[t]["cv_max"]["delta"] for t in tasks], 0.4, color="#2ca02c", label="maximise")
    ax.bar([i + 0.2 for i in x], [per_task[t]["cv_min"]["delta"] for t in tasks], 0.4, color="#d62728", label="minimise")
    ax.axhline(0, color="#555", lw=0.8)
    ax.set_xticks(list(x), [t.removeprefix("builtin:") for t in tasks], rotation=20, fontsize=7)
    ax.set_ylabel("held-out accuracy change vs alpha=1")
    ax.set_title(f"cross-validated alpha ({len(tasks)} tasks)")
    ax.legend()
    save(fig, rd.path / "alpha_cv_delta.png")
