"""`tuco generate`: one response per prompt and alpha, with TuCo at every generated token."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from rich.console import Console

from tuco.cli.common import add_model_options, add_prompt_options, err_console, finish, parse_alpha, prepare, row_base
from tuco.errors import TucoError

HELP = "generate with FTC scaled by alpha, with TuCo at every generated token"
ROW_KEYS = {"id", "prompt", "alpha", "response", "tokens", "token_ids", "token_tuco", "prompt_tuco", "mean_tuco",
            "n_new_tokens", "finished", "prompt_tokens", "prompt_token_tuco", "seed", "temperature"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("generate", help=HELP, description=HELP + ". One response per prompt and alpha.")
    add_model_options(p)
    add_prompt_options(p)
    p.add_argument("--alpha", nargs="+", default=["1"], metavar="A",
                   help="one or more alphas (each a number, or comma-separated per-layer values); default 1")
    p.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="default 64")
    p.add_argument("--temperature", type=float, default=0.0, metavar="X", help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling (with --temperature > 0)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="seed for sampling (each alpha starts from it)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="prompts per generate call (default 8)")
    p.add_argument("--per-token", action="store_true", help="also store TuCo at every prompt token")
    p.add_argument("--out", default=None, metavar="OUT", help="results file, .jsonl or .parquet")
    p.set_defaults(run=run)


def _row_key(row: dict[str, Any]) -> tuple[str, str]:
    return (json.dumps(row["alpha"]), str(row["id"]))


def run(args: argparse.Namespace) -> int:
    import torch

    from tuco.generation import generate_ids
    from tuco.runs import RowWriter, write_manifest

    alphas = [parse_alpha(a) for a in args.alpha]
    if args.max_new_tokens < 1:
        raise TucoError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.temperature < 0:
        raise TucoError(f"--temperature must be >= 0, got {args.temperature}")
    job = prepare(args, alphas)
    pair, chat, encoded, bad = job.pair, job.chat, job.encoded, job.bad
    writer = RowWriter(args.out) if args.out else None
    config = dict(verb="generate", base=args.base, tuned=args.tuned, dtype=args.dtype, alphas=alphas, chat=chat,
                  system=args.system, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                  top_p=args.top_p, seed=args.seed)
    if writer:
        write_manifest(args.out, config, status="running")
    table = Table(show_edge=False, show_lines=True)
    for col, kw in (("id", {}), ("alpha", {"justify": "right"}), ("prompt TuCo", {"justify": "right"}),
                    ("mean TuCo", {"justify": "right"}), ("response", {"overflow": "fold"})):
        table.add_column(col, **kw)
    order = [(json.dumps(a), e.prompt.id) for a in alphas for e in encoded]
    try:
        for alpha in alphas:
            if args.seed is not None:
                torch.manual_seed(args.seed)
            with err_console.status(f"generating (alpha={alpha})"):
                for start in range(0, len(encoded), args.batch_size):
                    chunk = encoded[start : start + args.batch_size]
                    outs = generate_ids(pair, [e.ids for e in chunk], alpha=alpha, max_new_tokens=args.max_new_tokens,
                                        temperature=args.temperature, top_p=args.top_p, per_token=args.per_token)
                    rows = []
                    for e, (ids, tok_tuco, p_tuco, finished, p_tok) in zip(chunk, outs):
                        text = pair.tokenizer.decode(ids, skip_special_tokens=True)
                        mean = sum(tok_tuco) / len(tok_tuco) if tok_tuco else p_tuco
                        row = {**row_base(e.prompt, ROW_KEYS), "id": e.prompt.id, "prompt": e.prompt.display,
                               "alpha": alpha, "response": text, "token_ids": ids,
                               "tokens": pair.tokenizer.convert_ids_to_tokens(ids), "token_tuco": tok_tuco,
                               "prompt_tuco": p_tuco, "mean_tuco": mean, "n_new_tokens": len(ids), "finished": finished,
                               "seed": args.seed, "temperature": args.temperature}
                        if p_tok is not None:
                            row["prompt_tokens"] = pair.tokenizer.convert_ids_to_tokens(e.ids)
                            row["prompt_token_tuco"] = p_tok
                        rows.append(row)
                        table.add_row(e.prompt.id, str(alpha), f"{p_tuco:.4f}", f"{mean:.4f}", text)
                    if writer:
                        writer.write(rows)
    except KeyboardInterrupt:
        finish(writer, args, config, job, True, order, key=_row_key)
        return 130
    finish(writer, args, config, job, False, order, key=_row_key)
    Console().print(table)
    if bad:
        err_console.print(f"[yellow]{job.summary_of_skipped()}[/yellow]")
        return 1
    return 0
