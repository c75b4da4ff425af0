"""The embedded demo pair: a small Llama pre-trained on plain prose and fine-tuned on chats with
tuco's own safety data, shipped in ``pair/`` (bfloat16 safetensors, model cards, recipe.json) and
reproducible with ``tuco demo-train``. ``tuco demo`` runs the paper's analyses on it offline.
"""

from __future__ import annotations

from pathlib import Path

from tuco.errors import TucoError

PAIR_DIR = Path(__file__).with_name("pair")


def demo_pair_dirs() -> tuple[Path, Path]:
    """(base, tuned) checkpoint directories of the shipped demo pair."""
    base, tuned = PAIR_DIR / "base", PAIR_DIR / "tuned"
    if not (base / "config.json").exists() or not (tuned / "config.json").exists():
        raise TucoError(
            f"the demo pair is not installed in {PAIR_DIR}; reinstall tuco from a full clone, or train one with "
            "`tuco demo-train --out DIR` and use it with `--base DIR/base --tuned DIR/tuned`"
        )
    return base, tuned


SHIPPED_PAIRS = ("demo", "gemma")  # the names ``tuco.load_pair(NAME)`` and ``--pair NAME`` take


def shipped_pair_dirs(name: str) -> tuple[Path, Path]:
    """(base, tuned) directories of a shipped pair by name: ``demo`` (in the package) or ``gemma``
    (Gemma-3-270M converted on first use + tuco's LoRA adapter); nothing is looked up on a hub."""
    if name == "demo":
        return demo_pair_dirs()
    if name == "gemma":
        from tuco.demo.gemma import gemma_pair_dirs

        return gemma_pair_dirs()
    raise TucoError(f"no shipped pair named {name!r}: use one of {', '.join(SHIPPED_PAIRS)}")
