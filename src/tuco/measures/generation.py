"""Batched generation (left padding) with alpha-steering and TuCo at every generated token.

Decodes through the one decode loop (``tuco.measures.decoding.Decoder``, a batch at a time with the shapes
of Hugging Face's ``generate``, so the numbers are those of the batch), with its one sampler and seeding
rule: each response draws from its own generator, seeded by ``row_seed(seed, its key, its sample number)``,
so a prompt's samples do not depend on the batch it was in. Forward pass i produces generated token i, so
``token_tuco[i]`` is TuCo at the position whose next-token distribution produced token i
(``token_tuco[0]`` is the prompt's TuCo). At alpha = 1 the prefill takes the engine's fast path (the
pre-trained blocks' outputs are read at the last prompt token only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuco.engine.alpha import Alpha, AlphaLike
from tuco.measures.batching import Encoded, encode_all, in_input_order, plan_batches
from tuco.measures.decoding import Decoder, Row
from tuco.measures.prompts import Messages, Prompt
from tuco.measures.sampling import Sampling, row_seed

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable


@dataclass
class Generation:
    """One response: its text and tokens, TuCo for each generated token, and the prompt's TuCo.

    ``token_tuco[i]``: TuCo at the position that produced ``token_ids[i]`` (``token_tuco[0]`` is the
    prompt's). Per-token mode adds ``prompt_token_tuco`` / ``prompt_tokens`` (TuCo at every prompt
    position); chains add ``stage_share`` (the stages' shares at the prompt's last token) and
    ``token_stage_share`` (at each generated token's position).
    """

    prompt_id: str
    alpha: float | str
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


def generate_ids(
    model: Decomposable,
    batch: Sequence[Sequence[int]],
    *,
    alpha: AlphaLike = 1.0,
    sampling: Sampling | None = None,
    seeds: Sequence[int | None] | None = None,
    use_cache: bool = True,
    per_token: bool = False,
    full_path: bool = False,
) -> list[Generation]:
    """Generate for one batch of token id lists (a pair or a chain); one ``Generation`` per row (its
    ``prompt_id`` empty: the caller's). ``seeds``: each row's generator seed (sampling only)."""
    sampling = sampling or Sampling()
    a = Alpha.of(alpha)
    a.check_rows(len(batch))
    rows = [Row(ids=list(ids), alpha=a.row(i), sampling=sampling, seed=None if seeds is None else seeds[i]) for i, ids in enumerate(batch)]
    with Decoder(model, continuous=False, per_token=per_token, use_cache=use_cache, full_path=full_path) as decoder:
        decoder.add(rows)
        decoder.run()
    tok = model.tokenizer
    return [
        Generation(
            prompt_id="",
            alpha=r.alpha.label,
            text=tok.decode(r.tokens, skip_special_tokens=True),
            token_ids=r.tokens,
            tokens=tok.convert_ids_to_tokens(r.tokens),
            token_tuco=r.token_tuco,
            prompt_tuco=r.prompt_tuco,
            finished=r.finish_reason == "stop",
            prompt_token_tuco=r.prompt_token_tuco,
            stage_share=r.stage_share,
            prompt_layer_ptc_l1=r.prompt_layer_ptc_l1,
            prompt_layer_ftc_l1=r.prompt_layer_ftc_l1,
            token_stage_share=r.token_stage_share,
        )
        for r in rows
    ]


def sequence_key(prompt_id: str, tag: str = "") -> str:
    """The key a run's sequence is seeded by (``row_seed``): its prompt's id, within its measurement's tag."""
    return f"{tag}|{prompt_id}" if tag else prompt_id


def generate_batch(
    model: Decomposable,
    items: Sequence[Encoded],
    *,
    alpha: AlphaLike = 1.0,
    sampling: Sampling | None = None,
    tag: str = "",
    samples: int = 1,
    per_token: bool = False,
    full_path: bool = False,
    use_cache: bool = True,
) -> list[list[Generation]]:
    """``samples`` responses to each encoded prompt, decoded as one batch; each response seeded by the one
    rule from (seed, its prompt's id within ``tag``, its sample number) when sampling with a seed."""
    sampling = sampling or Sampling()
    a = Alpha.of(alpha)
    a.check_rows(len(items))
    repeated = [(i, k) for i in range(len(items)) for k in range(samples)]
    seeds = None if sampling.seed is None else [row_seed(sampling.seed, sequence_key(items[i].prompt.id, tag), k) for i, k in repeated]
    outs = generate_ids(
        model,
        [items[i].ids for i, _ in repeated],
        alpha=a.subset([i for i, _ in repeated]) if a.per_row else a,
        sampling=sampling,
        seeds=seeds,
        per_token=per_token,
        full_path=full_path,
        use_cache=use_cache,
    )
    tok = model.tokenizer
    grouped: list[list[Generation]] = [[] for _ in items]
    for (i, _), g in zip(repeated, outs):
        g.prompt_id = items[i].prompt.id
        if per_token:
            g.prompt_tokens = tok.convert_ids_to_tokens(items[i].ids)
        grouped[i].append(g)
    return grouped


def generate_encoded(
    model: Decomposable,
    encoded: Sequence[Encoded],
    *,
    alpha: AlphaLike = 1.0,
    sampling: Sampling | None = None,
    batch_size: int = 8,
    per_token: bool = False,
    full_path: bool = False,
    use_cache: bool = True,
) -> list[Generation]:
    """Generations for encoded prompts, in input order: the run plan's batches
    (``tuco.measures.batching.plan_batches``), each response seeded by the one rule, so sampled responses
    equal those ``tuco.runs.jobs.generate_to`` writes (resumed, data-parallel or not)."""
    a = Alpha.of(alpha)
    a.check_rows(len(encoded))
    plan = plan_batches([len(e.ids) for e in encoded], batch_size)
    pieces = (
        (
            batch,
            [
                g[0]
                for g in generate_batch(
                    model,
                    [encoded[i] for i in batch],
                    alpha=a.subset(batch) if a.per_row else a,
                    sampling=sampling,
                    per_token=per_token,
                    full_path=full_path,
                    use_cache=use_cache,
                )
            ],
        )
        for batch in plan
    )
    return in_input_order(len(encoded), pieces)


def generate(
    pair: Decomposable,
    prompts: Sequence[str | Messages | Prompt],
    *,
    alpha: AlphaLike = 1.0,
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
            ``tuco.RowAlphas([...])``: one alpha per prompt (prompts batched together whatever their alphas).
        temperature: 0 for greedy decoding; > 0 samples (seeded by ``seed``: each prompt draws its own numbers,
            from its id; the same seed gives the same samples in ``generate_to`` and ``tuco serve``).
        top_p: nucleus sampling threshold in (0, 1] (with temperature > 0).
        use_cache: use the KV cache (the earlier stages keep their own); False recomputes every step.
        per_token: also return TuCo at every prompt position.
        full_path: never take the engine's fast path nor share LoRA base projections (same numbers, slower).
    """
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    encoded = encode_all(pair, prompts, chat=chat, system=system, extra=max_new_tokens)
    return generate_encoded(
        pair, encoded, alpha=alpha, sampling=sampling, batch_size=batch_size, per_token=per_token, full_path=full_path, use_cache=use_cache
    )
