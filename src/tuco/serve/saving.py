""" "Save as run": earlier responses of this server written as a run directory through ``tuco.runs`` (rows,
manifest), which ``tuco report`` and ``tuco.load_run`` open like any other run.

Only with ``tuco serve --runs DIR``: the server then remembers its latest responses (``KEEP_RESPONSES``)
and ``POST /v1/tuco/runs`` ``{"name": NAME, "responses": [ids]}`` writes ``DIR/NAME`` (a new folder
directly under DIR; any other path is refused). The rows are the server's own numbers, never the
client's: a generation is a ``GenerationRow`` per choice (a stopped one with ``finished`` false and
``finish_reason`` "cancelled"), a scored response a ``ScoreRow``; rows of the same prompt share an
``item`` (its token ids' digest), so the report pairs the alpha columns of one prompt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from tuco.runs.parallel import Ranks
from tuco.runs.schema import GenerationRow, ScoreRow
from tuco.serve.protocol import APIError, GenerateCall, ScoreCall
from tuco.serve.worker import GenerationJob, ScoreJob

if TYPE_CHECKING:
    from tuco.serve.state import Kept, Server

SOURCE = "tuco serve"


def target(runs: Path, name: str) -> Path:
    """``runs/name``, refused (400) unless it is a folder directly under ``runs``, and (409) if it exists."""
    root = runs.expanduser().resolve()
    out = (root / name).resolve()
    if out.parent != root:
        raise APIError(400, f"run name {name!r} is not a folder directly under {root}", param="name")
    if out.exists():
        raise APIError(409, f"a run named {name!r} exists already under {root}; choose another name", param="name", code="run_exists")
    return out


def item_of(ids: list[int]) -> str:
    """The pairing key of a prompt: its token ids' digest (the same prompt at several alphas pairs)."""
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:12]


def rows(server: Server, kept: list[tuple[str, Kept]]) -> list[dict[str, object]]:
    """The schema rows of kept responses, numbered in order (runs on the tokenizer's thread)."""
    tok = server.model.tokenizer
    out: list[dict[str, object]] = []
    for rid, k in kept:
        extra: dict[str, object] = {"response_id": rid, "source": SOURCE}
        if isinstance(k.call, ScoreCall) and isinstance(k.job, ScoreJob) and k.job.score is not None:
            s = k.job.score
            values = {f: v for f, v in asdict(s).items() if f in SCORE_ROW_FIELDS}
            row = ScoreRow(
                id=str(len(out) + 1),
                item=item_of(k.call.prompt_ids),
                prompt=k.call.display,
                alpha=k.call.alpha.label,
                chat=True,
                response=k.call.response,
                **values,
            )
            out.append(row.to_dict(extra))
        elif isinstance(k.call, GenerateCall) and isinstance(k.job, GenerationJob):
            call = k.call
            for i, (r, stream) in enumerate(zip(k.job.rows, k.job.streams)):
                if r.prompt_tuco != r.prompt_tuco:  # cancelled before its prefill: nothing was measured
                    continue
                p = i // call.n
                g = GenerationRow(
                    id=str(len(out) + 1),
                    item=item_of(call.prompts[p]),
                    prompt=call.display[p],
                    tuco=r.prompt_tuco,
                    alpha=call.alpha.label,
                    n_tokens=len(r.ids),
                    prompt_tuco=r.prompt_tuco,
                    mean_tuco=r.response_tuco,
                    response=stream.text,
                    token_ids=list(r.tokens),
                    tokens=list(tok.convert_ids_to_tokens(r.tokens)),
                    token_tuco=list(r.token_tuco),
                    n_new_tokens=len(r.tokens),
                    finished=r.finish_reason == "stop",
                    seed=call.sampling.seed,
                    temperature=call.sampling.temperature,
                    token_stage_share=r.token_stage_share,
                )
                g.layer_ptc_l1, g.layer_ftc_l1, g.stage_share = r.prompt_layer_ptc_l1, r.prompt_layer_ftc_l1, r.stage_share
                out.append(g.to_dict({**extra, "choice": i, "finish_reason": r.finish_reason}))
    return out


SCORE_ROW_FIELDS = frozenset(
    {
        "tuco",
        "tuco_unscaled",
        "preco",
        "ptc_l1",
        "ftc_l1",
        "n_tokens",
        "layer_ptc_l1",
        "layer_ftc_l1",
        "stage_share",
        "stage_l1",
        "layer_stage_l1",
        "response_ids",
        "response_tokens",
        "response_token_tuco",
        "tuco_response",
    }
)


def write(server: Server, out: Path, written: list[dict[str, object]], responses: list[str]) -> None:
    """Write ``written`` as a new run at ``out`` (rows, manifest) through ``tuco.runs``."""
    from tuco.runs import open_run
    from tuco.runs.jobs import model_config

    config = {"verb": "serve", "model_name": server.settings.model_name, **model_config(server.model)}
    with open_run(out, config, mode="new", ranks=Ranks(), info={"responses": responses, "n_prompts": len(written)}) as run:
        run.expect([r["id"] for r in written])
        run.write(written)
