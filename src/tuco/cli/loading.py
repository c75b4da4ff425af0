"""From a verb's options to what the library takes: the checkpoints the model options name, the loaded pair
or chain (with a spinner), and the prompts of --prompt / --prompts. Imports nothing heavy at module level."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from tuco.errors import ConfigError
from tuco.measures.prompts import BadRow, Prompt, read_prompts

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable


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


def load(args: argparse.Namespace, *, quiet: bool = False, device: str | None = None) -> Decomposable:
    """Load the pair (or chain) the model options name, with a spinner on stderr (none when ``quiet``)."""
    from tuco.cli.display import spinner
    from tuco.cli.options import parse_max_memory

    names = model_names(args)
    quiet_transformers()
    placement = dict(
        dtype=args.dtype,
        device=None if args.device_map else (device or args.device or default_device()),
        device_map=args.device_map,
        max_memory=parse_max_memory(args.max_memory),
        trust_remote_code=args.trust_remote_code,
    )
    with spinner(f"loading {', '.join(names)}", quiet):
        if len(names) > 2 or getattr(args, "chain", None):
            from tuco.models.chain import load_chain

            model: Decomposable = load_chain(names, **placement)
        else:
            from tuco.models.pair import load_pair

            model = load_pair(names[0], names[1], **placement)
    model.full_path = bool(args.full_path)
    return model


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
