"""Output-only comparisons, the baselines TuCo is read against: each model runs on its OWN trajectory.

- OutputCo (docs/method.md section 5.5): the final residual streams (before the final norm) compared,
  ||x_L^FT - x_L^PT||_1 / (||x_L^PT||_1 + ||x_L^FT - x_L^PT||_1).
- KL(FT || PT) of the next-token distributions at the prompt's last token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tuco.engine import metrics
from tuco.engine.layers import unwrap_peft
from tuco.measures.batching import Batch, encode_all, in_batches, in_input_order, pad
from tuco.measures.prompts import Messages, Prompt
from tuco.models.decomposable import Decomposable


@dataclass
class Baselines:
    """Output-only numbers of one prompt at its last token."""

    output_co: float
    kl: float


def inner_model(model: torch.nn.Module) -> Any:
    """The model as a callable returning a ``CausalLMOutput`` (typed loosely: transformers' own types)."""
    return model


def _final(model: torch.nn.Module, last_block: torch.nn.Module, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_L, next-token log-probabilities) at each row's last real token: [B, d] and [B, V], float32."""
    seen: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, _args: object, output: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        out: torch.Tensor = output[0] if isinstance(output, tuple) else output  # transformers 4.x: a tuple
        rows = torch.arange(out.shape[0], device=out.device)
        seen.append(out[rows, b.last.to(out.device)].float())

    inner: Any = unwrap_peft(model)
    device = inner.get_input_embeddings().weight.device
    handle = last_block.register_forward_hook(hook)
    try:
        logits = inner_model(model)(**{k: v.to(device) for k, v in b.model_inputs().items()}, use_cache=False).logits
    finally:
        handle.remove()
    rows = torch.arange(logits.shape[0], device=logits.device)
    return seen[-1], torch.log_softmax(logits[rows, b.last.to(logits.device)].float(), dim=-1)


@torch.inference_mode()
def output_baselines(
    pair: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    *,
    chat: bool | None = None,
    system: str | None = None,
    batch_size: int = 8,
) -> list[Baselines]:
    """OutputCo and KL(FT || PT) per prompt. The pre-trained model runs alone (its own embeddings and
    blocks; for a PEFT pair, the same model with adapters off); a chain compares its final model with
    its first checkpoint M_0."""
    encoded = encode_all(pair, prompts, chat=chat, system=system)

    def run(idx: list[int]) -> list[Baselines]:
        b = pad([encoded[i].ids for i in idx], pair.tokenizer.pad_token_id, pair.device)
        x_ft, lp_ft = _final(pair.tuned, pair.ft_layers[-1], b)
        with pair.pretrained() as (pt_model, pt_last):
            x_pt, lp_pt = _final(pt_model, pt_last, b)
        oc = metrics.output_co(x_pt.to(x_ft.device), x_ft)
        kl = (lp_ft.exp() * (lp_ft - lp_pt.to(lp_ft.device))).sum(-1)
        return [Baselines(float(o), float(k)) for o, k in zip(oc, kl)]

    return in_input_order(len(encoded), in_batches(len(encoded), run, batch_size=batch_size))
