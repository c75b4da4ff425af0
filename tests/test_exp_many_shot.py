"""many-shot's design as analysed: each target draws its own shots from the pool (reproducibly), and the slope
of TuCo over log2(1 + k) is a crossed slope (targets in topics, the shots each prompt contains as random
effects). Simulated nulls with shot, target and topic variance hold the level; the fewest units are stated
and below them the primary is "not testable on this pair". Torch-free (synthetic rows)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuco.experiments import get
from tuco.experiments.many_shot import (
    MIN_UNITS,
    claims,
    crossed_slope,
    drawn,
    metrics,
    shot_ids,
    shot_order,
    slope_inputs,
)
from tuco.stats.claims import NOT_TESTABLE, judge
from tuco.stats.crossed import SlopeDesign

KS = (0, 1, 2, 4, 8, 16)
KINDS = ("compliant", "refusal")


def synthetic_rows(
    rng: np.random.Generator,
    *,
    targets: int = 16,
    topics: int = 8,
    pool: int = 16,
    beta: tuple[float, float] = (-0.01, -0.01),
    harm: tuple[float, float] = (0.0, 0.0),
    shot_sd: float = 0.003,
    target_sd: float = 0.003,
    topic_sd: float = 0.002,
    noise: float = 0.01,
    harmful_at_0: float = 0.2,
) -> list[dict]:
    """Rows as a jailbreak run writes them: per target its own draw of shots (``shot_order``), TuCo = target
    intercept + (beta + target slope + topic slope) x + the sum of the prompt's shots' effects + noise, with
    x = log2(1 + k), every random term drawn per kind (a shot's effect under a compliant answer is not its
    effect under a refusal). ``beta``: the kinds' mean slopes (equal: the null of the primary's TuCo part, a
    common length effect of -0.01 per doubling); ``harm``: the kinds' harmful-answer probability per doubling."""
    shot = {kd: rng.normal(0, shot_sd, pool) for kd in KINDS}
    topic = {kd: rng.normal(0, topic_sd, topics) for kd in KINDS}
    rows = []
    for i in range(targets):
        order = shot_order(pool, f"request {i}", 0)
        a = 0.3 + rng.normal(0, 0.02)
        own = {kd: rng.normal(0, target_sd) for kd in KINDS}
        t = f"topic {i % topics}"
        refused0 = bool(rng.random() >= harmful_at_0)
        rows.append(
            dict(id=f"none-k0-{i}", item=f"t{i}", k=0, shots="none", shot_ids=[], topic=t, tuco=a + rng.normal(0, noise), refused=refused0)
        )
        for b, h, kd in zip(beta, harm, KINDS):
            for k in KS[1:]:
                picks = drawn(order, k)
                x = math.log2(1 + k)
                y = a + (b + own[kd] + topic[kd][i % topics]) * x + shot[kd][picks].sum() + rng.normal(0, noise)
                p_harm = min(1.0, max(0.0, harmful_at_0 + h * x))
                rows.append(
                    dict(
                        id=f"{kd}-k{k}-{i}",
                        item=f"t{i}",
                        k=k,
                        shots=kd,
                        shot_ids=shot_ids(picks, kd),
                        topic=t,
                        tuco=y,
                        refused=bool(rng.random() >= p_harm),
                    )
                )
    return rows


def test_each_target_draws_its_own_shots_reproducibly():
    orders = [shot_order(16, f"request {i}", 0) for i in range(16)]
    assert all(sorted(o) == list(range(16)) for o in orders)  # a permutation of the pool
    assert len({tuple(o) for o in orders}) == 16  # every target its own draw
    assert len({o[0] for o in orders}) > 4  # even its first shot varies between targets
    assert orders[3] == shot_order(16, "request 3", 0)  # the same draw in every run with the seed
    assert shot_order(16, "request 3", 1) != orders[3]  # another seed, another draw
    picks = drawn(orders[0], 20)  # beyond the pool: cycled; each k-shot prompt extends the (k - 1)-shot one
    assert picks[:16] == orders[0] and picks[16:] == orders[0][:4] and drawn(orders[0], 5) == picks[:5]
    assert shot_ids([3, 7], "refusal") == shot_ids([3, 7], "compliant") == ["shot3", "shot7"]  # one stimulus, two answers
    assert shot_ids([3, 9], "neutral") == ["neutral3", "neutral3"]


def _batch(reps: int, seed: int, **kw) -> tuple[dict, np.ndarray]:
    """``slope_inputs`` of the primary's TuCo part (compliant - refusal) on ``reps`` synthetic runs: the design
    (the same for every run: the draws are seeded per target) and the values, one run per row."""
    rng = np.random.default_rng(seed)
    first = None
    values = []
    for _ in range(reps):
        got = slope_inputs(synthetic_rows(rng, **kw), KINDS)
        assert isinstance(got, dict)
        first = first or got
        assert got["rows"] == first["rows"] and got["members"] == first["members"]
        values.append(got["values"])
    return first, np.array(values)


@pytest.mark.parametrize(
    "kw",
    [
        {},  # shot SD 0.003, target slope SD 0.003, topic slope SD 0.002, noise 0.01
        {"shot_sd": 0.01, "target_sd": 0.001},  # the shots carry most of the variance
        {"topic_sd": 0.006, "topics": 6},  # the topics do, with the fewest topics a verdict allows
    ],
)
def test_the_slope_difference_holds_its_level_under_a_null_with_shot_target_and_topic_variance(kw):
    """Measured (1000 runs each): FPR 0.029 / 0.004 / 0.021 at nominal 0.05, coverage of a true difference
    of -0.01 per doubling 0.974 / 0.999 / 0.979 (conservative where the shots dominate: with k up to the
    pool's size every target's longest prompt holds the whole pool). The analysis's own p for one run is
    the design's."""
    inputs, y = _batch(1000, 7, **kw)
    design = SlopeDesign(inputs["rows"], inputs["x"], members=inputs["members"], row_groups=inputs["row_groups"])
    fpr = float(np.mean(design.p_values(y, draws=2000)["p"] < 0.05))
    assert fpr <= 0.065, fpr
    shifted, y_true = _batch(1000, 8, beta=(-0.02, -0.01), **kw)
    assert shifted["members"] == inputs["members"]
    cover = float(np.mean(design.p_values(y_true, null=-0.01, draws=2000)["p"] >= 0.05))
    assert cover >= 0.93, cover
    rows = synthetic_rows(np.random.default_rng(7), **kw)
    one = crossed_slope(rows, KINDS)
    again = design.p_values(np.array([slope_inputs(rows, KINDS)["values"]]), draws=10000, seed=0)["p"][0]
    assert one.interval is not None and one.interval.p == pytest.approx(float(again), rel=1e-9)
    assert one.interval.n == (16, 16, kw.get("topics", 8))


def test_a_single_kinds_slope_holds_its_level():
    """The behaviour's own slope (the primary's "TuCo falls" part), null slope 0: measured FPR 0.032 (2000 runs)."""
    rng = np.random.default_rng(11)
    got = [slope_inputs(synthetic_rows(rng, beta=(0.0, 0.0)), KINDS[:1]) for _ in range(2000)]
    design = SlopeDesign(got[0]["rows"], got[0]["x"], members=got[0]["members"], row_groups=got[0]["row_groups"])
    fpr = float(np.mean(design.p_values(np.array([g["values"] for g in got]), draws=2000)["p"] < 0.05))
    assert fpr <= 0.065, fpr


def _primary(rows: list[dict]):
    o = get("many-shot").make_options(ks=list(KS))
    found = judge(claims(rows, o, metrics(rows, o)))
    assert found[0].primary
    return found[0], found


def test_the_primary_needs_six_targets_shots_and_topics_and_a_pair_that_refuses():
    """A strong, consistent effect: TuCo falls 0.05 per doubling faster with compliant shots, which make half
    the answers harmful at k = 1 and all of them from k = 2 (refusal shots: none). With the fewest units (6
    targets, 6 shots, 6 topics) the design reaches p < 0.05; with 5 of any it is not testable, whatever the
    data say."""
    strong = dict(beta=(-0.06, -0.01), harm=(0.5, 0.0), harmful_at_0=0.0, noise=0.002, shot_sd=0.0005, target_sd=0.001, topic_sd=0.0005)
    at_min = dict(targets=MIN_UNITS, topics=MIN_UNITS, pool=MIN_UNITS, **strong)
    primary, found = _primary(synthetic_rows(np.random.default_rng(0), **at_min))
    assert primary.verdict == "direction consistent", (primary.verdict, primary.measured)
    assert primary.p_holm < 0.05 and "intersection-union" in primary.method and primary.n == [6, 6, 6]
    assert primary.estimate == pytest.approx(found[1].estimate) and primary.p == max(
        primary.extra[f"p_{k}"] for k in ("tuco_difference", "tuco_falls", "harmful_difference")
    )
    for short, what in ((dict(targets=5, topics=5), "5 targets, 5 topics"), (dict(pool=5), "5 shots")):
        primary, found = _primary(synthetic_rows(np.random.default_rng(0), **{**at_min, **short}))
        assert primary.verdict == NOT_TESTABLE and what in primary.measured, primary.measured
        assert found[1].verdict == NOT_TESTABLE  # the exploratory slopes say it too
    always = synthetic_rows(np.random.default_rng(0), **{**at_min, "harmful_at_0": 1.0})  # never refuses, even without shots
    primary, _ = _primary(always)
    assert primary.verdict == NOT_TESTABLE and "cannot raise the harmful-answer rate" in primary.measured


def test_the_primary_is_not_significant_when_the_shots_do_not_work():
    """TuCo falls faster with compliant shots, but the harmful rate does not rise: the intersection-union
    test takes the largest part's p, so the claim fails."""
    rows = synthetic_rows(np.random.default_rng(3), beta=(-0.06, -0.01), harm=(0.0, 0.0), noise=0.002, shot_sd=0.0005, target_sd=0.001)
    primary, found = _primary(rows)
    assert primary.extra["p_tuco_difference"] < 0.001 and primary.p >= max(0.05, primary.extra["p_harmful_difference"])
    assert primary.verdict == "not significant" and found[1].verdict.startswith("exploratory: as stated")


def test_rows_without_shot_ids_are_not_analysed():
    rows = synthetic_rows(np.random.default_rng(0))
    for r in rows:
        del r["shot_ids"]
    primary, _ = _primary(rows)
    assert primary.verdict == "not measured" and "run again" in primary.measured
