"""`tuco score`: TuCo of each prompt, one row per prompt, written as it is computed."""

from __future__ import annotations

import argparse
import statistics
from typing import TYPE_CHECKING, Any

from tuco.cli.display import err_console, json_summary, print_json, progress_bar, quiet, report_bad, rows_table
from tuco.cli.jobs import end_job, start_job
from tuco.cli.options import (
    add_display_options,
    add_model_options,
    add_output_options,
    add_parallel_options,
    add_prompt_options,
    add_spec_options,
)

if TYPE_CHECKING:
    from tuco.measures.prompts import Prompt
    from tuco.models.decomposable import Decomposable
    from tuco.runs.specs import ScoreSpec

HELP = "TuCo of each prompt (at its last token, before any generation)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tuco.runs.specs import ScoreSpec

    p = sub.add_parser("score", help=HELP, description=HELP + ". Writes one row per prompt.")
    add_model_options(p)
    add_prompt_options(p)
    add_output_options(
        p,
        what="where the rows go: a run directory, or a .jsonl/.parquet file (rows written as they finish; without --out, TuCo is printed)",
    )
    p.add_argument(
        "--alpha",
        default="1",
        help="FTC scale: a number, or one per layer as 1:1:0.5 (a chain: one per stage, 1/0.5); "
        "several comma-separated (0,0.5,1): one row per prompt and alpha",
    )
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="prompts per forward pass (default 8)")
    add_spec_options(p, ScoreSpec, ["per_token", "next_turn"])
    add_parallel_options(p)
    add_display_options(p)
    p.set_defaults(run=run)


def summary(rows: list[dict[str, Any]]) -> Any:
    """A rich table: count, mean, median, min, max of TuCo (and of the responses' mean TuCo, where scored)."""
    from rich.table import Table

    t = Table(title="TuCo", show_edge=False)
    for col in ("", "rows", "mean", "median", "min", "max"):
        t.add_column(col, justify="right", no_wrap=True)
    for key, name in (("tuco", "last prompt token"), ("tuco_response", "response mean")):
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            t.add_row(name, str(len(values)), *(f"{f(values):.4f}" for f in (statistics.fmean, statistics.median, min, max)))
    return t


def examples(rows: list[dict[str, Any]], n: int = 10) -> Any:
    """A rich table of the first rows: ids and numbers whole at any width, the prompt cut with an ellipsis."""
    shown = rows[:n]
    numbers = [("tuco", "tuco", ".4f")]
    if len({str(r.get("alpha")) for r in shown}) > 1:
        numbers.insert(0, ("alpha", "alpha", ""))
    if any(r.get("tuco_response") is not None for r in shown):
        numbers.append(("tuco_response", "response", ".4f"))
    numbers.append(("n_tokens", "tokens", "d"))
    return rows_table(shown, numbers, ("prompt", "prompt"))


def run(args: argparse.Namespace) -> int:
    from tuco.engine.alpha import Alpha, check_distinct
    from tuco.runs.specs import ScoreSpec

    alphas = [Alpha.of(a) for a in args.alpha.split(",") if a.strip()] or [Alpha.of(args.alpha)]
    check_distinct(alphas)
    given = {"alpha": alphas[0].label} if len(alphas) == 1 else {"alphas": [a.label for a in alphas]}
    start = start_job(args, {"verb": "score", **given, "next_turn": True if args.next_turn else None})
    if isinstance(start, int):
        return start
    spec = ScoreSpec(chat=args.chat, system=args.system, per_token=args.per_token, next_turn=args.next_turn)
    specs = [spec.with_alpha(a) for a in alphas]
    if not args.out:
        return _print_only(start.model, start.prompts, len(start.bad), args, specs)
    from tuco.runs.jobs import measure_to

    def backoff(size: int) -> None:
        err_console.print(f"[yellow]out of memory: batch size lowered to {size}[/yellow]", markup=True)

    with progress_bar("scoring", enabled=start.ranks.is_main and not quiet(args)) as progress:
        result = measure_to(
            start.model,
            specs,
            start.prompts,
            args.out,
            batch_size=args.batch_size,
            resume=args.resume,
            overwrite=args.overwrite,
            bad=start.bad,
            progress=progress,
            on_backoff=backoff,
            ranks=start.ranks,
        )

    def show(rows: list[dict[str, Any]]) -> None:
        err_console.print(summary(rows))
        err_console.print(examples(rows))

    return end_job(result, start, show)


def _print_only(model: Decomposable, prompts: list[Prompt], n_bad: int, args: argparse.Namespace, specs: list[ScoreSpec]) -> int:
    """No --out: score and print ``id<TAB>tuco`` lines (with several alphas ``id<TAB>alpha<TAB>tuco``; given
    responses add their mean TuCo), or with --json one JSON document; nothing written."""
    from dataclasses import asdict

    from tuco.measures.scoring import score_encoded
    from tuco.runs.jobs import prepare_prompts

    encoded, skipped, _ = prepare_prompts(model, prompts, chat=args.chat, system=args.system, responses=specs[0].responses)
    report_bad(skipped)
    rows = []
    for spec in specs:
        scores = score_encoded(model, encoded, alpha=spec.alpha, per_token=args.per_token, batch_size=args.batch_size)
        rows += [{"id": e.prompt.id, "alpha": spec.alpha.label, "prompt": e.prompt.display, **asdict(s)} for e, s in zip(encoded, scores)]
    responses = any(r.get("tuco_response") is not None for r in rows)
    if args.json:
        keep = ("id", "alpha", "tuco", "tuco_response", "n_tokens")
        table = [{k: r[k] for k in keep if r.get(k) is not None} for r in rows]
        print_json(json_summary(rows, out=None, n_rows=len(rows), n_skipped=n_bad + len(skipped), rows=table))
        return 1 if n_bad or skipped else 0
    if not args.quiet:
        err_console.print(summary(rows))
    for row in rows:
        cells = [str(row["id"]), *([str(row["alpha"])] if len(specs) > 1 else []), f"{row['tuco']:.6f}"]
        if responses:
            cells.append("" if row.get("tuco_response") is None else f"{row['tuco_response']:.6f}")
        print("\t".join(cells))
    return 1 if n_bad or skipped else 0
