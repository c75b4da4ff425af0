"""`tuco demo`: the paper's analyses, each with its control, as a suite on a shipped pair (offline)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tuco.cli.options import PAIRS, add_output_options, add_parallel_options
from tuco.errors import ConfigError

HELP = "run the paper's analyses with their controls on a shipped pair (offline; minutes for demo, about 50 min for gemma)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--pair", default="demo", choices=PAIRS, help="demo (5.8M Llama, shipped) or gemma (Gemma-3-270M + tuco's LoRA)")
    add_output_options(p, what="demo directory: one run directory per analysis, suite.json and report.html", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a few prompts per analysis (seconds; for tests)")
    p.add_argument(
        "--tuned",
        default=None,
        metavar="DIR",
        help="run the suite with this fine-tuned checkpoint or adapter in place of the shipped one "
        "(e.g. another seed: tuco demo-train --recipe gemma --seed 1 --out DIR)",
    )
    p.add_argument(
        "--suffixes",
        default=None,
        metavar="FILE",
        help="gcg: evaluate these adversarial strings instead of optimising new ones against this pair (one per line, or "
        "another run's gcg/suffixes.json): a TRANSFER attack, labelled as such",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", help="float32 (default: fastest on CPUs) or bfloat16")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
    p.add_argument("--tables", action="store_true", help="print every finding of every analysis as a table (default: one line per claim)")
    p.add_argument(
        "--seeds", default=None, metavar="0-4", help="each seed's adapter (missing ones trained): its suite, then their synthesis (3+)"
    )
    p.add_argument("--adapters", default=None, metavar="DIR", help="with --seeds: where the seeds' adapters are (default OUT/adapters)")
    p.add_argument(
        "--nulls", default=None, metavar="0-19", help="the suite on null adapters (no safety training), then false-positive rates"
    )
    p.add_argument(
        "--null-kind",
        default="random",
        choices=("random", "prose"),
        help="with --nulls: random LoRAs at the fine-tune's norm, or prose LoRAs",
    )
    add_parallel_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tuco.cli.display import measurement_progress, spinner
    from tuco.cli.findings import print_findings, summary_lines
    from tuco.cli.loading import default_device, quiet_transformers
    from tuco.demo.calibration import annotate_suite
    from tuco.demo.run import run_demo
    from tuco.models.pair import load_pair
    from tuco.models.shipped import shipped_pair_dirs
    from tuco.runs.launch import prepare_output
    from tuco.runs.parallel import device_for, ranks

    if args.suffixes is not None:
        from tuco.data.sources import read_suffixes

        read_suffixes(args.suffixes)  # a bad file is refused before anything loads
    if (args.seeds or args.nulls) and (args.tuned or args.suffixes or args.processes > 1):
        raise ConfigError("--seeds / --nulls choose the adapters themselves and run one process: drop --tuned, --suffixes and --processes")
    if args.seeds or args.nulls:
        return _many(args)
    if args.tuned is not None and not Path(args.tuned).is_dir():
        raise ConfigError(f"--tuned {args.tuned}: no such directory (give a checkpoint or adapter trained for the {args.pair} base)")
    launched = prepare_output(
        args.out, resume=args.resume, overwrite=args.overwrite, file_ok=False, processes=args.processes, argv=sys.argv[1:], one_run=False
    )  # one run per analysis: rank 0 locks each
    if launched is not None:
        return launched
    r = ranks()
    t0 = time.time()
    base, tuned = shipped_pair_dirs(args.pair)
    quiet_transformers()
    with spinner(f"loading the {args.pair} pair", quiet=not r.is_main):
        pair = load_pair(base, args.tuned or tuned, dtype=args.dtype, device=device_for(r, args.device or default_device()))
    with measurement_progress("demo", enabled=r.is_main) as (progress, on_measurement):
        results = run_demo(
            pair,
            args.out,
            args.pair,
            is_quick=args.quick,
            seed=args.seed,
            suffixes=args.suffixes,
            resume=args.resume,
            overwrite=args.overwrite,
            ranks=r,
            progress=progress,
            on_measurement=on_measurement,
        )
    if not r.is_main:
        return 0
    console = Console()
    for metrics in results.values() if args.tables else []:
        print_findings(metrics, console)
    for line in [*summary_lines(results), *annotate_suite(args.out, args.pair, args.tuned is None)]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)  # one line each, whatever the width
    from tuco.report.load import open_source
    from tuco.report.render import build_html
    from tuco.runs import atomic_write_text

    atomic_write_text(Path(args.out) / "report.html", build_html(open_source(args.out), f"tuco demo ({args.pair} pair)"))
    console.print(f"report: {Path(args.out) / 'report.html'} ({len(results)} analyses, {time.time() - t0:.0f} s)", markup=False)
    return 0


def _many(args: argparse.Namespace) -> int:
    from tuco.cli.display import measurement_progress
    from tuco.cli.loading import default_device, quiet_transformers
    from tuco.cli.synthesize import lines
    from tuco.demo.suites import parse_range, run_many

    quiet_transformers()
    seeds, nulls = parse_range(args.seeds) if args.seeds else [], parse_range(args.nulls) if args.nulls else []
    with measurement_progress("demo") as (progress, on_measurement):
        got = run_many(
            args.pair,
            Path(args.out),
            seeds=seeds,
            nulls=nulls,
            null_kind=args.null_kind,
            adapters=Path(args.adapters) if args.adapters else None,
            dtype=args.dtype,
            device=args.device or default_device(),
            is_quick=args.quick,
            seed=args.seed,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=progress,
            on_measurement=on_measurement,
        )
    for line in (
        lines(got) if seeds else [f"{r['experiment']}: {r['claim']}: fired on {r['fired']} of {r['testable']} nulls" for r in got["rates"]]
    ):
        print(line)
    print(f"written: {Path(args.out) / ('synthesis.json' if seeds else 'nulls.json')}")
    return 0
