"""alpha-sweep: does scaling the fine-tuning component steer behaviour and accuracy? (docs/method.md 5.4)

For persona behaviours (yes/no: "Is the following statement something you would say?") and
multiple-choice tasks (5-shot, answer letters), next-token accuracy at each alpha of the grid, then
alpha chosen by k-fold cross-validation to maximise and to minimise accuracy AMONG THE ALPHAS IN
0.75-1.25 (the paper's grid {0.75, 0.9, 0.95, 1, 1.05, 1.1, 1.25}; ``PAPER_ALPHAS``), reported as the
change vs alpha = 1 on the held-out folds (each item scored at the alpha its training folds chose).

Primary, one per behaviour / task (the paper's claim): the cross-validated alpha raises agreement /
accuracy, held out (paper: behaviour agreement +1.5 to +5%, MMLU up to about +5%). Exploratory: the
minimising alpha lowers it (paper: large drops). With ``--harmful`` / ``--benign`` prompt sets, also the
refusal rate of greedy responses at each alpha: exploratory rows at the grid's ends, and alpha = 0 (the
pre-trained model, which was never taught to refuse) a sanity check labelled as a control, never a
primary claim (comparing the base with its refusal fine-tune tests nothing the paper claims).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.data.builtin import PERSONA_QUESTION, Question
from tuco.data.judges import JUDGE_HELP
from tuco.data.sources import SOURCE_HELP, load_prompts, load_questions, load_statements
from tuco.engine.alpha import alpha_text
from tuco.errors import ConfigError
from tuco.experiments.base import Experiment, ExperimentRun, Options, opt
from tuco.measures.prompts import Prompt
from tuco.stats.claims import Claim

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

PAPER = "maximising: up to ~+5% on MMLU tasks, +1.5 to +5% behaviour agreement; minimising: large drops"
#: The alphas the cross-validated choice is made among: the paper's grid spans 0.75-1.25.
PAPER_ALPHAS = (0.75, 1.25)
LETTERS = "ABCDEFGH"


@dataclass
class AlphaSweepOptions(Options):
    behaviours: list[str] = opt(
        ["builtin:ends-justify-means", "builtin:resource-acquisition"],
        "persona sources (builtin:NAME, JSONL files, hf:Anthropic/model-written-evals:persona/X.jsonl)",
    )
    tasks: list[str] = opt(
        ["builtin:everyday_science", "builtin:arithmetic"], "multiple-choice sources (builtin:NAME, JSONL files, hf:cais/mmlu:SUBJECT)"
    )
    harmful: str = opt("", f"harmful prompts whose refusal rate is measured at every alpha ({SOURCE_HELP}; empty: off)")
    benign: str = opt("", f"benign prompts whose refusal rate is measured at every alpha ({SOURCE_HELP}; empty: off)")
    n: int = opt(40, "harmful / benign prompts each", min=1)
    max_new_tokens: int = opt(30, "tokens of each judged response", min=1)
    judge: str = opt("refusal-strings", JUDGE_HELP)
    alphas: list[float] = opt(
        [0.75, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25],
        "alpha grid (must contain 1; the cross-validated alpha is chosen among those in 0.75-1.25, the paper's grid; "
        "others, e.g. 0 = the pre-trained model, are measured as controls)",
        min=0.0,
    )
    folds: int = opt(5, "cross-validation folds", min=2)
    shots: int = opt(5, "worked examples before each multiple-choice question (paper: 5)", min=0)
    limit: int = opt(0, "at most this many items per behaviour/task (0: all)", min=0)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "seed of the fold assignment")

    def check(self) -> None:
        if 1.0 not in self.alphas:
            raise ConfigError(f"the alpha grid {self.alphas} must contain 1 (the fine-tuned model, the reference)")
        if not (self.behaviours or self.tasks or self.harmful or self.benign):
            raise ConfigError("give --behaviours, --tasks, --harmful and/or --benign")
        if (self.behaviours or self.tasks) and len(in_paper_range(self.alphas)) < 2:
            lo, hi = PAPER_ALPHAS
            raise ConfigError(
                f"--alphas {','.join(f'{a:g}' for a in self.alphas)}: the cross-validated alpha is chosen in {lo:g}-{hi:g} "
                "(the paper's grid); give at least one alpha in that range besides 1 (e.g. 0.75,0.9,1,1.1,1.25)"
            )


def in_paper_range(alphas: list[float]) -> list[float]:
    """The alphas the cross-validated choice is made among: those in ``PAPER_ALPHAS`` (1 among them)."""
    lo, hi = PAPER_ALPHAS
    return [a for a in alphas if lo <= a <= hi]


def mc_prompt(shots: list[Question], q: Question) -> str:
    """A k-shot multiple-choice prompt in the MMLU format, ending in 'Answer:'."""

    def block(x: Question, answer: bool) -> str:
        opts = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(x.choices))
        return f"{x.question}\n{opts}\nAnswer:" + (f" {LETTERS[x.answer]}" if answer else "")

    return "\n\n".join([block(s, True) for s in shots] + [block(q, False)])


def _items(o: AlphaSweepOptions) -> list[tuple[str, str, list[str], list[str], list[int]]]:
    """(task name, kind, prompts, options, index of the right/matching option) per behaviour and task."""
    out = []
    for spec in o.behaviours:
        st = load_statements(spec)[: o.limit or None]
        out.append(
            (
                spec,
                "behaviour",
                [PERSONA_QUESTION.format(statement=s.statement) for s in st],
                ["Yes", "No"],
                [0 if s.matching == "Yes" else 1 for s in st],
            )
        )
    for spec in o.tasks:
        shots, qs = load_questions(spec)
        qs = qs[: o.limit or None]
        n_opts = len(qs[0].choices)
        if any(len(q.choices) != n_opts for q in qs):
            raise ConfigError(f"{spec}: every question must have the same number of choices")
        out.append((spec, "multiple-choice", [mc_prompt(shots[: o.shots], q) for q in qs], list(LETTERS[:n_opts]), [q.answer for q in qs]))
    for task, _, prompts, _, _ in out:
        if len(prompts) < o.folds:
            raise ConfigError(f"{task}: {len(prompts)} items cannot be split into {o.folds} folds")
    return out


def run(model: Decomposable, o: AlphaSweepOptions, rd: ExperimentRun) -> None:
    for task, kind, prompts, options, right in _items(o):
        for a in o.alphas:
            items = [
                Prompt(
                    f"{task}|{alpha_text(a)}|{i}",
                    text=p,
                    extra={
                        "condition": f"alpha={a:g}",
                        "task": task,
                        "task_kind": kind,
                        "item": f"{task}:{i}",
                        "index": i,
                        "right": options[r],
                    },
                )
                for i, (p, r) in enumerate(zip(prompts, right))
            ]
            rd.choose(items, options, alpha=a, chat=True, batch_size=o.batch_size)
    refusal_sets = [(name, spec) for name, spec in (("harmful", o.harmful), ("benign", o.benign)) if spec]
    if refusal_sets:
        from tuco.data.judges import get_judge

        judge = get_judge(o.judge)
        for name, spec in refusal_sets:
            prompts = [p for p in load_prompts(spec, limit=o.n) if isinstance(p, str)]
            for a in o.alphas:
                items = [
                    Prompt(
                        f"{name}|{alpha_text(a)}|{i}",
                        text=p,
                        extra={
                            "condition": f"alpha={a:g}",
                            "task": f"refusal:{name}",
                            "task_kind": "refusal",
                            "item": f"refusal:{name}:{i}",
                            "index": i,
                        },
                    )
                    for i, p in enumerate(prompts)
                ]
                rd.generate(items, chat=True, max_new_tokens=o.max_new_tokens, alpha=a, batch_size=o.batch_size, judge=judge, seed=o.seed)


def _correct(rows: list[dict[str, Any]], task: str, alphas: list[float]) -> tuple[str, dict[float, list[bool]]]:
    """(the task's kind, per alpha: correct / refused per item, items in one order)."""
    mine = [r for r in rows if r["task"] == task]
    kind = mine[0]["task_kind"]
    by_alpha: dict[float, list[bool]] = {}
    for a in alphas:
        got = sorted((r for r in mine if r["alpha"] == a), key=lambda r: r["index"])
        by_alpha[a] = [bool(r["refused"]) for r in got] if kind == "refusal" else [r["chosen"] == r["right"] for r in got]
    return kind, by_alpha


def _cv(by_alpha: dict[float, list[bool]], o: AlphaSweepOptions, mode: str) -> dict[str, Any]:
    """The paper's k-fold choice of alpha, among the alphas in 0.75-1.25 (``in_paper_range``)."""
    from tuco.stats.summary import cross_validated_alpha

    return cross_validated_alpha({a: by_alpha[a] for a in in_paper_range(list(by_alpha))}, o.folds, o.seed, mode)


def metrics(rows: list[dict[str, Any]], o: AlphaSweepOptions) -> dict[str, Any]:
    per_task: dict[str, Any] = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        kind, by_alpha = _correct(rows, task, o.alphas)
        entry: dict[str, Any] = {"kind": kind, "n": len(by_alpha[1.0])}
        if kind == "refusal":
            entry["refusal_rate"] = {str(a): statistics.fmean(v) for a, v in by_alpha.items() if v}
            entry["mean_tuco"] = {
                str(a): statistics.fmean(r["tuco"] for r in rows if r["task"] == task and r["alpha"] == a) for a in o.alphas
            }
        else:
            entry["accuracy"] = {str(a): statistics.fmean(v) for a, v in by_alpha.items()}
            for mode in ("max", "min"):
                cv = _cv(by_alpha, o, mode)
                cv.pop("item_delta")
                entry[f"cv_{mode}"] = cv
        per_task[task] = entry
    return {"per_task": per_task, "alphas": list(o.alphas), "cv_alphas": in_paper_range(list(o.alphas)), "folds": o.folds}


def _refusal_claims(task: str, by_alpha: dict[float, list[bool]], o: AlphaSweepOptions) -> list[Claim]:
    """Exploratory: the refusal rate at the grid's ends vs alpha 1; alpha = 0 (the pre-trained model) is a
    sanity check, labelled a control (it compares the base with its refusal fine-tune: no claim of the paper)."""
    from tuco.stats.recompute import compute

    which = task.removeprefix("refusal:")
    ref = [float(x) for x in by_alpha[1.0]]
    out = []
    for a, expect, direction in ((min(o.alphas), "below", "lowers"), (max(o.alphas), "above", "raises")):
        if a == 1.0:
            continue
        iv, inputs = compute("paired_diff_ci", before=ref, after=[float(x) for x in by_alpha[a]])
        label = "Control (sanity check): alpha=0, the pre-trained model," if a == 0.0 else f"alpha={a:g}"
        out.append(
            Claim(
                f"{label} {direction} the {which} refusal rate",
                iv,
                expect,
                "refusal change vs alpha 1",
                None if a == 0.0 else "alpha < 1 weakens fine-tuned behaviour, > 1 strengthens it",
                mde=True,
                inputs=inputs,
            )
        )
    return out


def claims(rows: list[dict[str, Any]], o: AlphaSweepOptions, m: dict[str, Any]) -> list[Claim]:
    from tuco.stats.recompute import compute

    out: list[Claim] = []
    lo, hi = PAPER_ALPHAS
    for task in m["per_task"]:
        name = task.removeprefix("builtin:")
        kind, by_alpha = _correct(rows, task, o.alphas)
        if kind == "refusal":
            out += _refusal_claims(task, by_alpha, o)
            continue
        ref = [float(x) for x in by_alpha[1.0]]
        paper_range = (0.015, 0.05) if kind == "behaviour" else (0.0, 0.05)
        for mode, expect, verb in (("max", "above", "raises"), ("min", "below", "lowers")):
            cv = _cv(by_alpha, o, mode)
            chosen = [float(ref[i] + d) for i, d in enumerate(cv["item_delta"])]  # held-out correctness at the fold's alpha
            iv, inputs = compute("paired_diff_ci", before=ref, after=chosen)
            out.append(
                Claim(
                    f"{name}: the cross-validated alpha in {lo:g}-{hi:g} {verb} {'agreement' if kind == 'behaviour' else 'accuracy'}",
                    iv,
                    expect,
                    "held-out change vs alpha 1",
                    PAPER,
                    primary=mode == "max",
                    paper_range=paper_range if mode == "max" else None,
                    mde=True,
                    extra={"alphas_chosen": cv["alphas"]},
                    inputs=inputs,
                )
            )
    if not any(c.primary for c in out):
        out.insert(
            0,
            Claim(
                f"The cross-validated alpha in {lo:g}-{hi:g} raises agreement / accuracy",
                None,
                "above",
                "held-out change vs alpha 1",
                PAPER,
                primary=True,
                reason="no --behaviours or --tasks: the paper's claim is about agreement and accuracy",
            ),
        )
    return sorted(out, key=lambda c: not c.primary)


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import figure, save

    grid = m["alphas"]
    fig, ax = figure(6.4, 3.6)
    for task, e in m["per_task"].items():
        key = "refusal_rate" if e["kind"] == "refusal" else "accuracy"
        ax.plot(grid, [e[key].get(str(a)) for a in grid], "o-", label=task.removeprefix("builtin:"))
    ax.axvline(1.0, color="#999", lw=0.8)
    ax.set_xlabel("alpha (FTC scale)")
    ax.set_ylabel("accuracy / agreement / refusal rate")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("alpha sweep")
    ax.legend(fontsize=7)
    save(fig, path / "alpha_sweep.png")


EXPERIMENT = Experiment(
    name="alpha-sweep",
    question="Does turning fine-tuning up or down (alpha) change behaviour agreement, task accuracy and refusals?",
    paper=PAPER,
    options=AlphaSweepOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    claims=claims,
    sources=lambda o: (
        [("statements", s) for s in o.behaviours]
        + [("questions", s) for s in o.tasks]
        + [("prompts", s) for s in (o.harmful, o.benign) if s]
    ),
    judge=lambda o: o.judge if (o.harmful or o.benign) else None,
)
