"""`tuco experiment NAME`: one of the paper's analyses on any pair, into a run directory;
`tuco experiment list`: what each one answers."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import MISSING, fields
from typing import Any

from rich.console import Console
from rich.table import Table

from tuco.cli.common import add_model_options, err_console, load, resolve_pair

HELP = "run one of the paper's analyses (web-vs-chat, gcg, conjugate, many-shot, ...) into a run directory"


def _pct(text: str) -> str:
    """argparse %-formats help strings: a literal % must be doubled."""
    return text.replace("%", "%%")


def add_parser(sub: Any) -> None:
    from tuco.experiments import EXPERIMENTS

    p = sub.add_parser("experiment", help=HELP, description=HELP)
    names = p.add_subparsers(dest="experiment", metavar="NAME")
    lp = names.add_parser("list", help="list the experiments and the question each answers")
    lp.set_defaults(run=run_list)
    for name, exp in EXPERIMENTS.items():
        e = names.add_parser(name, help=_pct(exp.QUESTION), description=(exp.__doc__ or "").strip(),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        add_model_options(e)
        e.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (rows, manifest, metrics.json, plots)")
        g = e.add_argument_group(f"{name} options")
        for f in fields(exp.Options):
            kind = {"int": int, "float": float}.get(str(f.type), str)
            default = f.default if f.default is not MISSING else None
            g.add_argument(f"--{f.name.replace('_', '-')}", dest=f"opt_{f.name}", type=kind, default=default, metavar=f.name.upper(),
                           help=_pct(f"{f.metadata.get('help', '')} (default: {default!r})"))
        e.set_defaults(run=run)
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


def run_list(args: argparse.Namespace) -> int:
    from tuco.experiments import EXPERIMENTS

    t = Table(show_edge=False)
    t.add_column("experiment")
    t.add_column("question")
    for name, exp in EXPERIMENTS.items():
        t.add_row(name, exp.QUESTION)
    Console().print(t)
    return 0


def _flat(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in metrics.items():
        if k in ("experiment", "question"):
            continue
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        elif isinstance(v, float):
            out.append((prefix + k, f"{v:.4g}"))
        else:
            out.append((prefix + k, json.dumps(v) if not isinstance(v, str) else v))
    return out


def run(args: argparse.Namespace) -> int:
    from tuco.experiments import run_experiment

    resolve_pair(args)
    options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}
    t0 = time.time()
    pair = load(args)
    metrics = run_experiment(args.experiment, pair, args.out, **options)
    t = Table(title=f"{args.experiment}: {metrics['question']}", show_edge=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = _flat(metrics)
    for k, v in rows[:120]:
        t.add_row(k, v)
    Console().print(t)
    if len(rows) > 120:
        err_console.print(f"({len(rows) - 120} more metrics in {args.out}/metrics.json)")
    err_console.print(f"wrote {args.out} (rows.jsonl, metrics.json, plots) in {time.time() - t0:.0f} s; "
                      f"see it with: tuco report {args.out}")
    return 0
