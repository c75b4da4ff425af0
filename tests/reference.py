"""Independent references the tests hold tuco's own loops against.

``hf_generate``: generation through Hugging Face's own ``generate`` loop with the engine's wrappers installed
and a recorder, TuCo read from the recorded passes: the path tuco took before its own decode loop (the
``Decoder``) replaced it, kept here as the reference that loop must equal bit for bit in batch mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tuco.engine import metrics
from tuco.engine.decomposition import Recorder
from tuco.measures.batching import pad
from tuco.models.decomposable import eos_ids


@torch.inference_mode()
def hf_generate(
    model: Any,
    batch: Sequence[Sequence[int]],
    *,
    alpha: Any = 1.0,
    max_new_tokens: int = 16,
    per_token: bool = False,
    use_cache: bool = True,
) -> list[dict[str, Any]]:
    """Greedy generation for a batch by ``model.tuned.generate`` under the engine: per row ``token_ids``,
    ``token_tuco``, ``prompt_tuco``, ``finished`` and (chains) ``token_stage_share``."""
    from transformers import GenerationConfig

    b = pad(batch, model.tokenizer.pad_token_id, model.device)
    eos = eos_ids(model)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=use_cache,
        pad_token_id=model.tokenizer.pad_token_id,
        eos_token_id=sorted(eos) or None,
    )
    recorder = Recorder(model.n_layers, per_token=per_token)
    with model.engine(alpha=alpha, recorder=recorder):
        out = model.tuned.generate(input_ids=b.input_ids, attention_mask=b.attention_mask, generation_config=config)
    new = out[:, b.width :].tolist()

    def last(v: torch.Tensor) -> torch.Tensor:
        return v[:, -1] if per_token else v

    steps = torch.stack([metrics.tuco(last(r.sum_ptc), last(r.sum_ftc_steered)) for r in recorder.records], dim=-1).cpu()
    chain = model.reports_stages or recorder.records[0].sums.shape[0] > 2
    shares = (
        torch.stack([metrics.stage_shares(r.sums[:, :, -1] if per_token else r.sums) for r in recorder.records]).cpu() if chain else None
    )
    results = []
    for row, ids in enumerate(new):
        n, finished = len(ids), False
        for i, t in enumerate(ids):
            if t in eos:
                n, finished = i + 1, True
                break
        results.append(
            {
                "token_ids": ids[:n],
                "token_tuco": steps[row, :n].tolist(),
                "prompt_tuco": float(steps[row, 0]),
                "finished": finished,
                "token_stage_share": shares[:n, :, row].tolist() if shares is not None else None,
            }
        )
    return results
