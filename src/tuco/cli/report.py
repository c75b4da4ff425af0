"""`tuco report`: one self-contained HTML file from a run directory or results file (no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "write a self-contained HTML report of a run (results file or run directory)"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help=HELP, description=HELP + "; opens offline, no model needed.")
    p.add_argument("source", metavar="RUN", help="run directory, or a .jsonl/.parquet results file")
    p.add_argument("-o", "--output", default=None, metavar="HTML",
                   help="output file (default: RUN/report.html, or <results>.report.html beside a file)")
    p.add_argument("--title", default=None, help="page title")
    p.set_defaults(run=run)


def default_output(source: Path) -> Path:
    """RUN_DIR/report.html, or scores.report.html beside scores.jsonl."""
    return source / "report.html" if source.is_dir() else source.with_name(source.stem + ".report.html")


def run(args: argparse.Namespace) -> int:
    from tuco.errors import TucoError
    from tuco.report.html import build_html
    from tuco.report.load import load_run
    from tuco.runs import atomic_write_text

    report = load_run(args.source)
    out = Path(args.output).expanduser() if args.output else default_output(report.source)
    if out.suffix.lower() not in (".html", ".htm"):
        raise TucoError(f"report output {str(out)!r} must end in .html")
    if not out.parent.exists():
        raise TucoError(f"output directory {str(out.parent)!r} does not exist: create it first")
    atomic_write_text(out, build_html(report, args.title))
    print(out)
    return 0
