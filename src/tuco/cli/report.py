"""`tuco report`: one self-contained HTML file from one run, or several runs side by side (no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a self-contained HTML report of a run (run directory or results file), or compare several"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help=HELP, description=HELP + "; opens offline, no model needed.")
    p.add_argument(
        "sources",
        nargs="+",
        metavar="RUN",
        help=(
            "run directory, .jsonl/.parquet results file, or synthesis directory (tuco synthesize --out DIR: the "
            "synthesis over adapters first); give two or more to compare them (aligned by prompt id)"
        ),
    )
    p.add_argument(
        "--out",
        "-o",
        dest="out",
        default=None,
        metavar="HTML",
        help=(
            "output file (default: RUN/report.html, or <results>.report.html beside a file; "
            "comparisons: RUN/compare.html, or <results>.compare.html beside the first)"
        ),
    )
    p.add_argument("--title", default=None, help="page title")
    p.set_defaults(run=run)


def default_output(source: Path, compare: bool = False) -> Path:
    """RUN_DIR/report.html, or scores.report.html beside scores.jsonl (comparisons: compare.html in the
    first run directory, or scores.compare.html beside the first results file)."""
    name = "compare.html" if compare else "report.html"
    if source.is_dir():
        return source / name
    return source.with_name(source.stem + "." + name)


def run(args: argparse.Namespace) -> int:
    from tuco.errors import RunError
    from tuco.report.load import open_source
    from tuco.report.render import build_comparison, build_html
    from tuco.runs import atomic_write_text

    runs = [open_source(s) for s in args.sources]
    out = Path(args.out).expanduser() if args.out else default_output(runs[0].path, compare=len(runs) > 1)
    if out.suffix.lower() not in (".html", ".htm"):
        raise RunError(f"report output {str(out)!r} must end in .html")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create {str(out.parent)!r}: {err.strerror or err}; choose another --out") from err
    html = build_html(runs[0], args.title) if len(runs) == 1 else build_comparison(runs, args.title)
    atomic_write_text(out, html)
    print(out)
    return 0
