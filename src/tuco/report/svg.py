"""Small inline SVG charts (strips per group, per-layer small multiples, scatter) and the TuCo colour scale. Pure Python."""

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


def _quantile(sorted_values: list[float], q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def strips(groups: dict[str, list[float]], width: int = 640, row_h: int = 26, lo: float = 0.0, hi: float = 1.0, max_dots: int = 150) -> str:
    """One row per group on a shared axis: the interquartile box, the median, and the values as dots
    (every ``len // max_dots``-th when there are many). Readable for any number of groups."""
    names = [n for n, v in groups.items() if v]
    pad_l, pad_r, pad_t, pad_b = 170, 14, 6, 24
    height = pad_t + pad_b + row_h * max(1, len(names))
    plot_w = width - pad_l - pad_r
    vals = [v for n in names for v in groups[n]]
    if vals:
        lo, hi = min(lo, min(vals)), max(hi, max(vals))
    span = (hi - lo) or 1.0
    x = lambda v: pad_l + plot_w * (v - lo) / span  # noqa: E731
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="values per group">'
    ]
    for t in range(6):
        v = lo + span * t / 5
        parts.append(
            f'<line x1="{x(v):.1f}" y1="{pad_t}" x2="{x(v):.1f}" y2="{height - pad_b}" stroke="#eee"/>'
            f'<text x="{x(v):.1f}" y="{height - 8}" font-size="10" text-anchor="middle">{v:.2f}</text>'
        )
    for i, name in enumerate(names):
        values = sorted(groups[name])
        y = pad_t + row_h * i + row_h / 2
        col = GROUP_COLOURS[i % len(GROUP_COLOURS)]
        q1, med, q3 = (_quantile(values, q) for q in (0.25, 0.5, 0.75))
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{escape(name[:24])} (n={len(values)})</text>')
        parts.append(
            f'<rect x="{x(q1):.1f}" y="{y - 7:.1f}" width="{max(1.0, x(q3) - x(q1)):.1f}" height="14" fill="{col}" fill-opacity="0.15" stroke="{col}"/>'
        )
        parts.append(f'<line x1="{x(med):.1f}" y1="{y - 8:.1f}" x2="{x(med):.1f}" y2="{y + 8:.1f}" stroke="#222" stroke-width="2"/>')
        step = max(1, len(values) // max_dots)
        dots = "".join(f'<circle cx="{x(v):.1f}" cy="{y + ((k * 7) % 11 - 5) * 0.8:.1f}" r="1.8"/>' for k, v in enumerate(values[::step]))
        parts.append(f'<g fill="{col}" fill-opacity="0.6">{dots}</g>')
        parts.append(f"<title>{escape(name)}: median {med:.3f}, IQR {q1:.3f}-{q3:.3f}</title>")
    parts.append("</svg>")
    return "".join(parts)


def layer_multiples(
    profiles: dict[str, dict[str, tuple[list[float], list[float], list[float]]]], panel_w: int = 210, panel_h: int = 120
) -> str:
    """Small multiples, one panel per group: per-layer lines (means) with their spread as a band
    (``profiles[group][series] = (means, lows, highs)``), all panels on one y scale."""
    names = list(profiles)
    top = max([max(h) for p in profiles.values() for (_, _, h) in p.values() if h] + [1e-12])
    cols = min(4, max(1, len(names)))
    rows = (len(names) + cols - 1) // cols
    width, height = cols * panel_w, rows * (panel_h + 18)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="per-layer profiles">'
    ]
    for k, name in enumerate(names):
        ox, oy = (k % cols) * panel_w, (k // cols) * (panel_h + 18)
        parts.append(f'<text x="{ox + 6}" y="{oy + 12}" font-size="11">{escape(name[:30])}</text>')
        x0, y0, w, h = ox + 8, oy + 18, panel_w - 16, panel_h - 10
        parts.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#ddd"/>')
        for j, (series, (mean, low, high)) in enumerate(profiles[name].items()):
            n = len(mean)
            col = GROUP_COLOURS[j % len(GROUP_COLOURS)]
            px = lambda i, x0=x0, w=w, n=n: x0 + w * i / max(1, n - 1)  # noqa: E731
            py = lambda v, y0=y0, h=h: y0 + h * (1 - v / top)  # noqa: E731
            band = (
                " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(high))
                + " "
                + " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in reversed(list(enumerate(low))))
            )
            parts.append(f'<polygon points="{band}" fill="{col}" fill-opacity="0.15" stroke="none"/>')
            line = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(mean))
            parts.append(
                f'<polyline points="{line}" fill="none" stroke="{col}" stroke-width="1.6"><title>{escape(series)}</title></polyline>'
            )
    parts.append("</svg>")
    return "".join(parts)


def scatter(points: list[tuple[float, float]], x_label: str, y_label: str, size: int = 300) -> str:
    """x vs y dots with the diagonal, as SVG (comparing two runs prompt by prompt)."""
    pad = 34
    vals = [v for p in points for v in p] or [0.0, 1.0]
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    f = lambda v: pad + (size - 2 * pad) * (v - lo) / span  # noqa: E731
    parts = [
        f'<svg class="chart" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" aria-label="scatter">',
        f'<line x1="{f(lo):.1f}" y1="{size - f(lo):.1f}" x2="{f(hi):.1f}" y2="{size - f(hi):.1f}" stroke="#bbb" stroke-dasharray="4 3"/>',
        f'<text x="{size / 2}" y="{size - 6}" font-size="11" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="10" y="{size / 2}" font-size="11" transform="rotate(-90 10 {size / 2})" text-anchor="middle">{escape(y_label)}</text>',
        f'<text x="{pad}" y="{size - pad + 14}" font-size="10">{lo:.2f}</text><text x="{size - pad}" y="{size - pad + 14}" font-size="10" text-anchor="end">{hi:.2f}</text>',
    ]
    parts.append(
        '<g fill="#1f77b4" fill-opacity="0.55">'
        + "".join(f'<circle cx="{f(a):.1f}" cy="{size - f(b):.1f}" r="2.2"/>' for a, b in points)
        + "</g>"
    )
    parts.append("</svg>")
    return "".join(parts)


STAGE_COLOURS = ["#9ecae1", "#e6550d", "#31a354", "#756bb1", "#fdae6b", "#636363"]


def stacked_bars(items: list[tuple[str, list[float]]], stage_names: list[str], width: int = 640, row_h: int = 16) -> str:
    """One horizontal bar per item split by stage share (each list sums to 1), with a colour key."""
    pad_l = 170
    height = row_h * len(items) + 26
    plot_w = width - pad_l - 10
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="stage shares">']
    for i, (label, shares) in enumerate(items):
        y = 4 + i * row_h
        parts.append(f'<text x="{pad_l - 6}" y="{y + row_h - 5}" font-size="10" text-anchor="end">{escape(label[:28])}</text>')
        x = float(pad_l)
        for k, share in enumerate(shares):
            w = plot_w * max(0.0, float(share))
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 3}" fill="{STAGE_COLOURS[k % len(STAGE_COLOURS)]}">'
                f"<title>{escape(stage_names[k] if k < len(stage_names) else f'stage {k}')}: {share:.3f}</title></rect>"
            )
            x += w
    key_y = height - 8
    for k, name in enumerate(stage_names):
        parts.append(
            f'<rect x="{pad_l + k * 120}" y="{key_y - 9}" width="10" height="10" fill="{STAGE_COLOURS[k % len(STAGE_COLOURS)]}"/>'
            f'<text x="{pad_l + k * 120 + 14}" y="{key_y}" font-size="10">{escape(name[:16])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stage_colour(stage: int | None) -> str:
    """The categorical colour of a stage (grey when unknown)."""
    return "#dddddd" if stage is None else STAGE_COLOURS[int(stage) % len(STAGE_COLOURS)]
