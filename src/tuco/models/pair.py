"""ModelPair: a pre-trained (base) and a fine-tuned (tuned) model that tuco decomposes against each other.

Loads two checkpoints (hub ids or local directories) or a base model plus a PEFT adapter (one copy
of the base weights; the PT call runs the same block with the adapter disabled), checks that the
two are compatible before any computation, and carries the tuned model's tokenizer.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from torch import nn

from tuco.engine.decomposition import Stage
from tuco.engine.layers import decoder_layers, hidden_size, num_layers, unwrap_peft
from tuco.errors import ConfigError, IncompatiblePairError, TucoError
from tuco.models.decomposable import DecomposableBase, context_length  # noqa: F401  (context_length: re-exported)

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

DTYPES: dict[str, torch.dtype | str] = {
    "auto": "auto",
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}

log = logging.getLogger(__name__)


def _family(config: PretrainedConfig) -> str:
    """Model family for the compatibility check; multimodal wrappers compare as their text model."""
    text = getattr(config, "text_config", None)
    family = getattr(text or config, "model_type", "?")
    return family.removesuffix("_text")


def check_compatible(bc: PretrainedConfig, tc: PretrainedConfig, base_name: str = "base", tuned_name: str = "tuned") -> None:
    """Raise IncompatiblePairError unless two configs have the same family, layer count and width.

    Warns (does not fail) when the vocabularies differ: x_0 is always the tuned model's embedding.
    """
    checks = [
        ("family (model_type)", _family(bc), _family(tc)),
        ("number of layers", num_layers(bc), num_layers(tc)),
        ("hidden size", hidden_size(bc), hidden_size(tc)),
    ]
    for what, b, t in checks:
        if b != t:
            raise IncompatiblePairError(
                f"base and tuned models differ in {what}: base has {b}, tuned has {t} "
                f"(base: {base_name}, tuned: {tuned_name}); "
                "TuCo needs a fine-tuned model and the pre-trained model it was tuned from"
            )
    bv, tv = getattr(bc, "vocab_size", None), getattr(tc, "vocab_size", None)
    if bv != tv:
        warnings.warn(
            f"base vocabulary ({bv}) differs from tuned vocabulary ({tv}); the tuned model's embeddings "
            "and head are used (the decomposition only needs the blocks to match)",
            stacklevel=2,
        )


def prepare_models(models: Sequence[nn.Module | None], tokenizer: PreTrainedTokenizerBase | None) -> None:
    """Put models in eval mode without gradients, and give the tokenizer left padding and a pad token."""
    for model in models:
        if model is not None:
            model.eval()
            model.requires_grad_(False)
    if tokenizer is not None:
        tokenizer.padding_side = "left"  # generation needs it; the recorder reads the mask anyway
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token


@dataclass
class ModelPair(DecomposableBase):
    """A fine-tuned model, the pre-trained model it came from, and the tuned tokenizer: the chain of
    two checkpoints (K = 1).

    ``base`` is None for a PEFT pair: ``tuned`` is then a PeftModel whose blocks, with adapters
    disabled, are the pre-trained blocks.
    """

    tuned: nn.Module
    base: nn.Module | None
    tokenizer: Any
    base_name: str = "base"
    tuned_name: str = "tuned"
    check: bool = True  # False when the configs were already checked (load_pair)
    full_path: bool = False  # True: never take the engine's fast path nor share LoRA base projections (debugging, comparisons)
    # True: put both models in eval mode without gradients (what measuring wants). False: leave their mode and
    # requires_grad as they are, for a model being trained (TucoCallback sets eval mode around each measurement
    # and restores it); the tokenizer still gets left padding and a pad token, so pass a copy if training uses it.
    freeze: bool = True

    def __post_init__(self) -> None:
        if self.base is not None and self.check:
            check_compatible(unwrap_peft(self.base).config, self.config, self.base_name, self.tuned_name)  # type: ignore[arg-type]
        prepare_models([self.tuned, self.base] if self.freeze else [], self.tokenizer)

    @property
    def is_peft(self) -> bool:
        """True when the PT blocks are the tuned blocks with their adapters disabled."""
        return self.base is None

    @property
    def pt_layers(self) -> nn.ModuleList:
        """The pre-trained model's decoder blocks (the tuned ones for a PEFT pair)."""
        return self.ft_layers if self.base is None else decoder_layers(self.base)

    @property
    def stage_names(self) -> list[str]:
        """The checkpoints, pre-trained first."""
        return [self.base_name, self.tuned_name]

    def stages(self) -> list[Stage]:
        """The two checkpoints as the engine sees them (a PEFT pair: one block list, adapters off for PT)."""
        return [Stage(self.pt_layers, () if self.is_peft else None), Stage(self.ft_layers)]

    def _pretrained_model(self) -> tuple[nn.Module, bool]:
        return (self.tuned, True) if self.base is None else (self.base, False)


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _looks_local(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a local path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _check_source(name: str, role: str) -> None:
    """Fail early, with the fix, on a path that clearly should be local but does not exist."""
    if not name or not name.strip():
        raise TucoError(f"{role} model is empty: give a hub id (e.g. Qwen/Qwen2.5-0.5B) or a local directory")
    p = Path(name).expanduser()
    if _looks_local(name) and not p.exists():
        raise TucoError(f"{role} model path {name!r} does not exist: give an existing directory or a hub id")
    if p.exists() and not p.is_dir():
        raise TucoError(f"{role} model path {name!r} is a file: give the checkpoint directory (with config.json)")
    if not p.exists() and offline() and not in_hub_cache(name):
        shipped = f" (the shipped pair: load_pair({name!r}) or --pair {name})" if name in ("demo", "gemma") else ""
        raise TucoError(
            f"{role} model {name!r} is neither a local directory nor in the Hugging Face cache, and HF_HUB_OFFLINE is set, so it "
            f"cannot be downloaded: give a local directory{shipped}, or unset HF_HUB_OFFLINE to download it"
        )


def offline() -> bool:
    """True when HF_HUB_OFFLINE forbids downloads (read now, not when huggingface_hub was imported)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def in_hub_cache(name: str) -> bool:
    """True when the Hugging Face cache holds a model's or an adapter's config for the hub id ``name``
    (no network: the cache directory is read)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return True  # cannot tell: let the load decide
    for file in ("config.json", "adapter_config.json"):
        try:
            if isinstance(try_to_load_from_cache(name, file), str):
                return True
        except Exception:  # noqa: BLE001 - an id huggingface_hub rejects (bad characters): not cached
            return False
    return False


def _load_error(name: str, role: str, err: Exception) -> TucoError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    local = Path(name).expanduser().exists()
    hint = " (offline: only models already in the local cache load)" if offline() and not local else ""
    return TucoError(f"cannot load {role} model {name!r}: {first}{hint}")


def is_adapter(name: str) -> bool:
    """True when ``name`` (local dir or hub id) holds a PEFT adapter rather than a full model."""
    p = Path(name).expanduser()
    if p.is_dir():
        return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()
    try:
        from transformers.utils import find_adapter_config_file

        return find_adapter_config_file(name) is not None and not _has_config(name)
    except Exception:  # noqa: BLE001 - unreachable hub, unknown id: treated as "not an adapter"
        return False


def _has_config(name: str) -> bool:
    from transformers.utils import cached_file

    try:
        return cached_file(name, "config.json", _raise_exceptions_for_missing_entries=False) is not None
    except Exception:  # noqa: BLE001
        return False


def _load_config(name: str, role: str, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig

    _check_source(name, role)
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise _load_error(name, role, err) from err


def _load_model(
    name: str,
    role: str,
    dtype: torch.dtype | str,
    device_map: str | dict[str, int | str] | None,
    trust_remote_code: bool,
    max_memory: dict | None = None,
) -> nn.Module:
    from transformers import AutoModelForCausalLM

    _check_source(name, role)
    extra = {"max_memory": max_memory} if max_memory else {}
    try:
        return AutoModelForCausalLM.from_pretrained(name, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise _load_error(name, role, err) from err


def _load_tokenizer(names: Sequence[str], trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    errors = []
    for name in names:
        try:
            return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError, TypeError) as err:
            errors.append(f"{name}: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}")
    raise TucoError("cannot load a tokenizer from " + "; ".join(errors))


def check_device(device: str | torch.device | None, device_map: str | dict | None = None) -> None:
    """Raise ConfigError, before any weights load, for a device this machine does not have or a device
    map tuco cannot place (only ``"auto"`` or an explicit dict)."""
    if isinstance(device_map, str) and device_map != "auto":
        raise ConfigError(f"--device-map {device_map!r}: give 'auto' (or a dict in Python); for one device use --device")
    if device is None or device_map is not None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"--device {str(device)!r} is not a device: give cpu, cuda, cuda:N or mps") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {str(device)!r}: this machine has no usable CUDA device; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0..)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {str(device)!r}: MPS is not available here; use --device cpu")


def load_pair(
    base: str | os.PathLike[str],
    tuned: str | os.PathLike[str] | None = None,
    *,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    tokenizer: str | None = None,
    trust_remote_code: bool = False,
) -> ModelPair:
    """Load a pre-trained model and its fine-tuned version (or a PEFT adapter) as a ModelPair.

        tuco.load_pair("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B-Instruct")
        tuco.load_pair(Path("ckpt/base"), Path("ckpt/lora"))     # local directories, str or Path
        tuco.load_pair("demo")                                    # a shipped pair by name (demo, gemma): no hub

    Args:
        base: hub id or local directory (str or Path) of the pre-trained model; alone, the name of a
            shipped pair (``demo``, ``gemma``: the names ``--pair`` takes).
        tuned: hub id or local directory of the fine-tuned model, or of a PEFT adapter trained on ``base``.
        dtype: "auto" (the checkpoint's), "float32", "bfloat16" or "float16".
        device: where to put both models ("cpu", "cuda", "cuda:1"); ignored when ``device_map`` is set.
        device_map: for pairs larger than one device: "auto" (or an explicit map). For two checkpoints,
            ONE placement is computed for both (``tuco.models.placement.shared_device_map``), so each layer's FT
            and PT blocks share a device.
        max_memory: per-device budgets for both models together, e.g. {0: "20GiB", "cpu": "60GiB"}.
        tokenizer: tokenizer source; default the tuned model's (the adapter's, then the base's).
        trust_remote_code: run code shipped in the model repo. Off by default: only enable it for
            repos you trust.
    """
    if tuned is None:
        from tuco.models.shipped import SHIPPED_PAIRS, shipped_pair_dirs

        if str(base) not in SHIPPED_PAIRS:
            raise ConfigError(f"give the tuned model too: load_pair(base, tuned), or a shipped pair by name ({', '.join(SHIPPED_PAIRS)})")
        base, tuned = shipped_pair_dirs(str(base))
    base, tuned = os.fspath(base), os.fspath(tuned)
    torch_dtype = _resolve_dtype(dtype)
    check_device(device, device_map)
    _check_source(base, "base")
    _check_source(tuned, "tuned")
    adapter = is_adapter(tuned)
    if adapter:  # before any weights load: the base it names, its target modules and their shapes
        from tuco.models.adapter_check import check_adapter

        check_adapter(base, tuned)
    if not adapter:  # cheap check on the configs before loading any weights
        tuned_config = _load_config(tuned, "tuned", trust_remote_code)
        check_compatible(_load_config(base, "base", trust_remote_code), tuned_config, base, tuned)
        if isinstance(device_map, str):
            from tuco.models.placement import shared_device_map

            device_map = shared_device_map(tuned_config, dtype=torch_dtype, max_memory=max_memory)
            max_memory = None
    base_model: Any = _load_model(base, "base", torch_dtype, device_map, trust_remote_code, max_memory)
    tuned_model: Any
    if adapter:
        try:
            from peft import PeftModel
        except ImportError as err:
            raise TucoError(f"{tuned!r} is a PEFT adapter: install the extra with `pip install 'tuco[peft]'`") from err
        try:
            tuned_model = PeftModel.from_pretrained(base_model, tuned)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
            raise _load_error(tuned, "tuned (adapter)", err) from err
        base_model = None
    else:
        tuned_model = _load_model(tuned, "tuned", torch_dtype, device_map, trust_remote_code, max_memory)
        from tuco.models.placement import misplaced_layers

        apart = misplaced_layers(tuned_model, base_model)
        if apart:
            warnings.warn(
                f"layers {apart[:8]} have their FT and PT blocks on different devices; every layer then moves "
                "activations between devices (slow). Pass device_map='auto' to place both models together.",
                stacklevel=2,
            )
    if device is not None and device_map is None:
        tuned_model.to(device)
        if base_model is not None:
            base_model.to(device)
    tok = _load_tokenizer([tokenizer] if tokenizer else [tuned, base], trust_remote_code)
    return ModelPair(tuned=tuned_model, base=base_model, tokenizer=tok, base_name=base, tuned_name=tuned, check=False)
