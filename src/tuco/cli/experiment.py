"""`tuco experiment NAME`: one of the paper's analyses on any pair, into a run directory;
`tuco experiment list`: what each one answers; `--validate`: check options, data and judge first."""

from __future__ import annotations

import argparse
import json
import time
import typing
from typing import Any

from tuco.cli.common import add_display_options, add_model_options, add_output_options, err_console, load, print_json, quiet
from tuco.errors import ConfigError

HELP = "run one of the paper's analyses (web-vs-chat, gcg, conjugate, many-shot, ...) into a run directory"


def _pct(text: str) -> str:
    """argparse %-formats help strings: a literal % must be doubled."""
    return text.replace("%", "%%")


def _shown(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else repr(value)


def add_parser(sub: Any) -> None:
    from tuco.experiments import REGISTRY, get
    from tuco.experiments.base import default_of, option_fields, option_types

    p = sub.add_parser("experiment", help=HELP, description=HELP)
    names = p.add_subparsers(dest="experiment", metavar="NAME")
    lp = names.add_parser("list", help="list the experiments and the question each answers")
    lp.set_defaults(run=run_list)
    for name in REGISTRY.names:
        exp = get(name)
        e = names.add_parser(
            name,
            help=_pct(exp.question),
            description=_pct(exp.question + " Paper: " + exp.paper),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_model_options(e, chain=False)
        add_output_options(e, what="run directory (rows.jsonl, manifest, metrics.json, plots)")
        e.add_argument("--validate", action="store_true", help="check the options, data sources and judge, load no model, run nothing")
        e.add_argument(
            "--processes", type=int, default=1, metavar="N", help="data-parallel ranks on this machine (one GPU per rank when on CUDA)"
        )
        g = e.add_argument_group(f"{name} options")
        types = option_types(exp.options)
        for f in option_fields(exp.options):
            tp = types[f.name]
            choices = f.metadata.get("choices")
            meta = f.name.upper() if typing.get_origin(tp) is not list else f"{f.name.upper()},..."
            extra = f" (one of: {', '.join(choices)})" if choices and typing.get_origin(tp) is list else ""
            flag, help_text = (
                f"--{f.name.replace('_', '-')}",
                _pct(f"{f.metadata.get('help', '')}{extra} (default: {_shown(default_of(f))})"),
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
        add_display_options(e)
        e.set_defaults(run=run)
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment options given on the command line, parsed to their types (others: defaults)."""
    from tuco.experiments import get
    from tuco.experiments.base import option_types, parse_value

    types = option_types(get(args.experiment).options)
    return {k[4:]: parse_value(v, types[k[4:]], k[4:]) for k, v in vars(args).items() if k.startswith("opt_") and v is not None}


def run_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from tuco.experiments import REGISTRY, get

    t = Table(show_edge=False)
    t.add_column("experiment")
    t.add_column("question")
    for name in REGISTRY.names:
        t.add_row(name, get(name).question)
    Console().print(t)
    return 0


def _flat(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in metrics.items():
        if k in ("experiment", "question", "findings", "paper"):
            continue
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        elif isinstance(v, float):
            out.append((prefix + k, f"{v:.4g}"))
        else:
            out.append((prefix + k, json.dumps(v) if not isinstance(v, str) else v))
    return out


def print_findings(metrics: dict[str, Any], console: Any) -> None:
    """The experiment's findings (primary claims first, then exploratory; measured with its interval and n,
    verdict, the paper) as a table whose numbers wrap but are never cut."""
    from rich.table import Table

    t = Table(title=f"{metrics['experiment']}: {metrics['question']}", show_edge=False, show_lines=False)
    t.add_column("claim", ratio=3)
    t.add_column("measured (95% interval)", ratio=2, overflow="fold")
    t.add_column("n", overflow="fold")
    t.add_column("verdict", ratio=2, overflow="fold")
    t.add_column("paper", ratio=2)
    for f in metrics.get("findings", []):
        kind = "PRIMARY" if f.get("primary") else "exploratory"
        p = f" (Holm p {f['p_holm']:.3g})" if f.get("p_holm") is not None else ""
        t.add_row(
            f"[{kind}] {f['claim']}", f.get("measured", ""), f.get("n_text", str(f.get("n", ""))), f["verdict"] + p, f.get("paper") or "-"
        )
    console.print(t)


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from tuco.cli.common import check_out, measurement_progress, run_launcher
    from tuco.experiments import run_experiment, validate
    from tuco.runs.parallel import device_for, ranks

    options = options_from(args)
    checked = validate(args.experiment, **options)  # cheap: before any model loads
    if args.validate:
        for line in checked:
            print(line)
        return 0
    if not args.out:
        raise ConfigError(f"give a run directory with --out (e.g. --out runs/{args.experiment})")
    check_out(args, file_ok=False)
    launched = run_launcher(args, sys.argv[1:])
    if launched is not None:
        return launched
    r = ranks()
    t0 = time.time()
    model = load(args, quiet=not r.is_main or quiet(args), device=None if args.device_map else device_for(r, args.device))
    with measurement_progress(args.experiment, enabled=r.is_main and not quiet(args)) as (progress, on_measurement):
        metrics = run_experiment(
            args.experiment,
            model,
            args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            ranks=r,
            progress=progress,
            on_measurement=on_measurement,
            **options,
        )
    if not r.is_main:
        return 0
    if args.json:  # the findings and metrics as metrics.json holds them
        print_json({"out": str(args.out), "seconds": round(time.time() - t0, 1), **metrics})
        return 0
    if args.quiet:
        return 0
    print_findings(metrics, Console())
    err_console.print(
        f"{len(_flat(metrics))} metrics in {args.out}/metrics.json; wrote {args.out} (rows.jsonl, metrics.json, plots) in "
        f"{time.time() - t0:.0f} s; see it with: tuco report {args.out}"
    )
    return 0
