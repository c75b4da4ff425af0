"""The geometry of the report's charts (strips per group, per-layer small multiples, a scatter, stacked
bars): axes with ticks and every mark's position in pixels. Pure data for the SVG templates; the
statistics drawn come from ``tuco.report.groups``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tuco.palette import group_colour, stage_colour
from tuco.report.groups import Spread

Point = tuple[float, float]


def nice_step(span: float, count: int) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``count`` intervals over ``span``."""
    raw = (span or 1.0) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9)))


@dataclass(frozen=True)
class Axis:
    """A linear axis from ``lo`` to ``hi`` with round ticks inside it."""

    lo: float
    hi: float
    ticks: list[float]
    step: float

    def at(self, value: float, start: float, length: float) -> float:
        """The pixel of ``value`` on an axis drawn from ``start`` over ``length`` pixels."""
        return start + length * (value - self.lo) / ((self.hi - self.lo) or 1.0)

    def label(self, value: float) -> str:
        """A tick's text, with as many decimals as the step needs."""
        return f"{value:.{max(0, -math.floor(math.log10(self.step)))}f}"


def axis(lo: float, hi: float, count: int = 5) -> Axis:
    """An axis over [lo, hi] with about ``count`` round ticks."""
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9)
    ticks = [round(k * step, 12) for k in range(first, math.floor(hi / step + 1e-9) + 1)]
    return Axis(lo, hi, ticks, step)


def fitted_axis(values: Sequence[float], *, bounds: tuple[float, float] = (0.0, 1.0), pad: float = 0.08) -> Axis:
    """An axis fitted to ``values`` (padded by ``pad`` of their range each side, kept inside ``bounds``
    when the values are), so groups that differ by a few hundredths stay apart."""
    lo, hi = min(values), max(values)
    span = (hi - lo) or max(abs(lo) * 0.1, 0.01)
    a, b = lo - pad * span, hi + pad * span
    if lo >= bounds[0]:
        a = max(a, bounds[0])
    if hi <= bounds[1]:
        b = min(b, bounds[1])
    return axis(a, b)


@dataclass(frozen=True)
class Tick:
    """A tick's pixel position and text."""

    at: float
    text: str


@dataclass(frozen=True)
class StripRow:
    """One group's strip: box (quartiles), median, dots."""

    label: str
    y: float
    q1: float
    median: float
    q3: float
    colour: str
    dots: list[Point]
    title: str


@dataclass(frozen=True)
class Strips:
    """Strips of several groups on one fitted axis."""

    width: int
    height: int
    left: int
    bottom: int
    top: int
    ticks: list[Tick]
    rows: list[StripRow]
    axis: Axis


def strips(groups: Sequence[tuple[str, list[float], Spread]], width: int = 640, row_h: int = 26, max_dots: int = 150) -> Strips | None:
    """One row per (label, values, spread) on an axis fitted to all values (None without values); every
    ``len // max_dots``-th value is a dot when there are many."""
    shown = [g for g in groups if g[1]]
    if not shown:
        return None
    left, right, top, bottom = 190, 14, 6, 24
    height = top + bottom + row_h * len(shown)
    ax = fitted_axis([v for _, values, _ in shown for v in values])
    x = lambda v: ax.at(v, left, width - left - right)  # noqa: E731
    rows = []
    for i, (label, values, s) in enumerate(shown):
        y = top + row_h * i + row_h / 2
        step = max(1, len(values) // max_dots)
        dots = [(x(v), y + ((k * 7) % 11 - 5) * 0.8) for k, v in enumerate(sorted(values)[::step])]
        title = f"{label}: n={s.n}, median {s.median:.4f}, interquartile {s.q1:.4f} to {s.q3:.4f}"
        rows.append(StripRow(f"{label[:26]} (n={s.n})", y, x(s.q1), x(s.median), x(s.q3), group_colour(i), dots, title))
    ticks = [Tick(x(t), ax.label(t)) for t in ax.ticks]
    return Strips(width, height, left, height - bottom, top, ticks, rows, ax)


Band = tuple[list[float], list[float], list[float]]  # per layer: means, first quartiles, third quartiles


@dataclass(frozen=True)
class Series:
    """A line (SVG points) with its band (a polygon's points)."""

    name: str
    colour: str
    line: str
    band: str


@dataclass(frozen=True)
class Panel:
    """One small multiple: its frame, ticks on both axes, its series."""

    title: str
    x: float
    y: float
    w: float
    h: float
    xticks: list[Tick]
    yticks: list[Tick]
    series: list[Series]


@dataclass(frozen=True)
class Panels:
    """Small multiples on one y scale."""

    width: int
    height: int
    panels: list[Panel]


def _points(xs: Sequence[float], ys: Sequence[float]) -> str:
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys))


def layer_panels(profiles: dict[str, dict[str, Band]], panel_w: int = 220, panel_h: int = 140) -> Panels:
    """One panel per group: per-layer means as lines over their interquartile bands (``profiles[group]
    [series] = band``, coloured in palette order: PTC blue, FTC red), layer ticks below and
    L1-norm ticks on the left, every panel on one y scale from 0."""
    top = max([max(h) for p in profiles.values() for (_, _, h) in p.values() if h] + [1e-12])
    yaxis = axis(0.0, top, 4)
    cols = min(4, max(1, len(profiles)))
    n_rows = (len(profiles) + cols - 1) // cols
    panels = []
    for k, (name, series) in enumerate(profiles.items()):
        ox, oy = (k % cols) * panel_w, (k // cols) * panel_h
        x0, y0, w, h = ox + 40, oy + 18, panel_w - 50, panel_h - 40
        n = max(len(b[0]) for b in series.values())
        xaxis = axis(0, max(1, n - 1), 4)
        px = [xaxis.at(i, x0, w) for i in range(n)]
        py = lambda v, y0=y0, h=h: y0 + h - yaxis.at(v, 0, h)  # noqa: E731
        lines = [
            Series(label, group_colour(j), _points(px, [py(v) for v in m]), _points(px + px[::-1], [py(v) for v in [*hi, *lo[::-1]]]))
            for j, (label, (m, lo, hi)) in enumerate(series.items())
        ]
        xticks = [Tick(xaxis.at(t, x0, w), f"{t:g}") for t in xaxis.ticks if float(t).is_integer()]
        yticks = [Tick(py(t), yaxis.label(t)) for t in yaxis.ticks]
        panels.append(Panel(name[:30], x0, y0, w, h, xticks, yticks, lines))
    return Panels(cols * panel_w, n_rows * panel_h, panels)


@dataclass(frozen=True)
class Scatter:
    """x vs y dots with the diagonal and ticks on both axes."""

    size: int
    pad: int
    diagonal: tuple[float, float, float, float]
    points: list[Point]
    ticks: list[Tick]
    x_label: str
    y_label: str


def scatter(points: Sequence[Point], x_label: str, y_label: str, size: int = 300) -> Scatter:
    """Two runs' values prompt by prompt on one fitted axis for both coordinates."""
    pad = 40
    ax = fitted_axis([v for p in points for v in p] or [0.0, 1.0])
    f = lambda v: ax.at(v, pad, size - 2 * pad)  # noqa: E731
    dots = [(f(a), size - f(b)) for a, b in points]
    ticks = [Tick(f(t), ax.label(t)) for t in ax.ticks]
    return Scatter(size, pad, (f(ax.lo), size - f(ax.lo), f(ax.hi), size - f(ax.hi)), dots, ticks, x_label, y_label)


@dataclass(frozen=True)
class Rect:
    """A bar's part: position, width, colour and hover text."""

    x: float
    w: float
    colour: str
    title: str


@dataclass(frozen=True)
class Bar:
    """One labelled horizontal bar split into parts."""

    label: str
    y: float
    parts: list[Rect]


@dataclass(frozen=True)
class Bars:
    """Horizontal bars of shares (each bar sums to 1) with a key and share ticks."""

    width: int
    height: int
    left: int
    row_h: int
    bars: list[Bar]
    key: list[tuple[float, str, str]]
    ticks: list[Tick]


def stacked_bars(items: Sequence[tuple[str, Sequence[float]]], stage_names: Sequence[str], width: int = 640, row_h: int = 16) -> Bars:
    """One bar per (label, shares) split by stage, coloured per stage, with the stages' key."""
    left = 170
    plot_w = width - left - 10
    bars = []
    for i, (label, shares) in enumerate(items):
        x, parts = float(left), []
        for k, share in enumerate(shares):
            w = plot_w * max(0.0, float(share))
            name = stage_names[k] if k < len(stage_names) else f"stage {k}"
            parts.append(Rect(x, w, stage_colour(k), f"{name}: {float(share):.3f}"))
            x += w
        bars.append(Bar(label[:28], 4 + i * row_h, parts))
    ticks = [Tick(left + plot_w * t, f"{t:g}") for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    height = row_h * len(items) + 44
    key = [(float(left + k * 120), stage_colour(k), name[:16]) for k, name in enumerate(stage_names)]
    return Bars(width, height, left, row_h, bars, key, ticks)
