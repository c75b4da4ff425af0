"""An experiment's typed options as flags of its verb (``tuco experiment NAME --help``), and the flags given
back as typed values: the options' help, choices and defaults live with the options (``experiments/base.opt``)."""

from __future__ import annotations

import argparse
import typing
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuco.experiments.base import Experiment


def pct(text: str) -> str:
    """argparse %-formats help strings: a literal % must be doubled."""
    return text.replace("%", "%%")


def _shown(value: object) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else repr(value)


def add_experiment_options(e: argparse.ArgumentParser, exp: Experiment) -> None:
    """One flag per option field of the experiment's options (its help, choices and default), dest
    ``opt_<field>``; its retired options as hidden flags (their value reaches ``make_options``, which names the fix)."""
    from tuco.experiments.base import default_of, option_fields, option_types

    g = e.add_argument_group(f"{exp.name} options")
    for name in exp.retired:
        g.add_argument(f"--{name.replace('_', '-')}", dest=f"opt_{name}", default=None, help=argparse.SUPPRESS)
    types = option_types(exp.options)
    for f in option_fields(exp.options):
        tp = types[f.name]
        choices = f.metadata.get("choices")
        meta = f.name.upper() if typing.get_origin(tp) is not list else f"{f.name.upper()},..."
        extra = f" (one of: {', '.join(choices)})" if choices and typing.get_origin(tp) is list else ""
        flag, help_text = (
            f"--{f.name.replace('_', '-')}",
            pct(f"{f.metadata.get('help', '')}{extra} (default: {_shown(default_of(f))})"),
        )
        if tp is bool:  # a bare flag, as on every other verb (--no-NAME turns it off)
            g.add_argument(flag, dest=f"opt_{f.name}", default=None, action=argparse.BooleanOptionalAction, help=help_text)
            continue
        g.add_argument(
            flag,
            dest=f"opt_{f.name}",
            default=None,
            metavar=meta,
            choices=choices if choices and typing.get_origin(tp) is not list else None,
            help=help_text,
        )


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment options given on the command line, parsed to their types (others: defaults)."""
    from tuco.experiments import get
    from tuco.experiments.base import option_types, parse_value

    types = option_types(get(args.experiment).options)
    return {k[4:]: parse_value(v, types.get(k[4:], str), k[4:]) for k, v in vars(args).items() if k.startswith("opt_") and v is not None}
