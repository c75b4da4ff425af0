"""`tuco score`: TuCo of each prompt, one row per prompt, written as it is computed."""

from __future__ import annotations

import argparse
import sys
import statistics
from dataclasses import asdict
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tuco.cli.common import (
    Job, add_model_options, add_prompt_options, err_console, finish, parse_alpha, prepare, row_base,
)
from tuco.errors import TucoError

HELP = "TuCo of each prompt (at its last token, before any generation)"
ROW_KEYS = {"id", "prompt", "tuco", "preco", "ptc_l1", "ftc_l1", "n_tokens", "layer_ptc_l1", "layer_ftc_l1",
            "alpha", "chat", "tokens", "token_tuco"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("score", help=HELP, description=HELP + ". Writes one row per prompt.")
    add_model_options(p)
    add_prompt_options(p)
    p.add_argument("--out", default=None, metavar="OUT", help="results file, .jsonl or .parquet (rows written as they finish)")
    p.add_argument("--alpha", default="1", help="FTC scale: one value, or one per layer comma-separated (default 1)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="prompts per forward pass (default 8)")
    p.add_argument("--per-token", action="store_true", help="also store TuCo at every prompt token")
    p.add_argument("--resume", action="store_true", help="continue the run in --out: skip ids already written")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="data-parallel ranks on this machine (runs torchrun; one GPU per rank when on CUDA)")
    p.set_defaults(run=run)


def _summary(rows: list[dict[str, Any]]) -> Table:
    values = [r["tuco"] for r in rows if r.get("tuco") is not None]
    t = Table(title="TuCo", show_edge=False)
    for col in ("prompts", "mean", "median", "min", "max"):
        t.add_column(col, justify="right")
    t.add_row(str(len(values)), *(f"{f(values):.4f}" for f in (statistics.fmean, statistics.median, min, max)))
    return t


def _examples(rows: list[dict[str, Any]], n: int = 10) -> Table:
    t = Table(show_edge=False)
    t.add_column("id")
    t.add_column("tuco", justify="right")
    t.add_column("tokens", justify="right")
    t.add_column("prompt", overflow="ellipsis", no_wrap=True, max_width=60)
    for r in rows[:n]:
        t.add_row(str(r["id"]), f"{r['tuco']:.4f}", str(r["n_tokens"]), r["prompt"].replace("\n", " "))
    return t


def _check_unique_ids(job: Job) -> None:
    seen: set[str] = set()
    for e in job.encoded:
        if e.prompt.id in seen:
            raise TucoError(f"prompt id {e.prompt.id!r} appears twice; --resume and --processes need unique ids")
        seen.add(e.prompt.id)


def run(args: argparse.Namespace) -> int:
    from tuco import parallel
    from tuco.runs import RowWriter, check_output_path, clear_outputs, existing_rows, read_rows, write_manifest
    from tuco.scoring import iter_scores

    alpha = parse_alpha(args.alpha)
    if args.processes < 1:
        raise TucoError(f"--processes must be >= 1, got {args.processes}")
    r = parallel.ranks()
    if args.processes > 1 or r.world > 1:
        if not args.out:
            raise TucoError("data-parallel scoring (--processes, torchrun, accelerate launch) needs --out")
        check_output_path(args.out)
    if args.processes > 1:  # run this same command in N ranks (torchrun), each without --processes
        return parallel.relaunch(parallel.strip_option(sys.argv[1:], "--processes"), args.processes)
    if args.resume and not args.out:
        raise TucoError("--resume needs --out (the run to continue)")
    args.device = None if args.device_map else parallel.device_for(r, args.device)
    job = prepare(args, [alpha], quiet=not r.is_main)
    pair, chat = job.pair, job.chat
    order = [e.prompt.id for e in job.encoded]
    if args.resume or r.world > 1:
        _check_unique_ids(job)
    done = {str(row.get("id")) for row in existing_rows(args.out)} if args.resume else set()
    if args.out and not args.resume and r.is_main:
        clear_outputs(args.out, keep_ranks=r.world if r.world > 1 else 0)
    todo = sorted((i for i, e in enumerate(job.encoded) if e.prompt.id not in done), key=lambda i: -len(job.encoded[i].ids))
    mine = todo[r.rank :: r.world]
    parallel.init(r, str(pair.device))
    writer = RowWriter(args.out, rank=r.rank if r.world > 1 else None, resume=args.resume) if args.out else None
    config = dict(verb="score", base=args.base, tuned=args.tuned, dtype=args.dtype, device=str(pair.device), alpha=alpha,
                  chat=chat, system=args.system, batch_size=args.batch_size, per_token=args.per_token,
                  n_prompts=job.n_input, processes=r.world, resumed=len(done) if args.resume else None)
    if writer and r.is_main:
        write_manifest(args.out, config, status="running")
    if done and r.is_main:
        err_console.print(f"resuming: {len(done & set(order))} of {len(order)} prompts already done")
    rows: list[dict[str, Any]] = []
    progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err_console, disable=not r.is_main)

    def backoff(size: int) -> None:
        err_console.print(f"[yellow]out of memory: batch size lowered to {size}[/yellow]")

    try:
        with progress:
            task = progress.add_task("score", total=len(mine))
            items = [job.encoded[i] for i in mine]
            for idx, scores in iter_scores(pair, [e.ids for e in items], batch_size=args.batch_size, alpha=alpha,
                                           per_token=args.per_token, on_backoff=backoff):
                batch_rows = []
                for i, s in zip(idx, scores):
                    e = items[i]
                    data = {k: v for k, v in asdict(s).items() if v is not None}
                    batch_rows.append({**row_base(e.prompt, ROW_KEYS), "id": e.prompt.id, "prompt": e.prompt.display,
                                       **data, "alpha": alpha, "chat": chat})
                if writer:
                    writer.write(batch_rows)
                rows += batch_rows
                progress.advance(task, len(idx))
    except KeyboardInterrupt:
        if r.world == 1:
            finish(writer, args, config, job, True, order)
        return 130
    if r.world > 1:
        writer.close()
        parallel.barrier()
        if not r.is_main:
            parallel.shutdown()
            return 0
    finish(writer, args, config, job, False, order)
    parallel.shutdown()
    if args.out:
        wanted = set(order)
        rows = [row for row in read_rows(args.out) if str(row.get("id")) in wanted]
    else:
        position = {pid: i for i, pid in enumerate(order)}
        rows.sort(key=lambda row: position[row["id"]])
    err_console.print(_summary(rows))
    err_console.print(_examples(rows))
    if not args.out:
        for row in rows:
            print(f"{row['id']}\t{row['tuco']:.6f}")
    if job.bad:
        err_console.print(f"[yellow]{job.summary_of_skipped()}[/yellow]")
        return 1
    return 0
