"""The `tuco` entry point: builds the verb parsers, runs one, turns TucoErrors into one-line messages.

Nothing heavy is imported before a verb runs: ``tuco --help``, ``tuco report`` and every ``--help``
stay torch-free (a test pins it).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

from tuco import __version__
from tuco.errors import TucoError


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the whole CLI."""
    from tuco.cli import calibrate, demo, demo_train, experiment, generate, report, score, serve, synthesize

    parser = argparse.ArgumentParser(
        prog="tuco",
        description="Measure (TuCo) and steer (alpha) the contribution of fine-tuning to each response of an LLM.",
    )
    parser.add_argument("--version", action="version", version=f"tuco {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for verb in (demo, demo_train, score, generate, experiment, report, synthesize, serve, calibrate):
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some rows skipped, 2 error, 130 interrupted)."""
    from tuco.runs.parallel import LAUNCHED, die_with_parent

    if os.environ.get(LAUNCHED):
        die_with_parent()  # a rank started by `tuco --processes N` never outlives its launcher
    _stop_on_sigterm()
    parser = build_parser()
    once(parser)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    verb = args.verb + (f" {args.experiment}" if getattr(args, "experiment", None) else "")
    quiet_third_party()
    try:
        code: int = args.run(args)
        return code
    except TucoError as err:
        print(f"tuco {verb}: error: {as_flags(str(err), parser, args.verb)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tuco {verb}: interrupted{kept(args)}", file=sys.stderr)
        return 130


class _Once(argparse._StoreAction):
    """A single-value option given twice is an error (``--alpha 1 --alpha 0`` would keep the last silently)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given: set[str] = namespace.__dict__.setdefault("_given", set())
        if self.dest in given:
            parser.exit(
                2,
                f"{parser.prog}: error: {'/'.join(self.option_strings)} given twice: give it once "
                "(several values, where the option takes them, as a comma list)\n",
            )
        given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _subparsers(sub)
    return found


def once(parser: argparse.ArgumentParser) -> None:
    """Make every single-value option of every verb refuse to be given twice."""
    for p in _subparsers(parser):
        for action in p._actions:
            if type(action) is argparse._StoreAction and action.option_strings and action.nargs is None:
                action.__class__ = _Once


def as_flags(message: str, parser: argparse.ArgumentParser, verb: str) -> str:
    """An error message with the library's parameter names (``max_new_tokens``) written as the verb's flags."""
    import re

    for p in _subparsers(parser):
        if p.prog.split()[-1] != verb:
            continue
        for action in p._actions:
            flags = [o for o in action.option_strings if o.startswith("--")]
            if flags and "_" in action.dest:
                message = re.sub(rf"(?<![\w-]){re.escape(action.dest)}(?!\w)", flags[0], message)
    return message


def quiet_third_party() -> None:
    """Warnings from libraries that tell a CLI user nothing actionable (peft's and transformers' deprecation
    notices about their own internals) are not shown; tuco's own warnings are."""
    import warnings

    for module in ("peft", "transformers", "torch", "accelerate", "huggingface_hub"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)


def kept(args: argparse.Namespace) -> str:
    """After Ctrl-C: how many rows the output keeps and how to continue ('' when nothing was written)."""
    out = getattr(args, "out", None)
    if not out or not os.path.exists(out):
        return ""
    try:
        from tuco.runs import read_rows

        n = len(read_rows(out))
    except (TucoError, OSError, ValueError):
        return ""
    return f"; {n} rows kept in {out}: run the same command with --resume to continue"


def _stop_on_sigterm() -> None:
    """SIGTERM (a scheduler, `kill`) stops a run like Ctrl-C: finished rows kept, manifest "interrupted"."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():  # an embedding application's threads: its own handlers
        signal.signal(signal.SIGTERM, stop)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
