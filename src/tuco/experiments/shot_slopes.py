"""k in-context shots before each target, as a sample: each target's own draw of shots from the pool, the
prompts they make, and the crossed slope of a measure over the dose log2(1 + k) (docs/method.md 5.2, 9.3).

The shots are a SAMPLE: each target draws its own from the pool (``shot_order``: seeded by the run's seed
and the target, so reproducible; its k-shot prompt is the first k of its draw, the same pool entries under
the behaviour's and the control's answers), and every slope over log2(1 + k) is a crossed slope
(``stats.crossed.crossed_slope_ci``): targets nested in topics, the shots each prompt contains as a
multi-membership random effect, so the interval speaks for new shots, new targets and new topics (one shot
set shared by every target would copy one draw's effect onto every target). Used by many-shot (jailbreak)
and many-shot-persona.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuco.measures.prompts import Prompt
from tuco.measures.sampling import row_seed
from tuco.stats.claims import Claim
from tuco.stats.crossed import min_stimuli
from tuco.stats.intervals import Interval

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

#: The fewest targets, distinct shots and topics (where the targets have topics) with which a crossed slope
#: can reach p < 0.05 without leaning on normal random effects (a sign-flip floor of 2 / 2^n; ``shortfall``).
MIN_UNITS = min_stimuli(distribution_free=True)


# --------------------------------------------------------------------------------------------
# Each target's own shots, and the prompts they make.
# --------------------------------------------------------------------------------------------


def shot_order(pool_size: int, target: str, seed: int) -> list[int]:
    """The order in which one target's shots are drawn from the pool (indices 0 .. pool_size - 1): a
    permutation seeded by (``seed``, the target's text) alone (``measures.sampling.row_seed``), so every
    target draws its own shots, the same ones in every run with that seed, whatever the other targets."""
    order = list(range(pool_size))
    random.Random(row_seed(seed, f"many-shot:{target}")).shuffle(order)
    return order


def drawn(order: list[int], k: int) -> list[int]:
    """The pool indices of the k shots before a target: the first k of its order (cycled when k exceeds the
    pool), so its (k + 1)-shot prompt extends its k-shot prompt."""
    return [order[i % len(order)] for i in range(k)] if order else []


def pool_ids(picks: list[int]) -> list[str]:
    """The identity of each pool shot in a prompt (``members`` of the crossed slope): a pool entry is one
    stimulus whatever its answer (compliant / refusal, matching / opposite)."""
    return [f"shot{j}" for j in picks]


@dataclass(frozen=True)
class Condition:
    """One measurement of a shot design: ``k`` shots of ``kind`` before every target (k = 0: kind "none",
    the one no-shot measurement that every kind shares)."""

    k: int
    kind: str

    @property
    def name(self) -> str:
        return "k=0" if self.k == 0 else f"{self.kind} k={self.k}"


def conditions(ks: Sequence[int], kinds: Sequence[str]) -> list[Condition]:
    """The measurements of a run, in order: k = 0 once (no shots), then each kind at each k >= 1."""
    return [Condition(k, kind) for k in ks for kind in (["none"] if k == 0 else kinds)]


def shot_prompts(
    c: Condition,
    targets: Sequence[Any],
    orders: list[list[int]],
    turns: dict[str, list[tuple[str, str]]],
    *,
    question: Callable[[Any], str],
    ids: Callable[[list[int], str], list[str]],
    extra: Callable[[Any], dict[str, Any]],
) -> list[Prompt]:
    """The prompts of one condition: per target its first ``k`` drawn shots of the kind (``turns[kind][j]``:
    (question, answer) of pool entry j) as chat turns, then the target's ``question``. Each prompt's extra
    names its condition, kind, k, item (``t<i>``), shot ids (``ids``) and the target's own fields (``extra``)."""
    prompts = []
    for i, t in enumerate(targets):
        picks = drawn(orders[i], c.k)
        info: dict[str, Any] = {"condition": c.name, "shots": c.kind, "k": c.k, "item": f"t{i}", "shot_ids": ids(picks, c.kind)}
        msgs: list[dict[str, str]] = []
        for j in picks if c.k else []:
            q, a = turns[c.kind][j]
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        msgs.append({"role": "user", "content": question(t)})
        prompts.append(Prompt(f"{c.kind}-k{c.k}-{i}", messages=msgs, extra=info | extra(t)))
    return prompts


def fits(model: Decomposable, prompts: list[Prompt], extra: int) -> bool:
    """Whether every prompt, with ``extra`` tokens after it, fits the model's context (ks beyond it are skipped)."""
    from tuco.measures.prompts import encode

    if model.max_length is None:
        return True
    return max(len(encode(model.tokenizer, p, chat=True)) for p in prompts) + extra <= model.max_length


def kind_rows(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """A shot kind's rows with the shared k = 0 rows."""
    return [r for r in rows if r["shots"] in (kind, "none")]


# --------------------------------------------------------------------------------------------
# Slopes over k with the shots and the targets as samples (stats.crossed.crossed_slope_ci).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slope:
    """A crossed slope (``interval``, its ``inputs`` for ``stats.recompute``) or why there is none."""

    interval: Interval | None
    inputs: dict[str, Any] | None
    reason: str = ""


def _series(rows: list[dict[str, Any]], kind: str, key: str) -> dict[str, dict[int, dict[str, Any]]]:
    """item -> k -> {value, shot ids, topic} of a kind's rows (the shared k = 0 rows included)."""
    from tuco.runs.schema import item_of

    out: dict[str, dict[int, dict[str, Any]]] = {}
    for r in kind_rows(rows, kind):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
            ids = r.get("shot_ids")
            out.setdefault(item_of(r), {})[int(r["k"])] = {
                "value": float(v),
                "ids": [str(i) for i in ids] if isinstance(ids, list) else None,
                "topic": r.get("topic"),
            }
    return out


def dose(k: int, scale: str = "log2") -> float:
    """The dose of k shots: log2(1 + k) (the papers' grids double k), or ``"any"``: 1 with shots, 0 without
    (the slope is then the mean over k >= 1 minus the value at k = 0: what shots do at all, whatever the
    curve's shape; a step at the first shot, as a greedy jailbreak's harmful answers take, fits it exactly)."""
    return math.log2(1 + k) if scale == "log2" else float(k > 0)


def slope_inputs(rows: list[dict[str, Any]], kinds: Sequence[str], key: str = "tuco", scale: str = "log2") -> dict[str, Any] | str:
    """The inputs of ``crossed_slope_ci`` for the slope of ``key`` over the dose (``dose``): of the first kind's rows,
    or (two kinds) of the first kind's values minus the second's at the same target and k (the k = 0 row is
    shared, so there the difference is 0; the slope of the difference is the difference of the slopes).
    ``members``: the shots each value's prompt(s) contain (a shot shared by both kinds, the same pool entry
    with another answer, counts once: its effect on the difference is one random effect); ``row_groups``: the
    targets' topics, where the rows name them. A reason (str) when there is nothing to analyse."""
    first = _series(rows, kinds[0], key)
    second = _series(rows, kinds[1], key) if len(kinds) > 1 else None
    values: list[float] = []
    items: list[str] = []
    x: list[float] = []
    members: list[list[str]] = []
    topics: list[str] = []
    for item, by_k in first.items():
        ks = sorted(k for k in by_k if second is None or k in second.get(item, {}))
        if len({dose(k, scale) for k in ks}) < 2:
            continue  # fewer than two ks measured for this target: no slope
        for k in ks:
            a = by_k[k]
            ids = a["ids"]
            value = a["value"]
            if second is not None:
                b = second[item][k]
                value -= b["value"]
                ids = None if ids is None or b["ids"] is None else ids if ids == b["ids"] else ids + b["ids"]
            if ids is None:
                return "rows without shot ids (a run from before each target drew its own shots): run again"
            values.append(value)
            items.append(item)
            x.append(dose(k, scale))
            members.append(ids)
            topics.append(str(a["topic"]) if a["topic"] is not None else item)
    if len(set(items)) < 2:
        return f"{len(set(items))} targets measured at two or more ks"
    inputs: dict[str, Any] = {"values": values, "rows": items, "x": x, "members": members}
    if any(r.get("topic") is not None for r in rows):
        inputs["row_groups"] = topics
    return inputs


def design_counts(inputs: dict[str, Any]) -> dict[str, int]:
    """Targets, distinct shots and topics (0: the targets have none) of a slope's inputs."""
    return {
        "targets": len(set(inputs["rows"])),
        "shots": len({m for ms in inputs["members"] for m in ms}),
        "topics": len(set(inputs["row_groups"])) if "row_groups" in inputs else 0,
    }


def shortfall(inputs: dict[str, Any]) -> str:
    """Why the design cannot reach p < 0.05 without leaning on normal random effects ("" when it can): it
    needs ``MIN_UNITS`` targets, distinct shots and (where the targets have topics) topics: with fewer
    units of any of them, no test that assumes only symmetric effects of that unit can go below 2 / 2^n
    (``stats.crossed.min_stimuli(distribution_free=True)``; 5 units that all agree give 0.0625)."""
    got = design_counts(inputs)
    short = [f"{got[u]} {u}" for u in ("targets", "shots", "topics") if (u != "topics" or got[u]) and got[u] < MIN_UNITS]
    if not short:
        return ""
    return f"{', '.join(short)}: the design reaches p < 0.05 with at least {MIN_UNITS} targets, distinct shots and topics"


def crossed_slope(rows: list[dict[str, Any]], kinds: Sequence[str], key: str = "tuco", seed: int = 0, scale: str = "log2") -> Slope:
    """The crossed slope of ``key`` over the dose (``slope_inputs``) through ``stats.recompute.compute``:
    an interval that speaks for new targets, new topics and new shots drawn from the pool."""
    from tuco.stats.recompute import compute

    inputs = slope_inputs(rows, kinds, key, scale)
    if isinstance(inputs, str):
        return Slope(None, None, inputs)
    try:
        iv, record = compute("crossed_slope_ci", **inputs, seed=seed)
    except ValueError as err:
        return Slope(None, None, str(err))
    return Slope(iv, record)


def slope_claim(claim: str, s: Slope, *, expect: str, what: str, paper: str | None) -> Claim:
    """An exploratory claim on a crossed slope: "not testable on this pair" when the design has fewer than
    ``MIN_UNITS`` targets, shots or topics (``shortfall``), "not measured" with the reason when there is no slope."""
    testable = s.inputs is None or not shortfall(s.inputs)
    reason = s.reason or (shortfall(s.inputs) if s.inputs is not None else "")
    return Claim(claim, s.interval, expect, what, paper, reason=reason, inputs=s.inputs, min_n=MIN_UNITS, testable=testable)
