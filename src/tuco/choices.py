"""Next-token choice among answer options ("Yes"/"No", "A"-"D") under FTC-alpha scaling, with TuCo.

Accuracy as in the paper (METHOD.md section 5.4): an answer is chosen when its first token has the
highest next-token probability among the options' first tokens, read at the prompt's last position
of the alpha-steered model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tuco import metrics
from tuco.decomposition import Recorder
from tuco.errors import PromptError
from tuco.pair import ModelPair
from tuco.prompts import Messages, Prompt, as_prompts, encode, has_chat_template, render
from tuco.scoring import check_length, last_index, left_pad, position_ids


@dataclass
class Choice:
    """Log-probabilities (full-vocabulary softmax) of each option's first token, the chosen index, TuCo."""

    logprobs: list[float]
    chosen: int
    tuco: float


def option_token_ids(tokenizer: object, prompt_text: str, options: Sequence[str], sep: str) -> list[int]:
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
    pair: ModelPair,
    prompts: Sequence[str | Messages | Prompt],
    options: Sequence[str],
    *,
    alpha: float | Sequence[float] = 1.0,
    chat: bool | None = None,
    system: str | None = None,
    batch_size: int = 8,
) -> list[Choice]:
    """For each prompt, the next-token log-probabilities of each option under alpha, and its TuCo.

    With the chat template the answer starts the assistant turn directly; without it, a space
    separates prompt and answer ("... A: No").
    """
    items = as_prompts(prompts)
    use_chat = has_chat_template(pair.tokenizer) if chat is None else chat
    texts = [render(pair.tokenizer, p, chat=use_chat, system=system) for p in items]
    encoded = [encode(pair.tokenizer, p, chat=use_chat, system=system) for p in items]
    sep = "" if use_chat else " "
    for p, ids in zip(items, encoded):
        check_length(pair, ids, p.id)
    out: list[Choice] = []
    for start in range(0, len(items), max(1, batch_size)):
        chunk = encoded[start : start + batch_size]
        input_ids, mask = left_pad(chunk, pair.tokenizer.pad_token_id, pair.device)
        recorder = Recorder(pair.n_layers, last_index=last_index(mask), last_index_len=mask.shape[1])
        with pair.engine(alpha=alpha, recorder=recorder):
            logits = pair.tuned(input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False).logits
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)  # left padding: the last column is the last real token
        (rec,) = recorder.records
        tu = metrics.tuco(rec.sum_ptc, rec.sum_ftc)
        for b, text in enumerate(texts[start : start + batch_size]):
            ids = option_token_ids(pair.tokenizer, text, options, sep)
            lp = [float(logp[b, i]) for i in ids]
            out.append(Choice(logprobs=lp, chosen=max(range(len(lp)), key=lp.__getitem__), tuco=float(tu[b])))
    return out
