"""`tuco score`: TuCo of each prompt, one row per prompt, written as it is computed."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import asdict
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tuco.cli.common import add_model_options, add_prompt_options, err_console, finish, parse_alpha, prepare, row_base

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
    p.set_defaults(run=run)


def _summary(rows: list[dict[str, Any]]) -> Table:
    values = [r["tuco"] for r in rows]
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


def run(args: argparse.Namespace) -> int:
    from tuco.runs import RowWriter, write_manifest
    from tuco.scoring import score_ids

    alpha = parse_alpha(args.alpha)
    job = prepare(args, [alpha])
    pair, chat = job.pair, job.chat
    writer = RowWriter(args.out) if args.out else None
    config = dict(verb="score", base=args.base, tuned=args.tuned, dtype=args.dtype, device=str(pair.device), alpha=alpha,
                  chat=chat, system=args.system, batch_size=args.batch_size, per_token=args.per_token,
                  n_prompts=job.n_input)
    if writer:
        write_manifest(args.out, config, status="running")
    rows: list[dict[str, Any]] = []
    progress = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err_console)
    try:
        with progress:
            task = progress.add_task("score", total=len(job.encoded))
            for start in range(0, len(job.encoded), args.batch_size):
                chunk = job.encoded[start : start + args.batch_size]
                scores = score_ids(pair, [e.ids for e in chunk], alpha=alpha, per_token=args.per_token)
                batch_rows = []
                for e, s in zip(chunk, scores):
                    data = {k: v for k, v in asdict(s).items() if v is not None}
                    batch_rows.append({**row_base(e.prompt, ROW_KEYS), "id": e.prompt.id, "prompt": e.prompt.display,
                                       **data, "alpha": alpha, "chat": chat})
                if writer:
                    writer.write(batch_rows)
                rows += batch_rows
                progress.advance(task, len(chunk))
    except KeyboardInterrupt:
        finish(writer, args, config, len(rows), job, interrupted=True)
        return 130
    finish(writer, args, config, len(rows), job, interrupted=False)
    err_console.print(_summary(rows))
    err_console.print(_examples(rows))
    if not args.out:
        for r in rows:
            print(f"{r['id']}\t{r['tuco']:.6f}")
    if job.bad:
        err_console.print(f"[yellow]{job.summary_of_skipped()}[/yellow]")
        return 1
    return 0
