"""The "TuCo over training steps" part of the report model (pure data, no HTML): per group and step the mean
and quartiles against an independent computation, the curve's geometry (steps left to right, higher TuCo
higher up, a band around each mean), each group's first / last / highest / lowest value, the other sections
restricted to the last step, and the standalone SVG (escaped, one file)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tuco.report.load import Source
from tuco.report.model import results
from tuco.report.render import steps_svg as svg
from tuco.report.training import at_step, over_steps, series
from tuco.runs import RunResults

STEPS = [0, 50, 100, 233]  # the last step is not a multiple of every=50: training ended there


def training_rows(seed=0, groups=("harmful", "benign", "web"), n=8, responses=("harmful",)):
    rng = random.Random(seed)
    rows = []
    for step in STEPS:
        for g_index, group in enumerate(groups):
            for i in range(n):
                tuco = 0.0 if step == 0 else min(1.0, 0.05 * (g_index + 1) + step / 1000 + rng.random() * 0.02)
                row = {
                    "kind": "score",
                    "id": f"{group}/{i}@{step}",
                    "item": f"{group}/{i}",
                    "prompt": f"prompt {i}",
                    "tuco": tuco,
                    "alpha": 1.0,
                    "condition": group,
                    "step": step,
                    "epoch": step / 233,
                    "layer_ptc_l1": [1.0, 2.0],
                    "layer_ftc_l1": [tuco, tuco],
                }
                if group in responses:
                    row["tuco_response"] = 0.0 if step == 0 else tuco + 0.1
                rows.append(row)
    return rows


def test_series_are_the_mean_and_quartiles_of_each_group_at_each_step():
    rows = training_rows()
    data = series(rows)
    assert list(data) == ["tuco", "tuco_response"] and list(data["tuco_response"]) == ["harmful"]
    assert list(data["tuco"]) == ["benign", "harmful", "web"]  # natural order
    for group in ("harmful", "benign", "web"):
        for step in STEPS:
            values = [r["tuco"] for r in rows if r["condition"] == group and r["step"] == step]
            s = data["tuco"][group][step]
            assert s.n == 8 and s.mean == pytest.approx(float(np.mean(values)), abs=1e-12)
            assert (s.q1, s.q3) == pytest.approx((float(np.percentile(values, 25)), float(np.percentile(values, 75))), abs=1e-12)


def test_the_curve_runs_left_to_right_with_higher_tuco_higher_up():
    chart = over_steps(training_rows())
    assert chart is not None and chart.steps == STEPS and chart.last_step == 233
    assert [p.title for p in chart.panels] == ["TuCo at the last prompt token", "response TuCo (mean over the given response)"]
    panel = chart.panels[0]
    assert [line.group for line in panel.lines] == ["benign", "harmful", "web"]
    for line in panel.lines:
        xs = [x for x, _, _ in line.dots]
        assert xs == sorted(xs) and len(xs) == 4 and xs[0] == pytest.approx(panel.x) and xs[-1] == pytest.approx(panel.x + panel.w)
        ys = [y for _, y, _ in line.dots]
        assert ys[0] > ys[-1]  # TuCo rises from 0: the last dot is higher on the page (smaller y)
        assert all(panel.y - 1e-6 <= y <= panel.y + panel.h + 1e-6 for y in ys)
        assert len(line.band.split()) == 2 * len(STEPS) and len(line.line.split()) == len(STEPS)
        assert "step 233: mean" in line.dots[-1][2] and "n=8" in line.dots[-1][2]
    by_group = {line.group: [y for _, y, _ in line.dots][-1] for line in panel.lines}
    assert by_group["web"] < by_group["benign"] < by_group["harmful"]  # TuCo web > benign > harmful here: web is highest
    # x ticks are steps inside the run's range; y ticks inside [0, 1]
    assert all(panel.x - 1e-6 <= t.at <= panel.x + panel.w + 1e-6 for t in panel.xticks)
    assert all(0.0 <= float(t.text) <= 1.0 for t in panel.yticks)


def test_each_group_has_its_first_last_highest_and_lowest_value():
    rows = training_rows()
    chart = over_steps(rows)
    by = {(c.group, c.metric): c for c in chart.changes}
    assert set(by) == {("harmful", "tuco"), ("benign", "tuco"), ("web", "tuco"), ("harmful", "tuco_response")}
    for (group, metric), c in by.items():
        means = {s: float(np.mean([r[metric] for r in rows if r["condition"] == group and r["step"] == s])) for s in STEPS}
        assert (c.first_step, c.last_step) == (0, 233) and c.first == pytest.approx(means[0]) and c.last == pytest.approx(means[233])
        assert c.change == pytest.approx(means[233] - means[0])
        top = max(means, key=lambda s: (means[s], -s))
        assert (c.high_step, c.high) == (top, pytest.approx(means[top]))
        assert (c.low_step, c.low) == (0, 0.0) and c.n == 8


def test_the_highest_value_is_the_earliest_when_tied():
    rows = [
        {"kind": "score", "id": f"a@{s}", "tuco": v, "condition": "g", "step": s} for s, v in [(0, 0.2), (5, 0.4), (10, 0.4), (15, 0.1)]
    ]
    (c,) = over_steps(rows).changes
    assert (c.high_step, c.low_step) == (5, 15)


def test_no_chart_without_two_steps():
    rows = training_rows()
    assert over_steps([r for r in rows if r["step"] == 50]) is None
    assert over_steps([{k: v for k, v in r.items() if k != "step"} for r in rows]) is None
    assert at_step(rows, 100) == [r for r in rows if r["step"] == 100]


def test_a_training_runs_sections_show_its_last_step_and_its_table_every_step(tmp_path):
    rows = training_rows()
    res = results(Source(tmp_path, [RunResults(tmp_path / "rows.jsonl", rows)]), "run-0")
    assert res.training is not None and res.n_rows == len(rows) and res.table.total == len(rows)
    assert res.table.columns[:3] == ["id", "condition", "step"]
    assert [(label, s.n) for label, s in res.summary.lines] == [("benign", 8), ("harmful", 8), ("web", 8)]
    last = [r["tuco"] for r in rows if r["step"] == 233 and r["condition"] == "web"]
    assert dict(res.summary.lines)["web"].mean == pytest.approx(float(np.mean(last)))
    plain = results(Source(tmp_path, [RunResults(tmp_path / "rows.jsonl", at_step(rows, 233))]), "run-0")
    assert plain.training is None and plain.summary == res.summary  # the same numbers as a run of that step alone


def test_the_standalone_svg_is_one_escaped_file():
    rows = training_rows(groups=("<script>x</script>", "benign"), responses=())
    text = svg(over_steps(rows))
    root = ET.fromstring(text.split("\n", 1)[1])
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) == 2
