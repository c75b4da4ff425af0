"""`tuco generate`: one response per prompt and alpha, with TuCo at every generated token."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from tuco.cli.common import (
    add_display_options,
    add_model_options,
    add_output_options,
    add_prompt_options,
    end_job,
    json_summary,
    print_json,
    progress_bar,
    quiet,
    report_bad,
    rows_table,
    start_job,
)

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

HELP = "generate with FTC scaled by alpha, with TuCo at every generated token"


def add_parser(sub: Any) -> None:
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
    p.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="default 64")
    p.add_argument("--temperature", type=float, default=0.0, metavar="X", help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling in (0, 1] (with --temperature > 0)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="seed for sampling (each batch seeded from it: resumable)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="prompts per generate call (default 8)")
    p.add_argument("--per-token", action="store_true", help="also store TuCo at every prompt token")
    p.add_argument("--processes", type=int, default=1, metavar="N", help="data-parallel ranks on this machine; needs --out")
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

    alphas = [Alpha.of(a) for given in args.alpha for a in given.split(",") if a.strip()]  # --alpha 0 1 or 0,1
    check_distinct(alphas)
    sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    start = start_job(args, {"verb": "generate", "alphas": [a.label for a in alphas], **sampling.settings()})
    if isinstance(start, int):
        return start
    if not args.out:
        return _print_only(start.model, start.prompts, start.bad, args, alphas, sampling)
    from tuco.runs.jobs import generate_to

    with progress_bar("generating", enabled=start.ranks.is_main and not quiet(args)) as progress:
        result = generate_to(
            start.model,
            start.prompts,
            args.out,
            alphas=alphas,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            chat=args.chat,
            system=args.system,
            per_token=args.per_token,
            batch_size=args.batch_size,
            resume=args.resume,
            overwrite=args.overwrite,
            bad=start.bad,
            progress=progress,
            ranks=start.ranks,
        )
    return end_job(result, start, lambda rows: (out := Console()).print(_table(rows, out.width)))


def _print_only(model: Decomposable, prompts: list[Any], bad: list[Any], args: argparse.Namespace, alphas: list[Any], sampling: Any) -> int:
    """No --out: generate and print a table (nothing written)."""
    from rich.console import Console

    from tuco.measures.generation import generate_encoded
    from tuco.runs.jobs import prepare_prompts

    encoded, skipped, _ = prepare_prompts(model, prompts, chat=args.chat, system=args.system, extra=args.max_new_tokens)
    report_bad(skipped)
    rows = [
        {"id": g.prompt_id, "alpha": g.alpha, "prompt_tuco": g.prompt_tuco, "mean_tuco": g.mean_tuco, "response": g.text}
        for alpha in alphas
        for g in generate_encoded(model, encoded, alpha=alpha, batch_size=args.batch_size, sampling=sampling)
    ]
    if args.json:
        print_json(json_summary(rows, out=None, n_rows=len(rows), n_skipped=len(bad) + len(skipped), rows=rows))
    elif not args.quiet:
        out = Console()
        out.print(_table(rows, out.width))
    return 1 if bad or skipped else 0
