"""The `tuco` entry point: builds the verb parsers, runs one, turns TucoErrors into one-line messages.

Nothing heavy is imported before a verb runs: ``tuco --help``, ``tuco report`` and every ``--help``
stay torch-free (a test pins it).
"""

from __future__ import annotations

import argparse
import os
import sys

from tuco import __version__
from tuco.errors import TucoError


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the whole CLI."""
    from tuco.cli import calibrate, demo, experiment, generate, report, score, serve

    parser = argparse.ArgumentParser(
        prog="tuco",
        description="Measure (TuCo) and steer (alpha) the contribution of fine-tuning to each response of an LLM.",
    )
    parser.add_argument("--version", action="version", version=f"tuco {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for verb in (demo, score, generate, experiment, report, serve, calibrate):
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some rows skipped, 2 error, 130 interrupted)."""
    from tuco.parallel import LAUNCHED, die_with_parent

    if os.environ.get(LAUNCHED):
        die_with_parent()  # a rank started by `tuco --processes N` never outlives its launcher
    _stop_on_sigterm()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    verb = args.verb + (f" {args.experiment}" if getattr(args, "experiment", None) else "")
    try:
        return args.run(args)
    except TucoError as err:
        print(f"tuco {verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tuco {verb}: interrupted", file=sys.stderr)
        return 130


def _stop_on_sigterm() -> None:
    """SIGTERM (a scheduler, `kill`) stops a run like Ctrl-C: finished rows kept, manifest "interrupted"."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (an embedding application): leave its handler alone
        pass


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
