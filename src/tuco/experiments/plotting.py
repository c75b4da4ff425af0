"""Matplotlib helpers shared by the experiments' plots (Agg backend: files only, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def figure(width: float = 6.0, height: float = 3.4) -> tuple[Any, Any]:
    """A new figure and axes on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def save(fig: Any, path: Path) -> None:
    """Save as PNG and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def histograms(groups: dict[str, list[float]], title: str, path: Path, xlabel: str = "TuCo") -> None:
    """One translucent histogram per group on [0, 1]."""
    fig, ax = figure()
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, (name, vals) in enumerate(groups.items()):
        ax.hist(vals, bins=20, range=(0, 1), alpha=0.55, color=colours[i % len(colours)], label=f"{name} (n={len(vals)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("prompts")
    ax.set_title(title)
    ax.legend()
    save(fig, path)
