"""Plots as small PNGs for the page: a chart (a few flat colours, anti-aliased edges) re-encoded with an
adaptive palette of at most ``COLOURS`` colours is a quarter of matplotlib's RGBA file and looks the same."""

from __future__ import annotations

import io

COLOURS = 128


def small_png(data: bytes) -> bytes:
    """``data`` (a PNG) re-encoded with at most COLOURS colours, or ``data`` itself when it is not a
    readable image or the re-encoding is not smaller."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return data
    out = io.BytesIO()
    rgb.quantize(COLOURS, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    small = out.getvalue()
    return small if len(small) < len(data) else data
