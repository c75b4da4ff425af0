"""The tuned model as nanogcg is given it: the LM head computed at the target's positions only.

nanogcg scores each candidate with the model's logits at every position, though it reads only the target's
positions and the one before them. On a large vocabulary (Gemma's 262k) the LM head over every position is
about a quarter of a candidate's forward on CPU (measured on Gemma-3-270M, 64 candidates of 70 tokens: 50 s
with it, 38 s without). ``TargetLogits`` computes it at the last ``keep`` positions (transformers'
``logits_to_keep``) and returns logits of the full length, NaN before them: a read of a position it did not
compute turns the loss NaN (``optimise_suffixes`` then raises) instead of steering the search. The logits
tensor keeps its full size; only the head's compute is saved.
"""

from __future__ import annotations

from typing import Any

import torch


def target_positions(tokenizer: Any, target: str) -> int:
    """How many last positions must carry logits for nanogcg's loss on ``target``: its tokens (with or
    without a leading space, whichever is longer: the split of a first word differs) and the one before them,
    plus one spare."""
    n = max(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in (target, " " + target))
    return n + 2


class TargetLogits(torch.nn.Module):
    """A causal LM whose forward computes the LM head only at its last ``keep`` positions and returns logits
    of the full length, NaN before them (what nanogcg reads, the target's positions and the one before
    them, is computed; ``keep`` must cover them). ``device``, ``dtype`` and ``get_input_embeddings`` are
    the model's."""

    def __init__(self, model: torch.nn.Module, keep: int) -> None:
        super().__init__()
        self.model = model
        self.keep = keep

    @property
    def device(self) -> torch.device:
        """The wrapped model's device."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The wrapped model's dtype."""
        return next(self.model.parameters()).dtype

    def get_input_embeddings(self) -> torch.nn.Module:
        """The wrapped model's token embedding."""
        embeddings: torch.nn.Module = self.model.get_input_embeddings()  # type: ignore[operator]
        return embeddings

    def forward(self, inputs_embeds: torch.Tensor, **kwargs: Any) -> Any:
        """The model's output with ``logits`` of shape (batch, length, vocab), computed at the last ``keep``."""
        out = self.model(inputs_embeds=inputs_embeds, logits_to_keep=self.keep, **kwargs)
        batch, length = inputs_embeds.shape[:2]
        last = out.logits[:, -min(self.keep, length) :]
        full = last.new_full((batch, length, last.shape[-1]), float("nan"))
        full[:, length - last.shape[1] :] = last
        out.logits = full
        return out
