"""The page's bulky data (rows tables, per-token views) as one compressed block the page's script draws on
demand, instead of thousands of inline table rows and token spans: a report stays small as runs grow.

The block is gzip-compressed JSON in base64 (``<script type="application/gzip">``, never executed): its
alphabet holds no ``<``, so no text from a row can close the block or open a tag, and the script inserts
every text with ``textContent``. Colours are computed here (``tuco.palette``), so the script only looks
them up: the page and the palette cannot drift.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

from tuco.palette import text_colour, tuco_colour
from tuco.report.tables import Table
from tuco.report.tokens import Token, TokenView

TABLES = "tables"
VIEWS = "views"


def _value(v: float | None) -> str | None:
    return None if v is None else f"{v:.4f}"


@dataclass
class Pack:
    """Collects the tables and token views of one page while it is drawn (each gets its index), then
    writes them as one block (``blob``)."""

    tables: list[dict[str, Any]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    colours: dict[tuple[str, str], int] = field(default_factory=dict)

    def table(self, tb: Table) -> int:
        """Adds a table; its index. A cell is its text, or ``[text]`` where it is a number (it sorts by the
        number it shows); ``long`` lists the columns of long texts (prompts, responses)."""
        long = sorted({k for row in tb.rows for k, x in enumerate(row) if x.long})
        rows = [[x.text if x.sort is None else [x.text] for x in row] for row in tb.rows]
        self.tables.append({"columns": tb.columns, "rows": rows, "long": long, "visible": tb.visible})
        return len(self.tables) - 1

    def _token(self, tk: Token) -> list[Any]:
        key = (tuco_colour(tk.value), text_colour(tk.value))
        return [tk.text, _value(tk.value), self.colours.setdefault(key, len(self.colours))]

    def view(self, v: TokenView) -> int:
        """Adds a token view; its index. A segment is ``[label, tokens]`` (each token ``[text, TuCo as
        text or null, colour index]``) or ``[label, text]`` where it has no per-token values."""
        segments = [[s.label, [self._token(t) for t in s.tokens] if s.tokens else s.text] for s in v.segments]
        self.views.append({"segments": segments})
        return len(self.views) - 1

    def data(self) -> dict[str, Any]:
        """Everything collected, as JSON-ready data (``colours``: ``[background, text]`` per index)."""
        return {TABLES: self.tables, VIEWS: self.views, "colours": [list(c) for c in self.colours]}

    def blob(self) -> str:
        """The data as gzip-compressed JSON in base64 (deterministic: no timestamp)."""
        raw = json.dumps(self.data(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def unpack(blob: str) -> dict[str, Any]:
    """The data of a block written by ``Pack.blob`` (for tests and tools reading a report)."""
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(blob)).decode("utf-8"))
    return data
