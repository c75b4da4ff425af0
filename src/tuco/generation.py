"""Batched generation (left padding) with alpha-steering and TuCo at every generated token.

Runs the model's own ``generate`` with the Algorithm 1 wrappers installed, so the KV cache, sampling
and stopping are Hugging Face's. The recorder commits one record per forward pass; forward pass i
produces generated token i, so ``token_tuco[i]`` is TuCo at the position whose next-token
distribution produced token i (``token_tuco[0]`` is the prompt's TuCo).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tuco import metrics
from tuco.decomposition import Recorder
from tuco.errors import ConfigError
from tuco.layers import unwrap_peft
from tuco.pair import ModelPair
from tuco.prompts import Messages, Prompt, as_prompts, encode
from tuco.scoring import check_length, left_pad


@dataclass
class Generation:
    """One response: its text and tokens, TuCo for each generated token, and the prompt's TuCo.

    ``prompt_token_tuco``/``prompt_tokens`` are filled in per-token mode (TuCo at every prompt position).
    """

    prompt_id: str
    alpha: float | list[float]
    text: str
    token_ids: list[int]
    tokens: list[str]
    token_tuco: list[float]
    prompt_tuco: float
    finished: bool
    prompt_token_tuco: list[float] | None = None
    prompt_tokens: list[str] | None = None

    @property
    def mean_tuco(self) -> float:
        """Mean TuCo over the generated tokens (the prompt's TuCo when nothing was generated)."""
        return sum(self.token_tuco) / len(self.token_tuco) if self.token_tuco else self.prompt_tuco


def _eos_ids(pair: ModelPair) -> set[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(unwrap_peft(pair.tuned), "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, pair.tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


@torch.inference_mode()
def generate_ids(
    pair: ModelPair,
    batch: Sequence[Sequence[int]],
    *,
    alpha: float | Sequence[float] = 1.0,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float | None = None,
    use_cache: bool = True,
    per_token: bool = False,
) -> list[tuple[list[int], list[float], float, bool, list[float] | None]]:
    """Generate for one batch of token id lists. Per row: (new ids, per-token TuCo, prompt TuCo,
    finished with an end-of-sequence token, per-position prompt TuCo or None)."""
    from transformers import GenerationConfig

    input_ids, mask = left_pad(batch, pair.tokenizer.pad_token_id, pair.device)
    eos = _eos_ids(pair)
    sample = temperature > 0
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=temperature if sample else None,
        top_p=top_p if sample else None,
        top_k=None,
        num_beams=1,  # the PT cache follows the FT cache step by step; beams would reorder it
        use_cache=use_cache,
        pad_token_id=pair.tokenizer.pad_token_id,
        eos_token_id=sorted(eos) or None,
    )
    recorder = Recorder(pair.n_layers, per_token=per_token)
    with pair.engine(alpha=alpha, recorder=recorder):
        out = pair.tuned.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
    new = out[:, input_ids.shape[1] :].tolist()
    # One record per forward pass; each is [B, d] (or [B, T, d] per token) -> TuCo of the last position.
    steps = torch.stack(
        [metrics.tuco(r.sum_ptc[:, -1] if per_token else r.sum_ptc, r.sum_ftc[:, -1] if per_token else r.sum_ftc) for r in recorder.records],
        dim=-1,
    ).cpu()  # [B, steps]
    prompt_tok = metrics.tuco(recorder.records[0].sum_ptc, recorder.records[0].sum_ftc).cpu() if per_token else None
    results = []
    for b, ids in enumerate(new):
        n, finished = len(ids), False
        for i, t in enumerate(ids):
            if t in eos:
                n, finished = i + 1, True
                break
        prompt_positions = None
        if prompt_tok is not None:
            prompt_positions = prompt_tok[b][mask[b].bool().cpu()].tolist()
        results.append((ids[:n], steps[b, :n].tolist(), float(steps[b, 0]), finished, prompt_positions))
    return results


def generate(
    pair: ModelPair,
    prompts: Sequence[str | Messages | Prompt],
    *,
    alpha: float | Sequence[float] = 1.0,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    batch_size: int = 8,
    use_cache: bool = True,
    per_token: bool = False,
) -> list[Generation]:
    """Generate a response to each prompt with FTC scaled by ``alpha``, with TuCo at every generated token.

    Args:
        alpha: FTC scale, scalar or one per layer (1 = the fine-tuned model, exactly).
        temperature: 0 for greedy decoding; > 0 samples (seeded by ``seed``).
        use_cache: use the KV cache (the PT blocks keep their own); False recomputes every step.
        per_token: also return TuCo at every prompt position.
    """
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    items = as_prompts(prompts)
    encoded = [encode(pair.tokenizer, p, chat=chat, system=system) for p in items]
    for p, ids in zip(items, encoded):
        check_length(pair, ids, p.id)
    if seed is not None:
        torch.manual_seed(seed)
    alpha_out: float | list[float] = float(alpha) if isinstance(alpha, (int, float)) else [float(a) for a in alpha]
    results: list[Generation] = []
    for start in range(0, len(encoded), max(1, batch_size)):
        chunk = encoded[start : start + batch_size]
        outs = generate_ids(
            pair, chunk, alpha=alpha, max_new_tokens=max_new_tokens, temperature=temperature,
            top_p=top_p, use_cache=use_cache, per_token=per_token,
        )
        for p, ids, (new_ids, tok_tuco, p_tuco, finished, p_tok) in zip(items[start:], chunk, outs):
            results.append(
                Generation(
                    prompt_id=p.id,
                    alpha=alpha_out,
                    text=pair.tokenizer.decode(new_ids, skip_special_tokens=True),
                    token_ids=new_ids,
                    tokens=pair.tokenizer.convert_ids_to_tokens(new_ids),
                    token_tuco=tok_tuco,
                    prompt_tuco=p_tuco,
                    finished=finished,
                    prompt_token_tuco=p_tok,
                    prompt_tokens=pair.tokenizer.convert_ids_to_tokens(list(ids)) if per_token else None,
                )
            )
    return results
