"""The page as HTML: the report model drawn by the Jinja2 templates in ``templates/`` with autoescape on, so
every piece of prompt, model or file text is escaped by construction. One self-contained file: inline CSS
and SVG, images as data: URIs, the rows tables and token views as one compressed data block
(``tuco.report.pack``), and one static script (drawing, sorting, filtering the rows tables and the token
views from that block as text: it never turns data into HTML) allowed by its hash in the
Content-Security-Policy. No CDN, no request. The findings are plain HTML, readable without the script.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from tuco.palette import group_colour, stage_colour, text_colour, tuco_colour, tuco_gradient
from tuco.report.load import Source
from tuco.report.model import Page, comparison_page, page
from tuco.report.pack import Pack
from tuco.report.training import OverSteps

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _num(value: float | str | None) -> str:
    return "" if value is None else f"{float(value):.4f}"


@cache
def environment() -> Any:
    """The Jinja2 environment: autoescape on every template, undefined names an error, number filters."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=_num,
        signed=lambda v: f"{float(v):+.4f}",
        px=lambda v: f"{float(v):.1f}",
        percent=lambda v: f"{100 * float(v):.0f}%",
        tuco_colour=tuco_colour,
        text_colour=text_colour,
        stage_colour=stage_colour,
        group_colour=group_colour,
    )
    env.globals["gradient"] = tuco_gradient()
    return env


def script() -> str:
    """The page's only script."""
    return (TEMPLATES / "report.js").read_text(encoding="utf-8")


def content_security_policy(js: str) -> str:
    """Nothing from the network (default-src 'none'); images only as data: URIs; only ``js`` may run (by
    hash): an injected <script> or on*= handler is refused even if escaping ever failed."""
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"


def render(model: Page) -> str:
    """The HTML of a report page."""
    from markupsafe import Markup

    js = script()
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    static = {"csp": Markup(content_security_policy(js)), "css": Markup(css), "script": Markup(js)}  # ours, never data
    html = environment().get_template("page.html.j2").render(page=model, pack=Pack(), **static)
    return str(html)


def build_html(source: Source, title: str | None = None) -> str:
    """The whole report page for a run or a suite of runs, as one string: findings first."""
    return render(page(source, title))


def build_comparison(sources: list[Source], title: str | None = None) -> str:
    """Runs side by side: each one's findings, then the headline TuCo per prompt aligned by id."""
    return render(comparison_page(sources, title))


def steps_svg(chart: OverSteps) -> str:
    """A "TuCo over training steps" chart as a standalone SVG file (the report's own drawing: for a README or
    a paper)."""
    template = environment().from_string('{% import "charts.svg.j2" as c %}{{ c.steps(ch) }}')
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + str(template.render(ch=chart)) + "\n"
