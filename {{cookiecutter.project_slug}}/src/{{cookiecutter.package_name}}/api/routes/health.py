"""Probes: /health (the process answers) and /ready (a verified model is serving)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import StateDep
from ..schemas import Readiness

router = APIRouter(tags=["probes"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    """Always 200 while the process runs; restart it only when this fails."""
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: a verified model is loaded",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "No servable model; `reason` says why"}},
)
async def ready(state: StateDep) -> JSONResponse:
    """200 once the champion is loaded, matches its checksum and its contract; else 503."""
    if state.champion is None:
        body = Readiness(ready=False, reason=state.not_ready_reason)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    body = Readiness(ready=True, model_version=state.champion.version)
    return JSONResponse(body.model_dump(exclude_none=True))
