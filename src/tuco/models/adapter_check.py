"""A PEFT adapter checked against the base it is loaded on, before any weights load: the base its
``adapter_config.json`` names, and the modules its LoRA matrices target with their shapes, read from the
safetensors headers of both checkpoints (never their tensors). Torch-free."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from tuco.errors import IncompatiblePairError

PEFT_PREFIX = "base_model.model."
# Config fields that must agree between the base an adapter was trained on and the base it is given.
SHAPE_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size")


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a .safetensors file's header (8-byte length, then JSON); {} when unreadable."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                return {}
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError):
        return {}
    return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "shape" in v}


def checkpoint_shapes(directory: Path) -> dict[str, list[int]]:
    """Every weight's shape of a local checkpoint (one safetensors file or an index of shards); {} when none."""
    index = directory / "model.safetensors.index.json"
    files: list[Path] = []
    if index.is_file():
        try:
            files = [directory / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        except (OSError, ValueError, KeyError, TypeError):
            files = []
    elif (directory / "model.safetensors").is_file():
        files = [directory / "model.safetensors"]
    shapes: dict[str, list[int]] = {}
    for f in files:
        shapes |= safetensors_shapes(f)
    return shapes


def _config(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    text = data.get("text_config") if isinstance(data.get("text_config"), dict) else None
    return {**data, **(text or {})}


def _lora_modules(shapes: dict[str, list[int]]) -> dict[str, tuple[int | None, int | None]]:
    """Module name -> (in_features from lora_A, out_features from lora_B) of an adapter's LoRA weights."""
    out: dict[str, tuple[int | None, int | None]] = {}
    for key, shape in shapes.items():
        for part, pos in ((".lora_A.weight", 0), (".lora_B.weight", 1)):
            if key.endswith(part) and len(shape) == 2:
                module = key[: -len(part)].removeprefix(PEFT_PREFIX)
                have = list(out.get(module, (None, None)))
                have[pos] = shape[1] if pos == 0 else shape[0]
                out[module] = (have[0], have[1])
    return out


def _find(module: str, base: dict[str, list[int]]) -> list[int] | None:
    """The base weight of ``module``: the same name, or one ending in it (checkpoints nest the language
    model under varying prefixes)."""
    exact = base.get(module + ".weight")
    if exact is not None:
        return exact
    tail = "." + module.split(".", 1)[-1] + ".weight" if "." in module else "." + module + ".weight"
    hits = [k for k in base if k.endswith(tail)]
    return base[hits[0]] if len(hits) == 1 else None


def check_adapter(base: str, adapter: str) -> None:
    """Raise IncompatiblePairError, before any weights load, when the local adapter ``adapter`` was not
    trained on the local checkpoint ``base``: the base its config names (when that is a local directory)
    has another architecture, or the modules it targets are missing from ``base`` or have other shapes.
    Hub ids and checkpoints without safetensors are left to the load itself."""
    a, b = Path(adapter).expanduser(), Path(base).expanduser()
    if not (a / "adapter_config.json").is_file() or not (b / "config.json").is_file():
        return
    try:
        named = json.loads((a / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        named = None
    given = _config(b)
    if isinstance(named, str) and named and Path(named).expanduser().is_dir() and Path(named).expanduser().resolve() != b.resolve():
        trained = _config(Path(named).expanduser())
        diff = [f"{k} {trained.get(k)} vs {given.get(k)}" for k in SHAPE_FIELDS if k in trained and trained.get(k) != given.get(k)]
        if diff:
            raise IncompatiblePairError(
                f"adapter {adapter!r} was trained on {named!r}, which differs from the base {base!r} ({'; '.join(diff[:3])}); "
                f"give that base (--base {named})"
            )
    modules = _lora_modules(safetensors_shapes(a / "adapter_model.safetensors"))
    weights = checkpoint_shapes(b)
    if not modules or not weights:
        return
    trained_on = f" (it names {named!r})" if isinstance(named, str) and named else ""
    found = {m: _find(m, weights) for m in modules}
    missing = [m for m, w in found.items() if w is None]
    if len(missing) == len(modules):
        raise IncompatiblePairError(
            f"adapter {adapter!r} targets modules the base {base!r} does not have "
            f"({', '.join(sorted({m.rsplit('.', 1)[-1] for m in missing}))}): it was trained on "
            f"another architecture{trained_on}; give the base it was trained on"
        )
    for m, w in found.items():
        if w is None or len(w) != 2:
            continue
        n_in, n_out = modules[m]
        if (n_in is not None and n_in != w[1]) or (n_out is not None and n_out != w[0]):
            raise IncompatiblePairError(
                f"adapter {adapter!r} does not fit the base {base!r}: {m} is {w[1]} -> {w[0]} in the base but "
                f"{n_in} -> {n_out} in the adapter; it was trained on another model{trained_on}; give the base it was trained on"
            )
