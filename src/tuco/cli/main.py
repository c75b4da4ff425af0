"""The `tuco` entry point: builds the verb parsers, runs one, turns TucoErrors into one-line messages."""

from __future__ import annotations

import argparse
import sys

from tuco import __version__
from tuco.cli import demo, experiment, generate, report, score
from tuco.errors import TucoError

VERBS = (demo, score, generate, experiment, report)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the whole CLI."""
    parser = argparse.ArgumentParser(
        prog="tuco",
        description="Measure (TuCo) and steer (alpha) the contribution of fine-tuning to each response of an LLM.",
    )
    parser.add_argument("--version", action="version", version=f"tuco {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some rows skipped, 2 error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except TucoError as err:
        print(f"tuco {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tuco {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
