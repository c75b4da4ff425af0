"""TuCo over training steps: a training run's rows (``tuco.TucoCallback``: a ``step`` per row, the probe group
as ``condition``) as one panel per metric (TuCo at the last prompt token; response TuCo where probes carry a
response), one line per group (the mean at each step over its interquartile band, a dot per measured step),
and per group its first, last, highest and lowest value. Pure data for the SVG template; torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuco.palette import group_colour
from tuco.report.charts import Tick, axis, fitted_axis
from tuco.report.groups import Spread, natural_key, spread

METRICS = {
    "tuco": "TuCo at the last prompt token",
    "tuco_response": "response TuCo (mean over the given response)",
}


def step_of(row: dict[str, Any]) -> int | None:
    """A row's training step (None when it has none)."""
    step = row.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def series(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[int, Spread]]]:
    """[metric][group][step] -> the spread of the metric over the group's probes at that step (groups in
    natural order; metrics no row carries left out)."""
    values: dict[str, dict[str, dict[int, list[float]]]] = {}
    for r in rows:
        step = step_of(r)
        if step is None:
            continue
        group = str(r.get("condition") if r.get("condition") is not None else "all")
        for metric in METRICS:
            v = r.get(metric)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
                values.setdefault(metric, {}).setdefault(group, {}).setdefault(step, []).append(float(v))
    out: dict[str, dict[str, dict[int, Spread]]] = {}
    for metric in METRICS:
        if metric in values:
            groups = values[metric]
            out[metric] = {
                g: {s: sp for s in sorted(groups[g]) if (sp := spread(groups[g][s])) is not None} for g in sorted(groups, key=natural_key)
            }
    return out


@dataclass(frozen=True)
class StepLine:
    """One group's curve in a panel: the means as a line, the interquartile band, a dot per measured step."""

    group: str
    colour: str
    line: str
    band: str
    dots: list[tuple[float, float, str]]


@dataclass(frozen=True)
class StepPanel:
    """One metric over steps: frame, ticks, a line per group."""

    title: str
    x: float
    y: float
    w: float
    h: float
    xticks: list[Tick]
    yticks: list[Tick]
    lines: list[StepLine]


@dataclass(frozen=True)
class Change:
    """One group's metric over the run: first and last measured values, the highest and the lowest."""

    group: str
    metric: str
    first_step: int
    first: float
    last_step: int
    last: float
    high_step: int
    high: float
    low_step: int
    low: float
    n: int

    @property
    def change(self) -> float:
        """Last minus first."""
        return self.last - self.first


@dataclass(frozen=True)
class OverSteps:
    """The "TuCo over training steps" chart and its table."""

    width: int
    height: int
    panels: list[StepPanel]
    key: list[tuple[float, str, str]]  # x, colour, group
    changes: list[Change]
    steps: list[int]

    @property
    def last_step(self) -> int:
        """The last measured step."""
        return self.steps[-1]


def _points(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def over_steps(rows: Sequence[dict[str, Any]], *, panel_w: int = 420, panel_h: int = 250) -> OverSteps | None:
    """The chart of a training run's rows (None unless they carry at least two distinct steps)."""
    steps = sorted({s for r in rows if (s := step_of(r)) is not None})
    if len(steps) < 2:
        return None
    data = series(rows)
    groups = sorted({g for by_group in data.values() for g in by_group}, key=natural_key)
    colour = {g: group_colour(i) for i, g in enumerate(groups)}
    xaxis = axis(float(steps[0]), float(steps[-1]), 6)
    legend = 24
    panels = []
    for k, (metric, by_group) in enumerate(data.items()):
        ox = k * panel_w
        x0, y0, w, h = ox + 52.0, legend + 22.0, panel_w - 70.0, panel_h - legend - 62.0
        yaxis = fitted_axis([v for sp in (s for g in by_group.values() for s in g.values()) for v in (sp.q1, sp.q3, sp.mean)])
        px = lambda s, x0=x0, w=w: xaxis.at(float(s), x0, w)  # noqa: E731
        py = lambda v, y0=y0, h=h, yaxis=yaxis: y0 + h - yaxis.at(v, 0, h)  # noqa: E731
        lines = []
        for g, at in by_group.items():
            ss = list(at)
            top = [(px(s), py(at[s].q3)) for s in ss]
            bottom = [(px(s), py(at[s].q1)) for s in reversed(ss)]
            dots = [
                (
                    px(s),
                    py(at[s].mean),
                    f"{g}, step {s}: mean {at[s].mean:.4f} (interquartile {at[s].q1:.4f} to {at[s].q3:.4f}), n={at[s].n}",
                )
                for s in ss
            ]
            lines.append(StepLine(g, colour[g], _points([(px(s), py(at[s].mean)) for s in ss]), _points(top + bottom), dots))
        xticks = [Tick(px(t), f"{t:g}") for t in xaxis.ticks if float(t).is_integer()]
        yticks = [Tick(py(t), yaxis.label(t)) for t in yaxis.ticks]
        panels.append(StepPanel(METRICS[metric], x0, y0, w, h, xticks, yticks, lines))
    key = [(8.0 + 130.0 * i, colour[g], g[:18]) for i, g in enumerate(groups)]
    changes = [
        Change(
            g,
            metric,
            ss[0],
            at[ss[0]].mean,
            ss[-1],
            at[ss[-1]].mean,
            *max(((s, at[s].mean) for s in ss), key=lambda sv: (sv[1], -sv[0])),
            *min(((s, at[s].mean) for s in ss), key=lambda sv: (sv[1], sv[0])),
            at[ss[-1]].n,
        )
        for metric, by_group in data.items()
        for g, at in by_group.items()
        if (ss := list(at))
    ]
    return OverSteps(max(1, len(panels)) * panel_w, panel_h, panels, key, changes, steps)


def at_step(rows: Sequence[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """The rows measured at ``step``."""
    return [r for r in rows if step_of(r) == step]
