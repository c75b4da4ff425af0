"""Batched generation (left padding) with alpha-steering and TuCo at every generated token.

Runs the model's own ``generate`` with the Algorithm 1 wrappers installed, so the KV cache, sampling
and stopping are Hugging Face's. The recorder commits one record per forward pass; forward pass i
produces generated token i, so ``token_tuco[i]`` is TuCo at the position whose next-token
distribution produced token i (``token_tuco[0]`` is the prompt's TuCo). At alpha = 1 the prefill takes
the engine's fast path (the pre-trained blocks' outputs are read at the last prompt token only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tuco import metrics
from tuco.batching import Encoded, encode_all, pad
from tuco.decomposition import Recorder
from tuco.errors import ConfigError
from tuco.layers import unwrap_peft
from tuco.prompts import Messages, Prompt
from tuco.steering import RowAlphas, alpha_label, alpha_text, check_rows, row_alpha, rows_of

if TYPE_CHECKING:
    from tuco.model import Decomposable


@dataclass
class Generation:
    """One response: its text and tokens, TuCo for each generated token, and the prompt's TuCo.

    ``token_tuco[i]``: TuCo at the position that produced ``token_ids[i]`` (``token_tuco[0]`` is the
    prompt's). Per-token mode adds ``prompt_token_tuco`` / ``prompt_tokens`` (TuCo at every prompt
    position); chains add ``stage_share`` (the stages' shares at the prompt's last token) and
    ``token_stage_share`` (at each generated token's position).
    """

    prompt_id: str
    alpha: Any
    text: str
    token_ids: list[int]
    tokens: list[str]
    token_tuco: list[float]
    prompt_tuco: float
    finished: bool
    prompt_token_tuco: list[float] | None = None
    prompt_tokens: list[str] | None = None
    stage_share: list[float] | None = None
    prompt_layer_ptc_l1: list[float] | None = None
    prompt_layer_ftc_l1: list[float] | None = None
    token_stage_share: list[list[float]] | None = None

    @property
    def mean_tuco(self) -> float:
        """Mean TuCo over the generated tokens (the prompt's TuCo when nothing was generated)."""
        return sum(self.token_tuco) / len(self.token_tuco) if self.token_tuco else self.prompt_tuco


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


def check_sampling(max_new_tokens: int, temperature: float, top_p: float | None) -> None:
    """Raise ConfigError on generation settings that cannot work."""
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not temperature >= 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    if top_p is not None and top_p < 1 and temperature == 0:
        raise ConfigError(f"top_p {top_p} only applies when sampling: add a temperature > 0 (--temperature 1), or drop top_p")


@torch.inference_mode()
def generate_ids(
    model: Decomposable,
    batch: Sequence[Sequence[int]],
    *,
    alpha: Any = 1.0,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float | None = None,
    use_cache: bool = True,
    per_token: bool = False,
    full_path: bool = False,
) -> list[Generation]:
    """Generate for one batch of token id lists (a pair or a chain); one ``Generation`` per row (its
    ``prompt_id`` empty: the caller's)."""
    from transformers import GenerationConfig

    check_sampling(max_new_tokens, temperature, top_p)
    b = pad(batch, model.tokenizer.pad_token_id, model.device)
    eos = eos_ids(model)
    sample = temperature > 0
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=temperature if sample else None,
        top_p=top_p if sample else None,
        top_k=None,
        num_beams=1,  # the earlier stages' caches follow the running model's step by step; beams would reorder it
        use_cache=use_cache,
        pad_token_id=model.tokenizer.pad_token_id,
        eos_token_id=sorted(eos) or None,
    )
    recorder = Recorder(model.n_layers, per_token=per_token)
    with model.engine(alpha=alpha, recorder=recorder, full_path=full_path):
        running: Any = model.tuned
        out = running.generate(input_ids=b.input_ids, attention_mask=b.attention_mask, generation_config=config)
    new = out[:, b.width :].tolist()

    # One record per forward pass; each is [B, d] (or [B, T, d] per token) -> TuCo of the last position.
    def last(v: torch.Tensor) -> torch.Tensor:
        return v[:, -1] if per_token else v

    steps = torch.stack([metrics.tuco(last(r.sum_ptc), last(r.sum_ftc_steered)) for r in recorder.records], dim=-1).cpu()
    first = recorder.records[0]
    prompt_tok = metrics.tuco(first.sum_ptc, first.sum_ftc_steered).cpu() if per_token else None
    shares = step_shares = None
    if model.reports_stages or first.sums.shape[0] > 2:  # a chain, even of two checkpoints
        from tuco.scoring import stage_shares

        shares = stage_shares(first.sums[:, :, -1] if per_token else first.sums).cpu()
        # [steps, S, B]: each stage's share at the position that produced each generated token
        step_shares = torch.stack([stage_shares(r.sums[:, :, -1] if per_token else r.sums) for r in recorder.records]).cpu()
    results = []
    for row, ids in enumerate(new):
        n, finished = len(ids), False
        for i, t in enumerate(ids):
            if t in eos:
                n, finished = i + 1, True
                break
        results.append(
            Generation(
                prompt_id="",
                alpha=alpha_label(row_alpha(alpha, row)),
                text=model.tokenizer.decode(ids[:n], skip_special_tokens=True),
                token_ids=ids[:n],
                tokens=model.tokenizer.convert_ids_to_tokens(ids[:n]),
                token_tuco=steps[row, :n].tolist(),
                prompt_tuco=float(steps[row, 0]),
                finished=finished,
                prompt_token_tuco=prompt_tok[row][b.attention_mask[row].bool().cpu()].tolist() if prompt_tok is not None else None,
                stage_share=shares[:, row].tolist() if shares is not None else None,
                prompt_layer_ptc_l1=first.layer_ptc_l1[row].tolist(),
                prompt_layer_ftc_l1=first.layer_ftc_l1[row].tolist(),
                token_stage_share=step_shares[:n, :, row].tolist() if step_shares is not None else None,
            )
        )
    return results


def batch_seed(seed: int, *parts: Any) -> int:
    """A seed for one batch, from the run's seed and the batch's identity: sampled rows do not depend on
    which batches ran before (resume, ranks)."""
    digest = hashlib.sha256(repr((seed, *parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def generate_encoded(
    model: Decomposable,
    encoded: Sequence[Encoded],
    *,
    alpha: Any = 1.0,
    batch_size: int = 8,
    seed: int | None = None,
    per_token: bool = False,
    **kwargs: Any,
) -> list[Generation]:
    """Generations for encoded prompts, in input order (``kwargs``: ``generate_ids``'s). The batches are
    the run plan's (``tuco.batching.plan_batches``) and each is seeded from (seed, alpha, batch number), so
    sampled responses equal those ``tuco.jobs.generate_to`` writes (resumed, data-parallel or not)."""
    from tuco.batching import in_input_order, plan_batches

    check_rows(alpha, len(encoded))
    plan = plan_batches([len(e.ids) for e in encoded], batch_size)
    pieces = (
        (
            batch,
            generate_batch(model, [encoded[i] for i in batch], n, alpha=rows_of(alpha, batch), seed=seed, per_token=per_token, **kwargs),
        )
        for n, batch in enumerate(plan)
    )
    return in_input_order(len(encoded), pieces)


def generate_batch(
    model: Decomposable,
    items: Sequence[Encoded],
    number: int,
    *,
    alpha: Any = 1.0,
    seed: int | None = None,
    tag: str = "",
    per_token: bool = False,
    **kwargs: Any,
) -> list[Generation]:
    """Batch ``number`` of a run plan, seeded from (seed, alpha, measurement ``tag``, number) when sampling
    with a seed: the one place a batch's samples are decided (``generate_encoded``, ``tuco.jobs.Job``).
    ``alpha`` may be a ``RowAlphas`` (one per item)."""
    if seed is not None:
        key = "|".join(alpha_text(a) for a in alpha) if isinstance(alpha, RowAlphas) else alpha_text(alpha)
        torch.manual_seed(batch_seed(seed, key, number) if not tag else batch_seed(seed, key, tag, number))
    outs = generate_ids(model, [e.ids for e in items], alpha=alpha, per_token=per_token, **kwargs)
    tok = model.tokenizer
    for e, g in zip(items, outs):
        g.prompt_id = e.prompt.id
        if per_token:
            g.prompt_tokens = tok.convert_ids_to_tokens(e.ids)
    return outs


def generate(
    pair: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    *,
    alpha: Any = 1.0,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    batch_size: int = 8,
    use_cache: bool = True,
    per_token: bool = False,
    full_path: bool = False,
) -> list[Generation]:
    """Generate a response to each prompt with FTC scaled by ``alpha``, with TuCo at every generated token.

    Args:
        alpha: FTC scale, scalar or one per layer (1 = the fine-tuned model, exactly; a chain: per stage);
            ``tuco.steering.RowAlphas([...])``: one alpha per prompt (prompts batched together whatever their alphas).
        temperature: 0 for greedy decoding; > 0 samples (seeded by ``seed``).
        top_p: nucleus sampling threshold in (0, 1] (with temperature > 0).
        use_cache: use the KV cache (the earlier stages keep their own); False recomputes every step.
        per_token: also return TuCo at every prompt position.
        full_path: never take the engine's fast path nor share LoRA base projections (same numbers, slower).
    """
    check_sampling(max_new_tokens, temperature, top_p)
    encoded = encode_all(pair, prompts, chat=chat, system=system, extra=max_new_tokens)
    return generate_encoded(
        pair,
        encoded,
        alpha=alpha,
        batch_size=batch_size,
        seed=seed,
        per_token=per_token,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        use_cache=use_cache,
        full_path=full_path,
    )
