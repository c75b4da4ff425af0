"""What every measurement needs from a pair or a chain of checkpoints: the ``Decomposable`` protocol that
``ModelPair`` and ``ModelChain`` satisfy, and ``DecomposableBase``, the implementation they share.

Measurements (scoring, generation, choices, the output-only baselines, runs) are typed against the
protocol, so a chain that lacked something a measurement reads would be caught by mypy, not by a user.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from tuco.engine.decomposition import Engine, Recorder, Stage
from tuco.engine.layers import attention_module, decoder_layers, per_position_modules, same_input_modules, unwrap_peft

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from tuco.engine.alpha import AlphaLike


def context_length(config: PretrainedConfig) -> int | None:
    """Longest sequence the model's positions support (None when the config does not say)."""
    config = getattr(config, "text_config", None) or config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class Decomposable(Protocol):
    """A chain of checkpoints M_0 (pre-trained) ... M_K (the model that runs) as the engine and every
    measurement see it; a pair is the chain of two."""

    tokenizer: Any
    full_path: bool
    reports_stages: ClassVar[bool]

    @property
    def tuned(self) -> nn.Module:
        """The model that runs (M_K): its forward is the fine-tuned model's, with tuco's wrappers inside."""
        ...

    @property
    def stage_names(self) -> list[str]:
        """The checkpoints, pre-trained first."""
        ...

    def stages(self) -> list[Stage]:
        """Every checkpoint as the engine sees it."""
        ...

    @property
    def ft_layers(self) -> nn.ModuleList:
        """The running model's decoder blocks."""
        ...

    @property
    def n_layers(self) -> int:
        """Number of decoder layers L."""
        ...

    @property
    def n_stages(self) -> int:
        """Fine-tuning stages K (a pair: 1)."""
        ...

    @property
    def config(self) -> Any:
        """The running model's transformers config."""
        ...

    @property
    def device(self) -> torch.device:
        """Where input ids must go."""
        ...

    @property
    def max_length(self) -> int | None:
        """The running model's context length, if its config states one."""
        ...

    def engine(self, alpha: AlphaLike = 1.0, recorder: Recorder | None = None, *, full_path: bool = False) -> Engine:
        """Algorithm 1 installed in the running model for the duration of a ``with`` block."""
        ...

    def pretrained(self) -> AbstractContextManager[tuple[nn.Module, nn.Module]]:
        """For a ``with`` block: (the pre-trained model M_0 runnable on its own, its last decoder block)."""
        ...


class DecomposableBase:
    """The implementation pairs and chains share; subclasses define ``tuned``, ``tokenizer``,
    ``full_path``, ``stage_names``, ``stages()`` and ``_pretrained_model()``."""

    tuned: nn.Module
    tokenizer: Any
    full_path: bool
    # A chain reports one share per stage (stage_share ...) even with one stage; a pair reports TuCo.
    reports_stages: ClassVar[bool] = False

    def stages(self) -> list[Stage]:  # pragma: no cover - defined by every subclass
        raise NotImplementedError

    def _pretrained_model(self) -> tuple[nn.Module, bool]:  # pragma: no cover - defined by every subclass
        """(the model holding M_0's blocks, whether its PEFT adapters must be off to be M_0)."""
        raise NotImplementedError

    @property
    def ft_layers(self) -> nn.ModuleList:
        """The running (fine-tuned) model's decoder blocks (where the wrappers go)."""
        return decoder_layers(self.tuned)

    @property
    def n_layers(self) -> int:
        """Number of decoder layers L."""
        return len(self.ft_layers)

    @property
    def n_stages(self) -> int:
        """Fine-tuning stages K (a pair: 1)."""
        return len(self.stages()) - 1

    @property
    def config(self) -> Any:
        """The running model's transformers config."""
        return unwrap_peft(self.tuned).config

    @property
    def device(self) -> torch.device:
        """Device of the running model's input embeddings (where input ids must go)."""
        model: Any = unwrap_peft(self.tuned)
        return model.get_input_embeddings().weight.device  # type: ignore[no-any-return]

    @property
    def max_length(self) -> int | None:
        """The running model's context length, if its config states one."""
        return context_length(self.config)

    def engine(self, alpha: AlphaLike = 1.0, recorder: Recorder | None = None, *, full_path: bool = False) -> Engine:
        """A context manager that runs the tuned model as Algorithm 1 with this alpha and recorder
        (``full_path``: whole pre-trained blocks even where the fast path applies, and no LoRA base
        projection shared between the stages)."""
        return Engine(
            self.stages(),
            alpha=alpha,
            recorder=recorder,
            fast_paths=per_position_modules(self.tuned),
            share_paths=same_input_modules(self.tuned),
            fast_attention=attention_module(self.tuned),
            full_path=full_path or self.full_path,
        )

    @contextmanager
    def pretrained(self) -> Iterator[tuple[nn.Module, nn.Module]]:
        """The pre-trained model M_0 on its own (its own embeddings and blocks: a separate checkpoint, or
        the PEFT model with every adapter off), and its last decoder block."""
        model, adapters_off = self._pretrained_model()
        off: Any = model.disable_adapter() if adapters_off else nullcontext()  # type: ignore[operator]
        with off:
            yield model, decoder_layers(model)[-1]


def eos_ids(model: Decomposable) -> set[int]:
    """Every end-of-sequence id of the running model's generation config and tokenizer."""
    ids: set[int] = set()
    gen_eos = getattr(getattr(unwrap_peft(model.tuned), "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, model.tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
