"""The flow ``score`` and ``generate`` share: check the output and start the ranks (one library call,
``tuco.runs.launch.prepare_output``), read and report the prompts, load the model; then the closing
lines. Every cheap check happens before the model loads."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuco.cli import loading
from tuco.cli.display import err_console, json_summary, print_json, quiet, report_bad
from tuco.cli.loading import collect_prompts, model_names
from tuco.cli.options import check_positive
from tuco.measures.prompts import BadRow, Prompt

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable
    from tuco.runs.jobs import JobResult
    from tuco.runs.parallel import Ranks

DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


@dataclass
class JobStart:
    """What a verb has once its input is checked: the model, prompts, bad rows, its rank."""

    model: Decomposable
    prompts: list[Prompt]
    bad: list[BadRow]
    ranks: Ranks
    args: argparse.Namespace


def resume_config(args: argparse.Namespace, known: dict[str, Any]) -> dict[str, Any]:
    """What of a run's configuration the options fix before the model loads (``tuco.runs.jobs`` writes the
    whole): the checkpoints, system prompt, per-token mode, batch size, full path, and where given the chat
    template and dtype; ``known`` adds the verb's own (verb, alphas, sampling)."""
    out = {
        **known,
        "checkpoints": model_names(args),
        "system": args.system,
        "per_token": args.per_token,
        "batch_size": args.batch_size,
        "full_path": bool(args.full_path),
    }
    if args.chat is not None:
        out["chat"] = args.chat
    if args.dtype in DTYPE_NAMES:
        out["dtype"] = DTYPE_NAMES[args.dtype]
    return out


def start_job(args: argparse.Namespace, known: dict[str, Any]) -> JobStart | int:
    """Check the output (``--resume``: against ``resume_config``) and start the ranks (returns their exit
    code), read and report the prompts, then load the model."""
    from tuco.runs.launch import prepare_output
    from tuco.runs.parallel import device_for, ranks

    check_positive(args.batch_size, "--batch-size")
    launched = prepare_output(
        args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        known=resume_config(args, known) if args.resume else None,
        processes=args.processes,
        argv=sys.argv[1:],
    )
    if launched is not None:
        return launched
    r = ranks()
    prompts, bad = collect_prompts(args)
    if r.is_main:
        report_bad(bad)
    if args.out and str(args.out).lower().endswith(".parquet"):
        from tuco.runs import parquet_table

        parquet_table([p.extra for p in prompts])  # extra fields of one type per column, before the load
    model = loading.load(args, quiet=not r.is_main or quiet(args), device=None if args.device_map else device_for(r, args.device))
    return JobStart(model, prompts, bad, r, args)


def end_job(result: JobResult, start: JobStart, show: Callable[[list[dict[str, Any]]], None]) -> int:
    """Rank 0: skipped rows, the closing line, ``show(rows)``; exit code 1 when some prompts were skipped."""
    from tuco.runs import read_rows

    if not start.ranks.is_main:
        return 0
    report_bad(result.bad[len(start.bad) :])
    rows = read_rows(result.out)
    if getattr(start.args, "json", False):
        print_json(json_summary(rows, out=str(result.out), n_rows=result.n_rows, n_prompts=result.n_prompts, n_skipped=len(result.bad)))
    elif not quiet(start.args):
        err_console.print(f"wrote {result.n_rows} rows to {result.out}")
        show(rows)
    if result.bad:
        err_console.print(f"[yellow]{len(result.bad)} of {result.n_prompts} prompts skipped (see above)[/yellow]", markup=True)
        return 1
    return 0
