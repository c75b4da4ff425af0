"""Matplotlib helpers shared by the experiments' plots (Agg backend: files only, no display)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.palette import FTC, PTC, group_colour

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def figure(width: float = 6.0, height: float = 3.4, nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A new figure and axes (a grid with ``nrows`` x ``ncols``) on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)


def save(fig: Figure, path: Path) -> None:
    """Save as PNG and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def strips(groups: Mapping[str, Sequence[float]], title: str, path: Path, xlabel: str = "TuCo") -> None:
    """One row per group on a shared axis: a box (quartiles) and every value as a jittered dot, with n.
    Readable for any number of groups (unlike overlaid histograms)."""
    names = [g for g in groups if groups[g]]
    fig, ax = figure(6.0, 0.45 * max(2, len(names)) + 1.0)
    rng = random.Random(0)
    for i, name in enumerate(names):
        vals = list(groups[name])
        y = len(names) - 1 - i
        ax.boxplot(
            [vals],
            positions=[y],
            orientation="horizontal",
            widths=0.5,
            showfliers=False,
            medianprops={"color": "#333"},
            boxprops={"color": "#999"},
            whiskerprops={"color": "#999"},
            capprops={"color": "#999"},
        )
        ax.scatter(vals, [y + rng.uniform(-0.18, 0.18) for _ in vals], s=8, alpha=0.55, color=group_colour(i), zorder=3)
    ax.set_yticks(range(len(names)), [f"{n} (n={len(groups[n])})" for n in reversed(names)], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    save(fig, path)


def series_with_ci(
    x: Sequence[float],
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    title: str,
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
    right: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]] | None = None,
    right_label: str = "",
) -> None:
    """Lines with 95% interval bands: ``series[name] = (means, lows, highs)`` over ``x``; optional
    second axis on the right (rates)."""
    fig, ax = figure(6.2, 3.4)
    for i, (name, (m, lo, hi)) in enumerate(series.items()):
        ax.plot(x, m, "o-", color=group_colour(i), label=name)
        ax.fill_between(x, lo, hi, color=group_colour(i), alpha=0.15)
    if log_x:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles, labels = ax.get_legend_handles_labels()
    if right:
        ax2 = ax.twinx()
        for j, (name, (m, lo, hi)) in enumerate(right.items()):
            c = group_colour(len(series) + j)
            ax2.plot(x, m, "s--", color=c, label=name)
            ax2.fill_between(x, lo, hi, color=c, alpha=0.12)
        ax2.set_ylim(-0.05, 1.05)
        ax2.set_ylabel(right_label)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=7, loc="best")
    ax.set_title(title, fontsize=10)
    save(fig, path)


def layer_profiles(profiles: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, path: Path) -> None:
    """Small multiples, one panel per group: mean ||PTC_l||_1 and ||FTC_l||_1 per layer (shared y axis)."""
    names = list(profiles)
    if not names:
        return
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = figure(2.3 * cols, 1.9 * rows + 0.4, rows, cols, sharey=True, squeeze=False)
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        ptc, ftc = profiles[name]
        ax.plot(range(len(ptc)), ptc, color=PTC, label="PTC")
        ax.plot(range(len(ftc)), ftc, color=FTC, label="FTC")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    save(fig, path)
