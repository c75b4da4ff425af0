"""The colours tuco draws with, in one place: the categorical palette of groups and stages and the
sequential TuCo scale. Pure Python (the report's SVG and the experiments' matplotlib plots share it)."""

from __future__ import annotations

# Categorical: one colour per group / series (matplotlib's tab10 order: PTC blue, FTC red first).
GROUPS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
PTC, FTC = GROUPS[0], GROUPS[1]
# Categorical: one colour per training stage of a chain.
STAGES = ["#9ecae1", "#e6550d", "#31a354", "#756bb1", "#fdae6b", "#636363"]
MISSING = "#dddddd"
# Sequential scale for TuCo in [0, 1] (ColorBrewer YlOrRd): light = pre-training, dark = fine-tuning.
STOPS = [(0.0, (255, 255, 204)), (0.25, (254, 217, 118)), (0.5, (253, 141, 60)), (0.75, (227, 26, 28)), (1.0, (128, 0, 38))]


def group_colour(index: int) -> str:
    """The categorical colour of the ``index``-th group or series (the palette repeats)."""
    return GROUPS[index % len(GROUPS)]


def stage_colour(stage: int | None) -> str:
    """The categorical colour of a stage (grey when unknown)."""
    return MISSING if stage is None else STAGES[int(stage) % len(STAGES)]


def tuco_colour(value: float | None) -> str:
    """CSS colour of a TuCo value (clamped to [0, 1]); grey for a missing value."""
    if value is None or value != value:
        return MISSING
    v = min(1.0, max(0.0, float(value)))
    for (x0, c0), (x1, c1) in zip(STOPS, STOPS[1:]):
        if v <= x1:
            t = (v - x0) / (x1 - x0)
            r, g, b = (round(a + (bb - a) * t) for a, bb in zip(c0, c1))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#800026"


def text_colour(value: float | None) -> str:
    """Black or white text, whichever reads on ``tuco_colour(value)``."""
    return "#ffffff" if value is not None and value == value and value > 0.62 else "#000000"


def tuco_gradient() -> str:
    """A CSS linear-gradient of the TuCo scale, for a legend."""
    return "linear-gradient(to right, " + ", ".join(f"{tuco_colour(x)} {round(100 * x)}%" for x, _ in STOPS) + ")"
