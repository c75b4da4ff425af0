"""``POST /v1/tuco/score``: a given response scored teacher-forced (tuco's own route; the playground's
"paste a response" mode).

Body: ``messages`` ending with the assistant's message (the response), ``alpha``, ``tuco_detail``. The
chat is read as ``tuco score`` reads it (the response's tokens: what the chat template writes after the
generation prompt, up to the first end-of-sequence token) and scored by ``tuco.measures.scoring`` on the
model thread, between two decoding steps, batched with the other score requests of that moment (each at
its own alpha). ``tuco.tokens[i]`` is TuCo at the position whose next-token distribution produces
response token i: what generation reports for the same tokens. The answer::

    {"id": "score-...", "object": "tuco.score", "created": ..., "model": ...,
     "tuco": {"alpha", "prompt", "response_mean", "tokens", ...}, "tuco_flag": ..., "usage": {...}}

With ``tuco_detail``: ``pieces`` (each token's text), ``token_ids``, and ``layer_ptc``/``layer_ftc``
(per-layer norms; scoring records them at the prompt's last token only, so entries past the first are
null).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tuco.serve import protocol
from tuco.serve.cancellation import CLIENT_CLOSED, Disconnected, cancel_on_disconnect
from tuco.serve.monitoring import Access, choice_entry
from tuco.serve.protocol import APIError, ScoreCall, TucoInfo
from tuco.serve.state import Kept, Server, server_of
from tuco.serve.text import Detokenizer
from tuco.serve.worker import ScoreJob

router = APIRouter()


@router.post("/v1/tuco/score")
async def score(request: Request) -> Response:
    server = server_of(request)
    access = Access(server.monitor, request)
    try:
        server.authorize(request)
        raw = await server.body(request)
        call = await server.off_loop(protocol.parse_score, raw, server.model, server.limits, server.settings.alpha)
        job = ScoreJob(prompt_ids=call.prompt_ids, response_ids=call.response_ids, alpha=call.alpha, loop=asyncio.get_running_loop())
        server.submit(job)
    except APIError as err:
        access.finish(err.status, error=err.message)
        raise
    rid = protocol.new_id("score")
    server.keep(rid, Kept(call, job))
    try:
        error = await cancel_on_disconnect(request, job.finished())
    except (Disconnected, asyncio.CancelledError) as gone:
        server.worker.cancel(job)
        access.finish(CLIENT_CLOSED, error="client disconnected")
        if isinstance(gone, asyncio.CancelledError):
            raise
        return Response(status_code=CLIENT_CLOSED)
    if error is not None or job.score is None:
        message = error or "the scoring pass gave no result"
        access.finish(500, error=message)
        raise APIError(500, message, code="model_error")
    body = await server.off_loop(_answer, server, call, job, rid)
    s = job.score
    flagged = bool(server.flagged(s.tuco))
    server.monitor.prompt_tuco.labels(server.monitor.alpha_label(call.alpha_text)).observe(s.tuco)
    mean = s.tuco_response if s.tuco_response is not None else s.tuco
    access.finish(200, [choice_entry(0, call.alpha_text, s.tuco, mean, len(call.response_ids), "scored", flagged)])
    return JSONResponse(body)


def pieces(server: Server, ids: list[int]) -> list[str]:
    """Each token's text, decoded incrementally (on the tokenizer's thread, which holds the lock already)."""
    detok = Detokenizer(server.model.tokenizer)
    out = [detok.add(t) for t in ids]
    out[-1] += detok.flush()
    return out


def score_info(server: Server, call: ScoreCall, job: ScoreJob) -> TucoInfo:
    """The ``tuco`` object of a scored response."""
    s = job.score
    if s is None or s.response_token_tuco is None:
        raise APIError(500, "the scoring pass gave no per-token TuCo", code="model_error")
    info = protocol.tuco_object(call.alpha_text, s.tuco, list(s.response_token_tuco), True)
    if call.tuco_detail:
        n = len(call.response_ids)
        info["pieces"] = pieces(server, call.response_ids)
        info["token_ids"] = list(call.response_ids)
        info["layer_ptc"] = [list(s.layer_ptc_l1), *([None] * (n - 1))]
        info["layer_ftc"] = [list(s.layer_ftc_l1), *([None] * (n - 1))]
    return info


def _answer(server: Server, call: ScoreCall, job: ScoreJob, rid: str) -> dict[str, object]:
    out: dict[str, object] = {
        "id": rid,
        "object": "tuco.score",
        "created": protocol.now(),
        "model": call.model or server.settings.model_name,
        "tuco": score_info(server, call, job),
        "usage": protocol.usage(len(call.prompt_ids), len(call.response_ids)),
    }
    flag = server.flagged(job.score.tuco) if job.score is not None else None
    if flag is not None:
        out["tuco_flag"] = flag
    return out
