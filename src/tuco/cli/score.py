"""`tuco score`: TuCo of each prompt, one row per prompt, written as it is computed."""

from __future__ import annotations

import argparse
import statistics
from typing import TYPE_CHECKING, Any

from tuco.cli.common import (
    add_model_options,
    add_output_options,
    add_prompt_options,
    end_job,
    err_console,
    progress_bar,
    report_bad,
    start_job,
)

if TYPE_CHECKING:
    from tuco.model import Decomposable

HELP = "TuCo of each prompt (at its last token, before any generation)"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("score", help=HELP, description=HELP + ". Writes one row per prompt.")
    add_model_options(p)
    add_prompt_options(p)
    add_output_options(
        p,
        what="where the rows go: a run directory, or a .jsonl/.parquet file (rows written as they finish; without --out, TuCo is printed)",
    )
    p.add_argument("--alpha", default="1", help="FTC scale: a number, or one per layer as 1:1:0.5 (a chain: one per stage, 1/0.5)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="prompts per forward pass (default 8)")
    p.add_argument("--per-token", action="store_true", help="also store TuCo at every prompt token")
    p.add_argument(
        "--next-turn",
        action="store_true",
        help="a chat ending with the assistant's message: score the start of the next turn (a generation prompt "
        "appended), not the response (default: the response is scored teacher-forced, TuCo at each of its tokens)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel ranks on this machine (one GPU per rank when on CUDA); needs --out",
    )
    p.set_defaults(run=run)


def summary(rows: list[dict[str, Any]]) -> Any:
    """A rich table: count, mean, median, min, max of TuCo."""
    from rich.table import Table

    values = [r["tuco"] for r in rows if r.get("tuco") is not None]
    t = Table(title="TuCo", show_edge=False)
    for col in ("prompts", "mean", "median", "min", "max"):
        t.add_column(col, justify="right")
    if values:
        t.add_row(str(len(values)), *(f"{f(values):.4f}" for f in (statistics.fmean, statistics.median, min, max)))
    return t


def examples(rows: list[dict[str, Any]], n: int = 10) -> Any:
    """A rich table of the first rows."""
    from rich.table import Table

    t = Table(show_edge=False)
    t.add_column("id")
    t.add_column("tuco", justify="right")
    t.add_column("tokens", justify="right")
    t.add_column("prompt", overflow="ellipsis", no_wrap=True, max_width=60)
    for r in rows[:n]:
        t.add_row(str(r["id"]), f"{r['tuco']:.4f}", str(r["n_tokens"]), r["prompt"].replace("\n", " "))
    return t


def run(args: argparse.Namespace) -> int:
    from tuco.steering import alpha_label, parse_alpha

    alpha = parse_alpha(args.alpha)
    start = start_job(args, {"verb": "score", "alpha": alpha_label(alpha), "next_turn": True if args.next_turn else None})
    if isinstance(start, int):
        return start
    if not args.out:
        return _print_only(start.model, start.prompts, start.bad, args, alpha)
    from tuco.jobs import score_to

    def backoff(size: int) -> None:
        err_console.print(f"[yellow]out of memory: batch size lowered to {size}[/yellow]", markup=True)

    def show(rows: list[dict[str, Any]]) -> None:
        err_console.print(summary(rows))
        err_console.print(examples(rows))

    with progress_bar("scoring", enabled=start.ranks.is_main) as progress:
        result = score_to(
            start.model,
            start.prompts,
            args.out,
            alpha=alpha,
            chat=args.chat,
            system=args.system,
            per_token=args.per_token,
            batch_size=args.batch_size,
            resume=args.resume,
            overwrite=args.overwrite,
            bad=start.bad,
            progress=progress,
            on_backoff=backoff,
            ranks=start.ranks,
            next_turn=args.next_turn,
        )
    return end_job(result, start, show)


def _print_only(model: Decomposable, prompts: list[Any], bad: list[Any], args: argparse.Namespace, alpha: Any) -> int:
    """No --out: score and print ``id<TAB>tuco`` lines (nothing written)."""
    from dataclasses import asdict

    from tuco.jobs import prepare_prompts
    from tuco.scoring import score_encoded

    encoded, skipped, _ = prepare_prompts(model, prompts, chat=args.chat, system=args.system, responses=not args.next_turn)
    report_bad(skipped)
    scores = score_encoded(model, encoded, alpha=alpha, per_token=args.per_token, batch_size=args.batch_size)
    rows = [{"id": e.prompt.id, "prompt": e.prompt.display, **asdict(s)} for e, s in zip(encoded, scores)]
    err_console.print(summary(rows))
    for row in rows:
        print(f"{row['id']}\t{row['tuco']:.6f}")
    return 1 if bad or skipped else 0
