"""The tokenizer routes lm-evaluation-harness's remote tokenizer reads: ``GET /tokenizer_info``,
``POST /tokenize``, ``POST /detokenize``. Tokenising runs on the tokenizer's thread, never on the event
loop."""

from __future__ import annotations

from typing import TypedDict

from fastapi import APIRouter
from starlette.requests import Request

from tuco.serve import protocol
from tuco.serve.protocol import DetokenizeCall, TokenizeCall
from tuco.serve.state import Server, server_of

router = APIRouter()


class TokenizerInfo(TypedDict):
    eos_token: str | None
    bos_token: str | None
    pad_token: str | None
    chat_template: str | None
    model_max_length: int | None


class Tokens(TypedDict):
    tokens: list[int]
    count: int
    max_model_len: int | None


class Text(TypedDict):
    prompt: str


@router.get("/tokenizer_info", response_model=None)
async def tokenizer_info(request: Request) -> TokenizerInfo:
    server = server_of(request)
    server.authorize(request)
    tok = server.model.tokenizer
    return {
        "eos_token": tok.eos_token,
        "bos_token": tok.bos_token,
        "pad_token": tok.pad_token,
        "chat_template": getattr(tok, "chat_template", None),
        "model_max_length": server.limits.context,
    }


def _tokenize(server: Server, raw: bytes) -> Tokens:
    call: TokenizeCall = protocol.parse_tokenize(raw)
    ids = [int(t) for t in server.model.tokenizer(call.text, add_special_tokens=call.add_special_tokens)["input_ids"]]
    return {"tokens": ids, "count": len(ids), "max_model_len": server.limits.context}


def _detokenize(server: Server, raw: bytes) -> Text:
    call: DetokenizeCall = protocol.parse_detokenize(raw, len(server.model.tokenizer))
    return {"prompt": str(server.model.tokenizer.decode(call.ids))}


@router.post("/tokenize", response_model=None)
async def tokenize(request: Request) -> Tokens:
    server = server_of(request)
    server.authorize(request)
    return await server.off_loop(_tokenize, server, await server.body(request))


@router.post("/detokenize", response_model=None)
async def detokenize(request: Request) -> Text:
    server = server_of(request)
    server.authorize(request)
    return await server.off_loop(_detokenize, server, await server.body(request))
