"""alpha-sweep's primary is the paper's claim: agreement / accuracy at the alpha cross-validated among the
alphas in 0.75-1.25, held out; alpha = 0 (the pre-trained model) is a labelled control, never primary.
Torch-free (synthetic rows)."""

from __future__ import annotations

import pytest

from tuco.errors import ConfigError
from tuco.experiments import get
from tuco.experiments.alpha_sweep import claims, metrics
from tuco.stats.claims import judge
from tuco.stats.recompute import recompute
from tuco.stats.summary import cross_validated_alpha

ALPHAS = [0.0, 0.5, 0.75, 1.0, 1.25, 1.5]
N = 20


def _rows(right: dict[float, set[int]], refused: dict[float, set[int]]) -> list[dict]:
    """A task of N items answered right where ``right[alpha]`` says, and N harmful requests refused where
    ``refused[alpha]`` says."""
    rows = []
    for a in ALPHAS:
        for i in range(N):
            ok = i in right[a]
            rows.append(
                dict(
                    task="builtin:arithmetic", task_kind="multiple-choice", alpha=a, index=i, chosen="A" if ok else "B", right="A", tuco=0.1
                )
            )
            rows.append(dict(task="refusal:harmful", task_kind="refusal", alpha=a, index=i, refused=i in refused[a], tuco=0.1))
    return rows


def test_the_primary_is_cross_validated_within_the_papers_range_and_alpha_zero_is_a_control():
    right = {a: set(range(8)) for a in ALPHAS}  # 8 of 20 at alpha 1
    right[0.5] = set(range(20))  # outside 0.75-1.25: the best alpha, never chosen
    right[1.25] = set(range(16))  # inside: +8 items
    refused = {a: set(range(18)) for a in ALPHAS}
    refused[0.0] = set()  # the pre-trained model never refuses
    rows = _rows(right, refused)
    o = get("alpha-sweep").make_options(behaviours=[], tasks=["builtin:arithmetic"], harmful="builtin:harmful", alphas=ALPHAS, folds=5)
    m = metrics(rows, o)
    found = judge(claims(rows, o, m))
    primary = [f for f in found if f.primary]
    assert [f.claim for f in primary] == ["arithmetic: the cross-validated alpha in 0.75-1.25 raises accuracy"]
    cv = m["per_task"]["builtin:arithmetic"]["cv_max"]
    assert cv["alphas"] == [1.25] * 5 and cv["delta"] == pytest.approx(8 / 20)  # 0.5 (all right) is never chosen
    by_alpha = {a: [i in right[a] for i in range(N)] for a in (0.75, 1.0, 1.25)}
    assert cv["delta"] == cross_validated_alpha(by_alpha, 5, 0, "max")["delta"]
    assert primary[0].estimate == pytest.approx(0.4) and recompute(primary[0].inputs).estimate == pytest.approx(0.4)
    assert primary[0].verdict == "direction reproduced, stronger than the paper"  # +40% against the paper's up to +5%
    (control,) = [f for f in found if f.claim.startswith("Control (sanity check): alpha=0")]
    assert not control.primary and control.verdict.startswith("exploratory: as stated (p ")
    assert control.estimate == pytest.approx(-0.9)
    top = [f for f in found if f.claim == "alpha=1.5 raises the harmful refusal rate"]
    assert top and not top[0].primary and not any(f.primary and "refusal" in f.claim for f in found)


def test_without_behaviours_or_tasks_the_primary_is_not_measured_and_refusals_never_primary():
    refused = {a: set(range(18)) for a in ALPHAS}
    refused[0.0] = set()
    rows = [r for r in _rows({a: set() for a in ALPHAS}, refused) if r["task_kind"] == "refusal"]
    o = get("alpha-sweep").make_options(behaviours=[], tasks=[], harmful="builtin:harmful", alphas=ALPHAS)
    found = judge(claims(rows, o, metrics(rows, o)))
    assert found[0].primary and found[0].verdict == "not measured" and "--behaviours or --tasks" in found[0].measured
    assert [f.primary for f in found[1:]] == [False, False]


def test_a_grid_without_an_alpha_in_the_papers_range_is_refused():
    with pytest.raises(ConfigError, match=r"--alphas 0,0.5,1,1.5: the cross-validated alpha is chosen in 0.75-1.25"):
        get("alpha-sweep").make_options(alphas=[0.0, 0.5, 1.0, 1.5])
    assert get("alpha-sweep").make_options(behaviours=[], tasks=[], harmful="builtin:harmful", alphas=[0.0, 1.0]).alphas == [0.0, 1.0]
