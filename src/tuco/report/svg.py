"""Small inline SVG charts (histograms, per-layer profiles) and the TuCo colour scale. Pure Python."""

from __future__ import annotations

from html import escape

# Sequential scale for TuCo in [0, 1] (ColorBrewer YlOrRd): light = pre-training, dark = fine-tuning.
STOPS = [(0.0, (255, 255, 204)), (0.25, (254, 217, 118)), (0.5, (253, 141, 60)), (0.75, (227, 26, 28)), (1.0, (128, 0, 38))]
GROUP_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def colour(value: float | None) -> str:
    """CSS colour of a TuCo value (clamped to [0, 1]); grey for a missing value."""
    if value is None or value != value:
        return "#dddddd"
    v = min(1.0, max(0.0, float(value)))
    for (x0, c0), (x1, c1) in zip(STOPS, STOPS[1:]):
        if v <= x1:
            t = (v - x0) / (x1 - x0)
            r, g, b = (round(a + (bb - a) * t) for a, bb in zip(c0, c1))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#800026"


def text_colour(value: float | None) -> str:
    """Black or white text, whichever reads on ``colour(value)``."""
    return "#ffffff" if value is not None and value == value and value > 0.62 else "#000000"


def legend_gradient() -> str:
    """A CSS linear-gradient of the scale, for the legend."""
    return "linear-gradient(to right, " + ", ".join(f"{colour(x)} {round(100 * x)}%" for x, _ in STOPS) + ")"


def histogram(groups: dict[str, list[float]], bins: int = 20, width: int = 640, height: int = 220) -> str:
    """Overlaid histograms (outlined steps) of TuCo per group on [0, 1], as an SVG string."""
    pad_l, pad_b, pad_t = 40, 28, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    counts = {}
    for name, values in groups.items():
        c = [0] * bins
        for v in values:
            if v is not None and v == v:
                c[min(bins - 1, max(0, int(float(v) * bins)))] += 1
        total = max(1, sum(c))
        counts[name] = [x / total for x in c]
    top = max([max(c) for c in counts.values()] + [1e-9])
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="TuCo histogram">']
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" stroke="#444"/>')
    for i in range(0, 11, 2):
        x = pad_l + plot_w * i / 10
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" font-size="11" text-anchor="middle">{i / 10:.1f}</text>')
    parts.append(f'<text x="4" y="{pad_t + 10}" font-size="11">{top:.0%}</text>')
    for k, (name, c) in enumerate(counts.items()):
        col = GROUP_COLOURS[k % len(GROUP_COLOURS)]
        pts = []
        for b, frac in enumerate(c):
            x0, x1 = pad_l + plot_w * b / bins, pad_l + plot_w * (b + 1) / bins
            y = pad_t + plot_h * (1 - frac / top)
            pts += [f"{x0:.1f},{y:.1f}", f"{x1:.1f},{y:.1f}"]
        poly = f"{pad_l},{pad_t + plot_h} " + " ".join(pts) + f" {pad_l + plot_w},{pad_t + plot_h}"
        parts.append(f'<polygon points="{poly}" fill="{col}" fill-opacity="0.18" stroke="{col}" stroke-width="1.5"><title>{escape(name)}</title></polygon>')
    parts.append("</svg>")
    return "".join(parts)


def layer_profile(series: dict[str, list[float]], width: int = 640, height: int = 220) -> str:
    """Lines of per-layer values (e.g. mean ||PTC_l||_1 and ||FTC_l||_1) over the layer index, as SVG."""
    pad_l, pad_b, pad_t = 50, 28, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    n = max((len(v) for v in series.values()), default=0)
    top = max([max(v) for v in series.values() if v] + [1e-12])
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="per-layer profile">']
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" stroke="#444"/>')
    parts.append(f'<text x="4" y="{pad_t + 10}" font-size="11">{top:.3g}</text>')
    step = max(1, n // 10)
    for i in range(0, n, step):
        x = pad_l + (plot_w * i / max(1, n - 1))
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" font-size="11" text-anchor="middle">{i}</text>')
    for k, (name, values) in enumerate(series.items()):
        col = GROUP_COLOURS[k % len(GROUP_COLOURS)]
        pts = " ".join(
            f"{pad_l + plot_w * i / max(1, n - 1):.1f},{pad_t + plot_h * (1 - v / top):.1f}" for i, v in enumerate(values)
        )
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2"><title>{escape(name)}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)
