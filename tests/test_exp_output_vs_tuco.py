"""output-vs-tuco's one primary claim: "OutputCo falls while TuCo rises" as an intersection-union test. One
half significant and the other not is NOT significant; the halves are exploratory rows and never print a
primary verdict. Torch-free (synthetic rows); labels pinned as literal strings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuco.experiments import get
from tuco.experiments.output_vs_tuco import claims, metrics
from tuco.stats.claims import judge
from tuco.stats.intervals import mean_ci
from tuco.stats.recompute import recompute

KS = (0, 1, 2, 4, 8, 16)


def rows_with(tuco_slope: float, output_slope: float, *, seed: int = 0, n: int = 12, noise: float = 0.01) -> list[dict]:
    """Per question: TuCo and OutputCo linear in log2(1 + k) with the given mean slopes, per-question slope
    spread 0.002 and noise ``noise``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        bt, bo = tuco_slope + 0.002 * rng.normal(), output_slope + 0.002 * rng.normal()
        for k in KS:
            x = math.log2(1 + k)
            rows.append(
                dict(
                    id=f"k{k}-{i}",
                    item=i,
                    k=k,
                    condition=f"k={k}",
                    tuco=0.2 + bt * x + noise * rng.normal(),
                    output_co=0.4 + bo * x + noise * rng.normal(),
                    kl_ft_pt=1.0 + noise * rng.normal(),
                )
            )
    return rows


def _findings(rows: list[dict]):
    o = get("output-vs-tuco").make_options()
    return judge(claims(rows, o, metrics(rows, o)))


def _slopes(rows: list[dict], key: str) -> list[float]:
    out = []
    for i in sorted({r["item"] for r in rows}):
        pts = [(math.log2(1 + r["k"]), r[key]) for r in rows if r["item"] == i]
        mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
        out.append(sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts))
    return out


def test_one_half_significant_and_the_other_not_is_not_significant():
    rows = rows_with(0.02, 0.0)  # TuCo rises clearly, OutputCo stays put
    primary, tuco, output, kl = _findings(rows)
    assert [f.primary for f in (primary, tuco, output, kl)] == [True, False, False, False]
    assert tuco.p < 1e-6 and output.p > 0.05
    assert primary.p == output.p and primary.p_holm == output.p  # the larger of the two halves' p
    assert primary.verdict == "not significant"
    assert tuco.verdict.startswith("exploratory: as stated (p ")
    assert output.verdict.startswith("exploratory: not significant (p ")
    # the interval shown is TuCo's (what the estimate is about), said so in the row
    assert (primary.estimate, primary.low, primary.high) == (tuco.estimate, tuco.low, tuco.high)
    assert "interval: TuCo's" in primary.measured and "intersection-union" in primary.method
    iv = mean_ci(_slopes(rows, "tuco"))
    assert primary.estimate == pytest.approx(iv.estimate) and (primary.low, primary.high) == pytest.approx((iv.low, iv.high))


def test_the_other_way_round_and_the_wrong_direction():
    primary, tuco, output, _ = _findings(rows_with(0.0, -0.02))  # OutputCo falls, TuCo stays put
    assert output.p < 1e-6 and primary.p == tuco.p > 0.05 and primary.verdict == "not significant"
    primary, tuco, output, _ = _findings(rows_with(0.02, 0.02))  # both significant, OutputCo on the wrong side
    assert tuco.p < 1e-6 and output.p < 1e-6 and primary.p == 1.0 and primary.verdict == "not significant"
    assert output.verdict.startswith("exploratory: the opposite (p ")


def test_both_halves_significant_is_significant_and_re_derives():
    primary, tuco, output, _ = _findings(rows_with(0.02, -0.02))
    assert primary.p == max(tuco.p, output.p) < 0.05
    assert primary.verdict == "direction consistent"  # the paper gives no number on the slope scale
    again = recompute(primary.inputs)
    assert (again.estimate, again.low, again.high, again.p) == (primary.estimate, primary.low, primary.high, primary.p)
    assert primary.extra["p_tuco"] == tuco.p and primary.extra["p_output_co"] == output.p
