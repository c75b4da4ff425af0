"""OutputCo, the output-only comparison of METHOD.md section 5.5: each model runs on its OWN
trajectory and only the final residual streams (before the final norm) are compared."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch

from tuco import metrics
from tuco.layers import unwrap_peft
from tuco.pair import ModelPair
from tuco.prompts import Messages, Prompt, as_prompts, encode
from tuco.scoring import check_length, left_pad, position_ids


def _final_stream(model: torch.nn.Module, last_block: torch.nn.Module, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x_L at the last position: the last decoder block's output (before the final norm), [B, d] float32."""
    seen: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, _args: object, output: object) -> None:
        out = output[0] if isinstance(output, tuple) else output  # transformers 4.x: a tuple
        seen.append(out[:, -1].float())  # left padding: the last column is the last real token

    handle = last_block.register_forward_hook(hook)
    try:
        model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False)
    finally:
        handle.remove()
    return seen[-1]


@torch.inference_mode()
def output_contribution(
    pair: ModelPair,
    prompts: Sequence[str | Messages | Prompt],
    *,
    chat: bool | None = None,
    system: str | None = None,
    batch_size: int = 8,
) -> list[float]:
    """OutputCo = ||x_L^FT - x_L^PT||_1 / (||x_L^PT||_1 + ||x_L^FT - x_L^PT||_1) per prompt, at its last token.

    The pre-trained model runs alone (its own embeddings and blocks; for a PEFT pair, adapters off).
    """
    items = as_prompts(prompts)
    encoded = [encode(pair.tokenizer, p, chat=chat, system=system) for p in items]
    for p, ids in zip(items, encoded):
        check_length(pair, ids, p.id)
    out: list[float] = []
    for start in range(0, len(encoded), max(1, batch_size)):
        input_ids, mask = left_pad(encoded[start : start + batch_size], pair.tokenizer.pad_token_id, pair.device)
        x_ft = _final_stream(pair.tuned, pair.ft_layers[-1], input_ids, mask)
        if pair.base is None:
            ctx = pair.tuned.disable_adapter()  # PEFT: the same blocks, adapters disabled
            base_model = pair.tuned
        else:
            ctx, base_model = nullcontext(), pair.base
        with ctx:
            base_dev = unwrap_peft(base_model).get_input_embeddings().weight.device
            x_pt = _final_stream(base_model, pair.pt_layers[-1], input_ids.to(base_dev), mask.to(base_dev))
        out += metrics.output_co(x_pt.to(x_ft.device), x_ft).tolist()
    return out
