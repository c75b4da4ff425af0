"""Options and steps shared by the CLI verbs: model options, prompt options, alpha parsing, loading."""

from __future__ import annotations

import argparse
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from tuco.errors import ConfigError, PromptError, TucoError
from tuco.prompts import BadRow, Prompt, encode, read_prompts

err_console = Console(stderr=True, soft_wrap=True)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--base, --tuned, --dtype, --device, --device-map, --trust-remote-code."""
    g = p.add_argument_group("models")
    g.add_argument("--base", default=None, help="pre-trained model: hub id or local directory")
    g.add_argument("--tuned", default=None, help="fine-tuned model (hub id or directory), or a PEFT adapter directory")
    g.add_argument("--pair", default=None, choices=["demo"], help="a shipped pair instead of --base/--tuned: demo")
    g.add_argument("--dtype", default="auto", help="auto (checkpoint's), float32, bfloat16, float16 (default: auto)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda if available, else cpu)")
    g.add_argument("--device-map", default=None, help="'auto' spreads a large pair over devices (both blocks of a layer together)")
    g.add_argument("--max-memory", default=None, metavar="SPEC", help="with --device-map: budgets for both models, e.g. 0=20GiB,1=20GiB,cpu=60GiB")
    g.add_argument("--trust-remote-code", action="store_true", help="run code from the model repos (off: only for repos you trust)")


def add_prompt_options(p: argparse.ArgumentParser) -> None:
    """--prompt/--prompts, --chat/--no-chat, --system."""
    g = p.add_argument_group("prompts")
    g.add_argument("--prompt", action="append", default=None, metavar="TEXT", help="a prompt (repeatable)")
    g.add_argument("--prompts", default=None, metavar="FILE", help=".jsonl (prompt or messages), .csv (prompt column) or .txt (one per line)")
    g.add_argument("--chat", dest="chat", action="store_true", default=None, help="apply the tuned tokenizer's chat template (default when it has one)")
    g.add_argument("--no-chat", dest="chat", action="store_false", help="tokenize the raw text (with the tokenizer's default special tokens)")
    g.add_argument("--system", default=None, metavar="TEXT", help="system prompt (with the chat template)")


def parse_alpha(text: str) -> float | list[float]:
    """'1.1' -> 1.1; '1,1,0.5' -> one value per layer. Raises ConfigError on a bad value."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as err:
        raise ConfigError(f"alpha {text!r} is not a number (or a comma-separated list, one per layer)") from err
    for v in values:
        if not (v >= 0) or v == float("inf"):
            raise ConfigError(f"alpha must be a finite number >= 0, got {text!r}")
    return values[0] if len(values) == 1 else values


def parse_max_memory(spec: str | None) -> dict[int | str, str] | None:
    """'0=20GiB,cpu=60GiB' -> {0: '20GiB', 'cpu': '60GiB'}."""
    if not spec:
        return None
    out: dict[int | str, str] = {}
    for part in spec.split(","):
        device, sep, size = part.partition("=")
        if not sep or not size.strip():
            raise ConfigError(f"--max-memory {spec!r}: write DEVICE=SIZE pairs, e.g. 0=20GiB,cpu=60GiB")
        device = device.strip()
        out[int(device) if device.isdigit() else device] = size.strip()
    return out


def collect_prompts(args: argparse.Namespace) -> tuple[list[Prompt], list[BadRow]]:
    """Prompts from --prompt or --prompts (exactly one of them); bad rows are returned, not raised."""
    if bool(args.prompt) == bool(args.prompts):
        raise TucoError("give prompts with --prompt TEXT (repeatable) or --prompts FILE (one of the two)")
    if args.prompts:
        return read_prompts(args.prompts)
    good, bad = [], []
    for i, text in enumerate(args.prompt):
        if not text.strip():
            bad.append(BadRow(i + 1, f"--prompt number {i + 1} is empty"))
        else:
            good.append(Prompt(id=str(i), text=text))
    return good, bad


def resolve_pair(args: argparse.Namespace) -> None:
    """Fill --base/--tuned from --pair demo; require both otherwise."""
    if args.pair == "demo":
        if args.base or args.tuned:
            raise TucoError("give either --pair demo or --base/--tuned, not both")
        from tuco.demo import demo_pair_dirs

        base, tuned = demo_pair_dirs()
        args.base, args.tuned = str(base), str(tuned)
    elif not args.base or not args.tuned:
        raise TucoError("give the models with --base B --tuned T (or --pair demo)")


def default_device() -> str:
    """cuda when available, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load(args: argparse.Namespace, quiet: bool = False) -> Any:
    """Load the pair named by the model options, with a spinner on stderr (none when ``quiet``)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    from tuco.pair import load_pair

    hf_logging.disable_progress_bar()
    with err_console.status(f"loading {args.base} and {args.tuned}") if not quiet else nullcontext():
        return load_pair(
            args.base,
            args.tuned,
            dtype=args.dtype,
            device=None if args.device_map else (args.device or default_device()),
            device_map=args.device_map,
            max_memory=parse_max_memory(args.max_memory),
            trust_remote_code=args.trust_remote_code,
        )


@dataclass
class Encoded:
    """A prompt with its token ids."""

    prompt: Prompt
    ids: list[int]


def encode_all(pair: Any, prompts: list[Prompt], chat: bool | None, system: str | None) -> tuple[list[Encoded], list[BadRow]]:
    """Tokenise every prompt; an empty, rejected or too long prompt becomes a bad row (the others go on)."""
    from tuco.scoring import check_length

    good, bad = [], []
    for p in prompts:
        try:
            ids = encode(pair.tokenizer, p, chat=chat, system=system)
            check_length(pair, ids, p.id)
            good.append(Encoded(p, ids))
        except PromptError as err:
            bad.append(BadRow(-1, f"prompt {p.id}: {err}" if not str(err).startswith("prompt") else str(err)))
    return good, bad


def report_bad(bad: list[BadRow]) -> None:
    """Print each skipped row on stderr."""
    for row in bad:
        where = f"line {row.line}: " if row.line > 0 else ""
        err_console.print(f"[yellow]skipped[/yellow] {where}{row.reason}", highlight=False, markup=True)


@dataclass
class Job:
    """Everything a verb needs once its input is checked: the pair, the encoded prompts, the bad rows."""

    pair: Any
    chat: bool
    encoded: list[Encoded]
    bad: list[BadRow]
    n_input: int  # prompts given, good and bad

    def summary_of_skipped(self) -> str:
        """'N of M prompts skipped' for the closing line."""
        return f"{len(self.bad)} of {self.n_input} prompts skipped (see above)"


def prepare(args: argparse.Namespace, alphas: list[float | list[float]], quiet: bool = False) -> Job:
    """Check the options, read and report the prompts, load the pair, encode: everything before the first forward.

    Cheap checks (batch size, output path, prompt file) run before the models are loaded. ``quiet``
    (ranks other than 0) does not repeat the skipped-row reports.
    """
    from tuco.prompts import has_chat_template
    from tuco.runs import check_output_path

    if args.batch_size < 1:
        raise TucoError(f"--batch-size must be >= 1, got {args.batch_size}")
    resolve_pair(args)
    if args.out:
        check_output_path(args.out)
    prompts, bad = collect_prompts(args)
    if not quiet:
        report_bad(bad)
    n_input = len(prompts) + len(bad)
    if not prompts:
        raise TucoError("no usable prompts" + (f" ({len(bad)} skipped, see above)" if bad else ""))
    pair = load(args, quiet=quiet)
    if args.chat and not has_chat_template(pair.tokenizer):
        raise TucoError(f"--chat: the tuned tokenizer ({args.tuned}) has no chat template; use --no-chat")
    chat = has_chat_template(pair.tokenizer) if args.chat is None else args.chat
    for a in alphas:
        if isinstance(a, list) and len(a) != pair.n_layers:
            raise TucoError(f"--alpha has {len(a)} values but the model has {pair.n_layers} layers")
    encoded, bad_enc = encode_all(pair, prompts, chat, args.system)
    if not quiet:
        report_bad(bad_enc)
    bad += bad_enc
    if not encoded:
        raise TucoError(f"no usable prompts ({len(bad)} skipped, see above)")
    return Job(pair=pair, chat=chat, encoded=encoded, bad=bad, n_input=n_input)


def finish(writer: Any, args: argparse.Namespace, config: dict[str, Any], job: Job, interrupted: bool,
           order: list[Any], key: Any = None) -> int:
    """Close the output, merge what was written into the final file in input ``order`` (keeping every
    finished row, also when interrupted) and mark the manifest; returns the number of rows."""
    from tuco.runs import merge, row_id, write_manifest

    if writer is None:
        return 0
    writer.close()
    n_rows = merge(args.out, order, key=key or row_id)
    status = "interrupted" if interrupted else "finished"
    write_manifest(args.out, config, status=status, n_rows=n_rows, n_skipped=len(job.bad))
    if interrupted:
        err_console.print(f"interrupted: {n_rows} finished rows kept in {args.out} (continue with --resume)")
    else:
        err_console.print(f"wrote {n_rows} rows to {args.out}")
    return n_rows


def row_base(prompt: Prompt, reserved: set[str]) -> dict[str, Any]:
    """The input's extra fields, carried through (renamed input_<key> where they clash with ours)."""
    return {(f"input_{k}" if k in reserved else k): v for k, v in prompt.extra.items()}
