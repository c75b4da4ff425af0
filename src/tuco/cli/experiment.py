"""`tuco experiment NAME`: one of the paper's analyses on any pair, into a run directory;
`tuco experiment list`: what each one answers; `--validate`: check options, data and judge first."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from tuco.cli import loading
from tuco.cli.display import err_console, print_json, quiet
from tuco.cli.experiment_options import add_experiment_options, options_from, pct
from tuco.cli.findings import print_findings
from tuco.cli.options import add_display_options, add_model_options, add_output_options, add_parallel_options
from tuco.errors import ConfigError

HELP = "run one of the paper's analyses (web-vs-chat, gcg, conjugate, many-shot, ...) into a run directory"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tuco.experiments import REGISTRY, get

    p = sub.add_parser("experiment", help=HELP, description=HELP)
    names = p.add_subparsers(dest="experiment", metavar="NAME")
    lp = names.add_parser("list", help="list the experiments and the question each answers")
    lp.set_defaults(run=run_list)
    for name in REGISTRY.names:
        exp = get(name)
        e = names.add_parser(
            name,
            help=pct(exp.question),
            description=pct(exp.question + " Paper: " + exp.paper),  # argparse %-formats help: a literal % doubled
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_model_options(e, chain=False)
        add_output_options(e, what="run directory (rows.jsonl, manifest, metrics.json, plots)")
        e.add_argument("--validate", action="store_true", help="check the options, data sources and judge, load no model, run nothing")
        add_parallel_options(e)
        add_experiment_options(e, exp)
        add_display_options(e)
        e.set_defaults(run=run)

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(run=usage)


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


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from tuco.cli.display import measurement_progress
    from tuco.experiments import run_experiment, validate
    from tuco.runs.launch import prepare_output
    from tuco.runs.parallel import device_for, ranks

    options = options_from(args)
    checked = validate(args.experiment, **options)  # cheap: before any model loads
    if args.validate:
        for line in checked:
            print(line)
        return 0
    if not args.out:
        raise ConfigError(f"give a run directory with --out (e.g. --out runs/{args.experiment})")
    launched = prepare_output(
        args.out, resume=args.resume, overwrite=args.overwrite, file_ok=False, processes=args.processes, argv=sys.argv[1:]
    )
    if launched is not None:
        return launched
    r = ranks()
    t0 = time.time()
    model = loading.load(args, quiet=not r.is_main or quiet(args), device=None if args.device_map else device_for(r, args.device))
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
