"""`tuco generate`: one response per prompt and alpha, with TuCo at every generated token."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tuco.cli.common import (
    add_model_options,
    add_output_options,
    add_prompt_options,
    check_positive,
    collect_prompts,
    err_console,
    finish_line,
    load,
    progress_bar,
    report_bad,
    run_launcher,
)
from tuco.errors import ConfigError

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
        help="one or more alphas (each a number, or one per layer as 1:1:0.5; a chain: one per stage, 1/0.5); default 1",
    )
    p.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="default 64")
    p.add_argument("--temperature", type=float, default=0.0, metavar="X", help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling in (0, 1] (with --temperature > 0)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="seed for sampling (each batch seeded from it: resumable)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="prompts per generate call (default 8)")
    p.add_argument("--per-token", action="store_true", help="also store TuCo at every prompt token")
    p.add_argument("--processes", type=int, default=1, metavar="N", help="data-parallel ranks on this machine; needs --out")
    p.set_defaults(run=run)


def _table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(show_edge=False, show_lines=True)
    for col, kw in (
        ("id", {}),
        ("alpha", {"justify": "right"}),
        ("prompt TuCo", {"justify": "right"}),
        ("mean TuCo", {"justify": "right"}),
        ("response", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)
    for r in rows[:50]:
        table.add_row(str(r["id"]), str(r["alpha"]), f"{r['prompt_tuco']:.4f}", f"{r['mean_tuco']:.4f}", r["response"])
    return table


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tuco.generation import check_sampling
    from tuco.parallel import device_for, ranks
    from tuco.steering import parse_alpha

    alphas = [parse_alpha(a) for a in args.alpha]
    check_positive(args.batch_size, "--batch-size")
    check_sampling(args.max_new_tokens, args.temperature, args.top_p)
    launched = run_launcher(args, sys.argv[1:])
    if launched is not None:
        return launched
    r = ranks()
    if (args.resume or args.overwrite) and not args.out:
        raise ConfigError("--resume and --overwrite need --out (the run to continue or replace)")
    prompts, bad = collect_prompts(args)
    if r.is_main:
        report_bad(bad)
    if args.out:
        from tuco.runs import check_output

        check_output(args.out)
    model = load(args, quiet=not r.is_main, device=None if args.device_map else device_for(r, args.device))
    if not args.out:
        return _print_only(model, prompts, bad, args, alphas)
    from tuco.jobs import generate_to
    from tuco.runs import read_rows

    with progress_bar("generating", enabled=r.is_main) as progress:
        result = generate_to(
            model,
            prompts,
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
            bad=bad,
            progress=progress,
            ranks=r,
        )
    if not r.is_main:
        return 0
    report_bad(result.bad[len(bad) :])
    finish_line(result)
    Console().print(_table(read_rows(result.out)))
    if result.bad:
        err_console.print(f"[yellow]{len(result.bad)} of {result.n_prompts} prompts skipped (see above)[/yellow]", markup=True)
        return 1
    return 0


def _print_only(model: Any, prompts: list[Any], bad: list[Any], args: argparse.Namespace, alphas: list[Any]) -> int:
    """No --out: generate and print a table (nothing written)."""
    from rich.console import Console

    from tuco.batching import encode_prompts
    from tuco.errors import PromptError
    from tuco.generation import iter_generate
    from tuco.prompts import has_chat_template
    from tuco.runs import require_unique

    require_unique([p.id for p in prompts])
    chat = has_chat_template(model.tokenizer) if args.chat is None else args.chat
    encoded, skipped = encode_prompts(model, prompts, chat=chat, system=args.system, extra=args.max_new_tokens)
    report_bad(skipped)
    if not encoded:
        raise PromptError("no usable prompts" + (f" ({len(bad) + len(skipped)} skipped, see above)" if bad or skipped else ""))
    rows = []
    for alpha in alphas:
        for gens in iter_generate(
            model,
            encoded,
            alpha=alpha,
            batch_size=args.batch_size,
            seed=args.seed,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
        ):
            rows += [
                {"id": g.prompt_id, "alpha": g.alpha, "prompt_tuco": g.prompt_tuco, "mean_tuco": g.mean_tuco, "response": g.text}
                for g in gens
            ]
    Console().print(_table(rows))
    return 1 if bad or skipped else 0
