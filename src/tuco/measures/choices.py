"""Next-token choice among answer options ("Yes"/"No", "A"-"D") under FTC-alpha scaling, with TuCo.

Accuracy as in the paper (docs/method.md section 5.4): an answer is chosen when its first token has the
highest next-token probability among the options' first tokens, read at the prompt's last position
of the alpha-steered model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tuco.engine import metrics
from tuco.engine.decomposition import Recorder
from tuco.errors import PromptError
from tuco.measures.batching import encode_all, in_batches, in_input_order, last_logits, pad
from tuco.measures.prompts import Messages, Prompt, as_prompts, has_chat_template, render

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tuco.engine.alpha import AlphaLike
    from tuco.models.decomposable import Decomposable


@dataclass
class Choice:
    """Log-probabilities (full-vocabulary softmax) of each option's first token, the chosen index, TuCo."""

    logprobs: list[float]
    chosen: int
    tuco: float


def option_token_ids(tokenizer: PreTrainedTokenizerBase, prompt_text: str, options: Sequence[str], sep: str) -> list[int]:
    """The first token of each option as it continues ``prompt_text`` (tokenised jointly, so merges
    across the boundary are respected); raises when two options start with the same token."""
    base = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = []
    for opt in options:
        joint = tokenizer(prompt_text + sep + opt, add_special_tokens=False)["input_ids"]
        if joint[: len(base)] == base and len(joint) > len(base):
            ids.append(joint[len(base)])
        else:
            ids.append(tokenizer(sep + opt, add_special_tokens=False)["input_ids"][0])
    if len(set(ids)) != len(ids):
        raise PromptError(f"answer options {list(options)} do not start with distinct tokens; choose options that do")
    return ids


@torch.inference_mode()
def choose(
    pair: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    options: Sequence[str],
    *,
    alpha: AlphaLike = 1.0,
    chat: bool | None = None,
    system: str | None = None,
    batch_size: int = 8,
    full_path: bool = False,
) -> list[Choice]:
    """For each prompt, the next-token log-probabilities of each option under alpha, and its TuCo.

    With the chat template the answer starts the assistant turn directly; without it, a space
    separates prompt and answer ("... A: No"). Only the last position goes through the LM head.
    """
    items = as_prompts(prompts)
    use_chat = has_chat_template(pair.tokenizer) if chat is None else chat
    encoded = encode_all(pair, items, chat=use_chat, system=system)
    sep = "" if use_chat else " "

    def run(idx: list[int]) -> list[Choice]:
        b = pad([encoded[i].ids for i in idx], pair.tokenizer.pad_token_id, pair.device)
        recorder = Recorder(pair.n_layers, last_index=b.last, last_index_len=b.width)
        with pair.engine(alpha=alpha, recorder=recorder, full_path=full_path):
            logits = last_logits(pair, b)
        logp = torch.log_softmax(logits, dim=-1)
        (rec,) = recorder.records
        tu = metrics.tuco(rec.sum_ptc, rec.sum_ftc_steered)
        got = []
        for row, i in enumerate(idx):
            text = render(pair.tokenizer, items[i], chat=use_chat, system=system)
            lp = [float(logp[row, t]) for t in option_token_ids(pair.tokenizer, text, options, sep)]
            got.append(Choice(logprobs=lp, chosen=max(range(len(lp)), key=lp.__getitem__), tuco=float(tu[row])))
        return got

    return in_input_order(len(items), in_batches(len(items), run, batch_size=batch_size))
