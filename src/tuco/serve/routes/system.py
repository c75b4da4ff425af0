"""``GET /v1/models``, ``GET /health`` and ``GET /metrics`` (Prometheus). The API key, when set, guards
/v1/models; /health and /metrics stay open (load balancers and scrapers carry no key)."""

from __future__ import annotations

from typing import TypedDict

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from tuco.serve.state import server_of

router = APIRouter()


class ModelCard(TypedDict):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(TypedDict):
    object: str
    data: list[ModelCard]


class Health(TypedDict):
    status: str
    model: str
    running: int
    queued: int


@router.get("/v1/models", response_model=None)
async def models(request: Request) -> ModelList:
    server = server_of(request)
    server.authorize(request)
    card: ModelCard = {"id": server.settings.model_name, "object": "model", "created": server.created, "owned_by": "tuco"}
    return {"object": "list", "data": [card]}


@router.get("/health", response_model=None)
async def health(request: Request) -> Health:
    server = server_of(request)
    worker = server.worker
    return {"status": "ok", "model": server.settings.model_name, "running": worker.running_rows, "queued": worker.queued}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body, content_type = server_of(request).monitor.render()
    return Response(body, media_type=content_type)
