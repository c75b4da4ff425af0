"""`tuco generate`: one response per prompt and alpha, with TuCo at every generated token."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tuco.cli.display import json_summary, print_json, progress_bar, quiet, report_bad, rows_table
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
    from tuco.runs.specs import GenerateSpec

HELP = "generate with FTC scaled by alpha, with TuCo at every generated token"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tuco.measures.sampling import Sampling
    from tuco.runs.specs import GenerateSpec

    p = sub.add_parser("generate", help=HELP, description=HELP + ". One response per prompt and alpha.")
    add_model_options(p)
    add_prompt_options(p)
    add_output_options(p, what="where the rows go: a run directory, or a .jsonl/.parquet file (without --out, responses are printed)")
    p.add_argument(
        "--alpha",
        nargs="+",
        default=["1"],
        metavar="A",
        help=(
            "one or more alphas, space- or comma-separated (each a number, or one per layer as 1:1:0.5; "
            "a chain: one per stage, 1/0.5); default 1"
        ),
    )
    add_spec_options(p, Sampling, ["max_new_tokens", "temperature", "top_p", "seed"])
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="prompts per decoding batch (default 8)")
    add_spec_options(p, GenerateSpec, ["per_token"])
    add_parallel_options(p)
    add_display_options(p)
    p.set_defaults(run=run)


def _table(rows: list[dict[str, Any]], width: int) -> Any:
    """The first 50 responses: ids and numbers whole at any ``width``, the response wrapped."""
    numbers = [("alpha", "alpha", ""), ("prompt_tuco", "prompt TuCo", ".4f"), ("mean_tuco", "mean TuCo", ".4f")]
    return rows_table(rows[:50], numbers, ("response", "response"), fold=True, width=width)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tuco.engine.alpha import Alpha, check_distinct
    from tuco.measures.sampling import Sampling
    from tuco.runs.specs import GenerateSpec

    alphas = [Alpha.of(a) for given in args.alpha for a in given.split(",") if a.strip()]  # --alpha 0 1 or 0,1
    check_distinct(alphas)
    sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    start = start_job(args, {"verb": "generate", "alphas": [a.label for a in alphas], **sampling.settings()})
    if isinstance(start, int):
        return start
    spec = GenerateSpec(chat=args.chat, system=args.system, per_token=args.per_token, sampling=sampling)
    specs = [spec.with_alpha(a) for a in alphas]
    if not args.out:
        return _print_only(start.model, start.prompts, len(start.bad), args, specs)
    from tuco.runs.jobs import measure_to

    with progress_bar("generating", enabled=start.ranks.is_main and not quiet(args)) as progress:
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
            ranks=start.ranks,
        )
    return end_job(result, start, lambda rows: (out := Console()).print(_table(rows, out.width)))


def _print_only(model: Decomposable, prompts: list[Prompt], n_bad: int, args: argparse.Namespace, specs: list[GenerateSpec]) -> int:
    """No --out: generate and print a table (nothing written)."""
    from rich.console import Console

    from tuco.measures.generation import generate_encoded
    from tuco.runs.jobs import prepare_prompts

    encoded, skipped, _ = prepare_prompts(model, prompts, chat=args.chat, system=args.system, extra=args.max_new_tokens)
    report_bad(skipped)
    rows = [
        {"id": g.prompt_id, "alpha": g.alpha, "prompt_tuco": g.prompt_tuco, "mean_tuco": g.mean_tuco, "response": g.text}
        for spec in specs
        for g in generate_encoded(model, encoded, alpha=spec.alpha, batch_size=args.batch_size, sampling=spec.sampling)
    ]
    if args.json:
        print_json(json_summary(rows, out=None, n_rows=len(rows), n_skipped=n_bad + len(skipped), rows=rows))
    elif not args.quiet:
        out = Console()
        out.print(_table(rows, out.width))
    return 1 if n_bad or skipped else 0
