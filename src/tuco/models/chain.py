"""ModelChain: the checkpoints of one model's training, M_0 (pre-trained) -> M_1 -> ... -> M_K (final),
decomposed exactly along the final model's stream (``tuco.engine.decomposition``): stage k's component is
C_k,l = f_k(x_l) - f_{k-1}(x_l), and each stage's share of the last token's update is
||sum_l C_k,l||_1 / sum_j ||sum_l C_j,l||_1. A ``ModelPair`` is the chain of two.

Checkpoints are full models, or PEFT adapters stacked on the checkpoint before them (a base with a
stack of LoRA adapters keeps one copy of the weights: stage k is the base with adapters 1..k active).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from torch import nn

from tuco.engine.decomposition import Stage
from tuco.engine.layers import decoder_layers, unwrap_peft
from tuco.errors import ConfigError, TucoError
from tuco.models.decomposable import DecomposableBase
from tuco.models.pair import (
    _check_source,
    _load_config,
    _load_error,
    _load_model,
    _load_tokenizer,
    _resolve_dtype,
    check_compatible,
    check_device,
    is_adapter,
    prepare_models,
)


@dataclass
class ModelChain(DecomposableBase):
    """Checkpoints M_0 ... M_K as the engine runs them.

    ``models[k]`` holds stage k's blocks and ``adapters[k]`` the PEFT adapters active for it (None: the
    model as it is; ``()``: all adapters off). Stages stacked as adapters share one model object.
    ``models[-1]`` is the model that runs (``tuned``).
    """

    reports_stages: ClassVar[bool] = True

    models: list[nn.Module]
    adapters: list[tuple[str, ...] | None]
    tokenizer: Any
    names: list[str] = field(default_factory=list)
    full_path: bool = False

    def __post_init__(self) -> None:
        if len(self.models) < 2:
            raise ConfigError("a chain needs at least two checkpoints: the pre-trained model and a fine-tuned one")
        if len(self.adapters) != len(self.models):
            raise ConfigError(f"{len(self.models)} checkpoints but {len(self.adapters)} adapter settings")
        self.names = self.names or [f"stage {k}" for k in range(len(self.models))]
        unique = list({id(m): m for m in self.models}.values())
        for k, m in enumerate(self.models[:-1]):
            check_compatible(unwrap_peft(m).config, self.config, self.names[k], self.names[-1])  # type: ignore[arg-type]
        prepare_models(unique, self.tokenizer)

    @property
    def tuned(self) -> nn.Module:  # type: ignore[override]
        """The final model M_K (the one that runs)."""
        return self.models[-1]

    @property
    def stage_names(self) -> list[str]:
        """The checkpoints, pre-trained first."""
        return list(self.names)

    def stages(self) -> list[Stage]:
        """Every checkpoint as the engine sees it."""
        return [Stage(decoder_layers(m), a) for m, a in zip(self.models, self.adapters)]

    def _pretrained_model(self) -> tuple[nn.Module, bool]:
        return self.models[0], self.adapters[0] == ()


def load_chain(
    names: Sequence[str],
    *,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    tokenizer: str | None = None,
    trust_remote_code: bool = False,
) -> ModelChain:
    """Load checkpoints M_0 (pre-trained) ... M_K (final) as a ModelChain.

    Each name is a hub id or a local directory of a full model, or of a PEFT adapter trained on top of
    the checkpoint before it (adapters after a full model stack on it: one copy of the weights). Every
    configuration is checked against the final model's before any weights load. With ``device_map``
    one placement is computed for all full copies, so every checkpoint's block l sits on one device.
    """
    names = [str(n) for n in names]
    if len(names) < 2:
        raise ConfigError("a chain needs at least two checkpoints (e.g. --chain BASE,SFT,DPO)")
    for k, n in enumerate(names):
        _check_source(n, f"checkpoint {k}")
    if is_adapter(names[0]):
        raise ConfigError(f"the first checkpoint of a chain must be a full model, not an adapter: {names[0]!r}")
    torch_dtype = _resolve_dtype(dtype)
    check_device(device, device_map)
    kinds = ["adapter" if k > 0 and is_adapter(n) else "model" for k, n in enumerate(names)]
    full = [n for n, kind in zip(names, kinds) if kind == "model"]
    from tuco.models.adapter_check import check_adapter

    for k, kind in enumerate(kinds):
        if kind == "adapter":  # stacked on the last full model before it
            check_adapter([n for n, kd in zip(names[:k], kinds[:k]) if kd == "model"][-1], names[k])
    configs = [_load_config(n, f"checkpoint {k}", trust_remote_code) for k, n in enumerate(full)]
    for k, c in enumerate(configs[:-1]):
        check_compatible(c, configs[-1], full[k], full[-1])
    if isinstance(device_map, str):
        from tuco.models.placement import shared_device_map

        device_map = shared_device_map(configs[-1], dtype=torch_dtype, max_memory=max_memory, copies=len(full))
        max_memory = None
    models: list[nn.Module] = []
    adapters: list[tuple[str, ...] | None] = []
    for k, (name, kind) in enumerate(zip(names, kinds)):
        if kind == "model":
            models.append(_load_model(name, f"checkpoint {k}", torch_dtype, device_map, trust_remote_code, max_memory))
            adapters.append(None)
            continue
        models, adapters = _stack_adapter(models, adapters, name, k)
    if device is not None and device_map is None:
        for m in {id(m): m for m in models}.values():
            m.to(device)
    tok = _load_tokenizer([tokenizer] if tokenizer else list(reversed(names)), trust_remote_code)
    return ModelChain(models=models, adapters=adapters, tokenizer=tok, names=names)


def _stack_adapter(
    models: list[nn.Module], adapters: list[tuple[str, ...] | None], name: str, k: int
) -> tuple[list[nn.Module], list[tuple[str, ...] | None]]:
    """Add adapter ``name`` as stage ``k`` on top of stage k-1 (wrapping it in a PeftModel if needed)."""
    try:
        from peft import PeftModel
    except ImportError as err:
        raise TucoError(f"{name!r} is a PEFT adapter: install the extra with `pip install 'tuco[peft]'`") from err
    _check_source(name, f"checkpoint {k}")
    prev: Any = models[-1]
    label = f"stage{k}"
    try:
        if isinstance(prev, PeftModel):
            below = adapters[-1] if adapters[-1] is not None else tuple(prev.peft_config)  # the stack so far
            prev.load_adapter(name, adapter_name=label, is_trainable=False)
        else:
            prev = PeftModel.from_pretrained(prev, name, adapter_name=label)
            below = ()
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        raise _load_error(name, f"checkpoint {k} (adapter)", err) from err
    stack = tuple(a for a in below if a != label) + (label,)
    try:
        prev.base_model.set_adapter(list(stack), inference_mode=True)
    except TypeError:  # peft < 0.18: no inference_mode; set_adapter makes the adapters trainable again
        prev.base_model.set_adapter(list(stack))
        for param in prev.parameters():
            param.requires_grad_(False)
    # every stage held by this PeftModel: earlier ones keep their own (smaller) stack of adapters
    out_models = [prev if m is models[-1] else m for m in models]
    out_adapters = [(below if a is None else a) if m is models[-1] else a for m, a in zip(models, adapters)]
    return out_models + [prev], out_adapters + [None]
