"""The demo suite over many adapters: the recipe's seeds (adapters as samples, synthesised into one headline
per claim) and null adapters (no safety training: how often each primary claim fires when there is nothing
to find). Each adapter's suite is an ordinary ``tuco demo`` directory, resumable on its own.

    tuco demo --pair gemma --seeds 0-4 --out runs/gemma-seeds     # trains missing seeds, runs, synthesises
    tuco demo --pair demo --nulls 0-19 --out runs/demo-nulls       # draws null adapters, runs, counts
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.errors import ConfigError

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable


def parse_range(text: str) -> list[int]:
    """``0-4`` -> [0, 1, 2, 3, 4]; ``0,2,5`` -> [0, 2, 5]; ConfigError naming the text otherwise."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    except ValueError as err:
        raise ConfigError(f"{text!r}: give seeds as a range 0-4 or a list 0,2,5") from err
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise ConfigError(f"{text!r}: give distinct seeds >= 0, as a range 0-4 or a list 0,2,5")
    return out


def seed_adapter(pair: str, seed: int, adapters: Path, say: Callable[[str], None] = print) -> Path:
    """The fine-tuned checkpoint (demo) or adapter (gemma) of ``seed``: the shipped one for seed 0, else
    ``adapters/<pair>-seed<N>`` (trained with the recipe first when missing: same data, only the seed differs)."""
    from tuco.models.shipped import shipped_pair_dirs

    if seed == 0:
        return shipped_pair_dirs(pair)[1]
    out = adapters / f"{pair}-seed{seed}"
    tuned = out / "tuned" if pair == "demo" else out
    trained = (tuned / "config.json").is_file() or (tuned / "adapter_config.json").is_file()
    if trained and (out / "behaviour.json").is_file():  # trained and its card's refusal rates measured
        return tuned
    from tuco.demo.evaluate import write_cards, write_gemma_card

    if trained:  # stopped after training, before its card: only the card is written now
        say(f"measuring the refusal rates of {out} for its card (it was trained; its card was not written)")
    else:
        say(f"training the {pair} recipe with seed {seed} into {out} (the shipped recipe, only the seed differs)")
    if pair == "gemma":
        from tuco.demo.gemma_recipe import GemmaRecipe, train_gemma

        if not trained:
            train_gemma(out, GemmaRecipe(seed=seed))
        write_gemma_card(out)
    else:
        from tuco.demo.train import Recipe, finetune_shipped

        if not trained:
            finetune_shipped(out, Recipe(seed=seed, data_seed=0))
        write_cards(out)
    return tuned


def null_adapter(pair: str, seed: int, out: Path, kind: str = "random") -> Path:
    """A null adapter (no safety training) for ``pair``'s base into ``out`` (made once; kept for a resume)."""
    from tuco.demo import nulls
    from tuco.models.shipped import ADAPTER_DIR, demo_pair_dirs

    if (out / "adapter_config.json").is_file():
        return out
    if kind == "random" and pair == "gemma":
        nulls.random_lora(ADAPTER_DIR, out, seed)
    elif kind == "random":
        base, tuned = demo_pair_dirs()
        nulls.random_lora_like(base, tuned, out, seed)
    elif kind == "prose" and pair == "demo":
        nulls.prose_lora(demo_pair_dirs()[0], out, nulls.ProseNull(seed=seed))
    else:
        raise ConfigError(f"no {kind!r} null for the {pair} pair: use random (or prose on the demo pair)")
    if pair == "demo":  # the demo base is a raw LM: the suite's chats need the fine-tune's tokenizer (its chat template)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(demo_pair_dirs()[1]).save_pretrained(out)
    return out


def run_adapters(
    pair: str,
    tuned: Sequence[tuple[str, Path]],
    out: Path,
    suite: Callable[[Any, Path], dict[str, dict[str, Any]]],
    *,
    dtype: str = "float32",
    device: str = "cpu",
) -> dict[str, dict[str, dict[str, Any]]]:
    """``suite(pair_model, its_dir)`` for each (label, fine-tuned checkpoint or adapter) on ``pair``'s base,
    into ``out/<label>``; their results by label."""
    from tuco.models.pair import load_pair
    from tuco.models.shipped import shipped_pair_dirs

    base = shipped_pair_dirs(pair)[0]
    results = {}
    for label, path in tuned:
        model = load_pair(base, path, dtype=dtype, device=device)
        results[label] = suite(model, out / label)
        del model
    return results


def write_nulls(out: Path, results: dict[str, dict[str, dict[str, Any]]], pair: str, kind: str) -> dict[str, Any]:
    """``out/nulls.json``: each primary claim's false-positive rate over the nulls (``tuco.stats.nulls``)."""
    from tuco.runs import atomic_write_text
    from tuco.stats.nulls import as_dicts, false_positive_rates

    runs = [{name: m.get("findings", []) for name, m in r.items()} for r in results.values()]
    table = {"pair": pair, "null": kind, "nulls": list(results), "rates": as_dicts(false_positive_rates(runs))}
    atomic_write_text(out / "nulls.json", json.dumps(table, indent=1, default=str) + "\n")
    return table


def run_many(
    pair: str,
    out: Path,
    *,
    seeds: Sequence[int] = (),
    nulls: Sequence[int] = (),
    null_kind: str = "random",
    adapters: Path | None = None,
    say: Callable[[str], None] = print,
    dtype: str = "float32",
    device: str = "cpu",
    **demo: Any,
) -> dict[str, Any]:
    """The demo suite on each seed's adapter then their synthesis (``out/synthesis.json``, and
    ``out/report.html`` with the synthesis first), or on each null
    adapter then the false-positive rates (``out/nulls.json``). ``demo``: ``run_demo``'s options (quick,
    resume, overwrite, progress ...)."""
    from tuco.demo.run import run_demo

    if bool(seeds) == bool(nulls):
        raise ConfigError("give --seeds or --nulls (one of them)")
    from tuco.experiments.synthesis import MIN_ADAPTERS

    if seeds and len(seeds) < MIN_ADAPTERS:  # refused before anything runs, not after hours of suites
        raise ConfigError(
            f"--seeds {','.join(map(str, seeds))}: a synthesis needs at least {MIN_ADAPTERS} adapters (e.g. --seeds 0-4); "
            "for one adapter use --tuned DIR"
        )

    def suite(model: Decomposable, where: Path) -> dict[str, dict[str, Any]]:
        return run_demo(model, where, pair, **demo)

    if seeds:
        store = adapters or out / "adapters"
        tuned = [(f"seed-{s}", seed_adapter(pair, s, store, say)) for s in seeds]
        results = run_adapters(pair, tuned, out, suite, dtype=dtype, device=device)
        from tuco.experiments.synthesis import synthesize_runs
        from tuco.runs import atomic_write_text

        synthesis = synthesize_runs([out / label for label in results], list(results))
        atomic_write_text(out / "synthesis.json", json.dumps(synthesis, indent=1, default=str) + "\n")
        from tuco.report.load import open_source
        from tuco.report.render import build_html

        atomic_write_text(out / "report.html", build_html(open_source(out), f"tuco demo over {len(results)} adapters ({pair} pair)"))
        return synthesis
    tuned = [(f"null-{s}", null_adapter(pair, s, out / f"null-{s}" / "adapter", null_kind)) for s in nulls]
    results = run_adapters(pair, tuned, out, suite, dtype=dtype, device=device)
    return write_nulls(out, results, pair, null_kind)
