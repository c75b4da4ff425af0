"""``POST /v1/chat/completions`` and ``POST /v1/completions``: streaming or not, each choice with its
``tuco`` object.

A request is read on the event loop, parsed and tokenised on the tokenizer's thread, decoded on the model
thread; the answer's token texts (echo, logprobs) are decoded on the tokenizer's thread again. A
non-streaming request whose client hangs up is cancelled (``cancel_on_disconnect``, raced once its body is
read), a stream whose client hangs up is cancelled by Starlette; either way the job's rows leave the batch
at the next pass.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tuco.measures.decoding import Row
from tuco.serve import protocol
from tuco.serve.cancellation import CLIENT_CLOSED, Disconnected, cancel_on_disconnect
from tuco.serve.monitoring import Access, choice_entry
from tuco.serve.protocol import APIError, GenerateCall, Kind, TokenTuco, TucoInfo
from tuco.serve.state import Kept, Server, server_of
from tuco.serve.text import TextStream
from tuco.serve.worker import Event, GenerationJob

router = APIRouter()

Choice = dict[str, object]  # an OpenAI choice: its fields depend on the kind (message / delta / text)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await complete(request, "chat")


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    return await complete(request, "completion")


async def complete(request: Request, kind: Kind) -> Response:
    """Validate, queue, and answer (a stream, or one JSON object when every row has finished)."""
    server = server_of(request)
    access = Access(server.monitor, request)
    try:
        server.authorize(request)
        raw = await server.body(request)
        parse = protocol.parse_chat if kind == "chat" else protocol.parse_completion
        call = await server.off_loop(parse, raw, server.model, server.limits, server.settings.alpha)
        streams = [TextStream(server.model.tokenizer, call.stop, server.tokenizer_lock) for _ in range(call.n_rows)]
        job = GenerationJob(rows=call.rows(), streams=streams, loop=asyncio.get_running_loop())
        server.submit(job)
    except APIError as err:
        access.finish(err.status, error=err.message)
        raise
    rid = protocol.new_id(protocol.response_prefix(kind))
    server.keep(rid, Kept(call, job))
    if call.stream:
        return StreamingResponse(_stream(server, call, job, rid, access), media_type="text/event-stream")
    try:
        error = await cancel_on_disconnect(request, job.finished())
    except (Disconnected, asyncio.CancelledError) as gone:  # the client hung up (or the server is stopping): free the rows
        server.worker.cancel(job)
        access.finish(CLIENT_CLOSED, observe(server, call, job, cancelled=True), error="client disconnected")
        if isinstance(gone, asyncio.CancelledError):
            raise
        return Response(status_code=CLIENT_CLOSED)
    if error is not None:
        access.finish(500, observe(server, call, job, cancelled=True), error=error)
        raise APIError(500, error, code="model_error")
    body = await server.off_loop(_response, server, call, job, rid)
    access.finish(200, observe(server, call, job))
    return JSONResponse(body)


# ---- the answer (built on the tokenizer's thread: it decodes token texts) ----


def tuco_info(server: Server, call: GenerateCall, row: Row, stream: TextStream) -> TucoInfo:
    """A choice's ``tuco`` object (with ``tuco_detail``: pieces, ids and per-layer norms per token)."""
    info = protocol.tuco_object(call.alpha_text, row.prompt_tuco, row.token_tuco, call.tuco_tokens or call.tuco_detail)
    if call.tuco_detail:
        info["pieces"] = list(stream.pieces)
        info["token_ids"] = list(row.tokens)
        info["layer_ptc"] = list(row.token_layer_ptc_l1)
        info["layer_ftc"] = list(row.token_layer_ftc_l1)
    return info


def _response(server: Server, call: GenerateCall, job: GenerationJob, rid: str) -> dict[str, object]:
    choices = [_choice(server, call, job, i) for i in range(len(job.rows))]
    return {
        "id": rid,
        "object": "chat.completion" if call.kind == "chat" else "text_completion",
        "created": protocol.now(),
        "model": call.model or server.settings.model_name,
        "choices": choices,
        "usage": protocol.usage(sum(map(len, call.prompts)), sum(len(r.tokens) for r in job.rows)),
    }


def _choice(server: Server, call: GenerateCall, job: GenerationJob, i: int) -> Choice:
    """Choice ``i`` of a finished job in the OpenAI format, with its ``tuco`` object."""
    row, stream = job.rows[i], job.streams[i]
    out: Choice = {"index": i, "finish_reason": row.finish_reason}
    if call.kind == "chat":
        out["message"] = {"role": "assistant", "content": stream.text}
        out["logprobs"] = _chat_logprobs(server, row, range(len(row.tokens))) if call.logprobs is not None else None
    else:
        out["text"] = (_echo(server, call, row, i) if call.echo else "") + stream.text
        out["logprobs"] = _completion_logprobs(server, row, call.echo) if call.logprobs is not None else None
    out["tuco"] = tuco_info(server, call, row, stream)
    flag = server.flagged(row.prompt_tuco)
    if flag is not None:
        out["tuco_flag"] = flag
    return out


def _echo(server: Server, call: GenerateCall, row: Row, i: int) -> str:
    given = call.texts[i // call.n]
    return given if given is not None else str(server.model.tokenizer.decode(row.ids))


def _token_texts(server: Server, ids: Sequence[int]) -> list[str]:
    """Each token's own text."""
    return [str(server.model.tokenizer.decode([t])) for t in ids]


def _completion_logprobs(server: Server, row: Row, echo: bool) -> dict[str, object]:
    """The completions ``logprobs`` object (prompt tokens first with echo; the first one's logprob is null)."""
    ids = (row.ids if echo else []) + row.tokens
    chosen = (row.prompt_token_logprobs if echo else []) + list(row.token_logprobs)
    tops = (row.prompt_top_logprobs if echo else []) + list(row.top_logprobs)
    texts = _token_texts(server, ids)
    offsets, at = [], 0
    for t in texts:
        offsets.append(at)
        at += len(t)
    top_texts = [None if top is None else dict(zip(_token_texts(server, list(top)), top.values())) for top in tops]
    return {"tokens": texts, "token_logprobs": chosen, "top_logprobs": top_texts, "text_offset": offsets}


def _chat_logprobs(server: Server, row: Row, indices: Sequence[int]) -> dict[str, object]:
    """The chat ``logprobs`` object for generated tokens ``indices``."""
    content = []
    for k in indices:
        (text,) = _token_texts(server, [row.tokens[k]])
        top = row.top_logprobs[k]
        content.append(
            {
                "token": text,
                "logprob": row.token_logprobs[k],
                "bytes": list(text.encode("utf-8")),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))}
                    for t, lp in zip(_token_texts(server, list(top)), top.values())
                ],
            }
        )
    return {"content": content}


def observe(server: Server, call: GenerateCall, job: GenerationJob, cancelled: bool = False) -> list[str]:
    """Metrics of a finished (or ``cancelled``) job; its choices as access-log entries."""
    monitor = server.monitor
    entries = []
    label = monitor.alpha_label(call.alpha_text)
    for i, row in enumerate(job.rows):
        flagged = bool(server.flagged(row.prompt_tuco))
        if row.prompt_tuco == row.prompt_tuco:  # measured (not NaN: cancelled before its prefill)
            monitor.prompt_tuco.labels(label).observe(row.prompt_tuco)
        monitor.tokens.inc(len(row.tokens))
        if flagged:
            monitor.flagged.inc()
        finish = row.finish_reason or ("cancelled" if cancelled else None)
        entries.append(choice_entry(i, call.alpha_text, row.prompt_tuco, row.response_tuco, len(row.tokens), finish, flagged))
    return entries


# ---- streaming ----


def _sse(obj: object) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _stream(server: Server, call: GenerateCall, job: GenerationJob, rid: str, access: Access) -> AsyncIterator[str]:
    """Server-sent events in the OpenAI chunk format; each token's chunk carries its TuCo (and, with
    ``tuco_detail``, its text piece, id and per-layer norms), each choice's last chunk the whole ``tuco``
    object. A client that goes away cancels the job (its rows leave the batch)."""
    created, model_name = protocol.now(), call.model or server.settings.model_name
    obj = "chat.completion.chunk" if call.kind == "chat" else "text_completion"
    started: set[int] = set()
    ended = False

    def chunk(choice: Choice) -> str:
        return _sse({"id": rid, "object": obj, "created": created, "model": model_name, "choices": [choice]})

    async def token_choice(ev: Event) -> Choice:
        row = job.rows[ev.row]
        tuco: TokenTuco = {"token": ev.tuco}
        first = ev.row not in started
        if first:
            started.add(ev.row)
            tuco["prompt"] = row.prompt_tuco
        if call.tuco_detail:
            tuco["piece"], tuco["token_id"], tuco["index"] = ev.piece, ev.token, ev.index
            tuco["layer_ptc"], tuco["layer_ftc"] = (ev.layers[0], ev.layers[1]) if ev.layers is not None else (None, None)
        choice: Choice = {"index": ev.row, "finish_reason": None, "tuco": tuco}
        if call.kind == "chat":
            choice["delta"] = {"role": "assistant", "content": ev.text} if first else {"content": ev.text}
            logprobs = await server.off_loop(_chat_logprobs, server, row, [ev.index]) if call.logprobs is not None else None
            choice["logprobs"] = logprobs
        else:
            echo = await server.off_loop(_echo, server, call, row, ev.row) if first and call.echo else ""
            choice["text"] = echo + ev.text
            choice["logprobs"] = None
        return choice

    def last_choice(ev: Event) -> Choice:
        row = job.rows[ev.row]
        last: Choice = {"index": ev.row, "finish_reason": row.finish_reason, "logprobs": None}
        last["delta" if call.kind == "chat" else "text"] = {} if call.kind == "chat" else ""
        last["tuco"] = protocol.tuco_object(call.alpha_text, row.prompt_tuco, row.token_tuco, call.tuco_tokens)
        flag = server.flagged(row.prompt_tuco)
        if flag is not None:
            last["tuco_flag"] = flag
        return last

    try:
        while True:
            ev = await job.events.get()
            if ev.kind == "token":
                yield chunk(await token_choice(ev))
            elif ev.kind == "done":
                yield chunk(last_choice(ev))
            elif ev.kind == "error":
                ended = True
                access.finish(500, error=ev.message)
                yield _sse(APIError(500, ev.message, code="model_error").body())
                return
            else:  # end
                ended = True
                if call.include_usage:
                    use = protocol.usage(sum(map(len, call.prompts)), sum(len(r.tokens) for r in job.rows))
                    yield _sse({"id": rid, "object": obj, "created": created, "model": model_name, "choices": [], "usage": use})
                yield "data: [DONE]\n\n"
                access.finish(200, observe(server, call, job))
                return
    finally:
        if not ended:  # the client went away mid-stream: its rows leave the batch at the next pass
            server.worker.cancel(job)
            access.finish(CLIENT_CLOSED, observe(server, call, job, cancelled=True), error="client disconnected")
