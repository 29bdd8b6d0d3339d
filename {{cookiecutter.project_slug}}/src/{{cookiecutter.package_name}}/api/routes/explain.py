"""/explain (serve.explain: true): each record's SHAP attribution per feature.

The route exists only when serve.explain is on: the default image has no shap (the explain
dependency group) and the service never imports it otherwise. The body is what /predict takes,
checked the same way; explanations are not logged as predictions, so they never reach
monitoring or retraining.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, HTTPException, Request, Response, status
from starlette.concurrency import run_in_threadpool

from ...settings import API_KEY_HEADER
from ..deps import API_KEY_SECURITY, UNAUTHORIZED, require_champion, verify_api_key
from ..schemas import ExplainResponse, RequestSchemas
from ..state import ServiceState
from .predict import VALIDATION_PROBLEMS, check_media_type, openapi_body, parse_records


def build_router(schemas: RequestSchemas | None, auth: bool) -> APIRouter:
    """/explain, documenting this contract's request schema (None: a generic JSON body)."""
    router = APIRouter(tags=["model"])

    @router.post(
        "/explain",
        response_model=ExplainResponse,
        openapi_extra={
            **openapi_body(schemas.openapi_body if schemas else None),
            **({"security": API_KEY_SECURITY} if auth else {}),
        },
        responses={
            **(UNAUTHORIZED if auth else {}),
            **VALIDATION_PROBLEMS,
            413: {"description": "Body or batch over the limits in params.yaml (serve)"},
            415: {"description": "Not Content-Type: application/json, or a compressed body"},
            503: {"description": "No servable model, or no explainer (the reason says why)"},
        },
    )
    async def explain(request: Request) -> Response:
        """Explain one record or a batch: base_value + attributions = the model's output."""
        state: ServiceState = request.app.state.service
        verify_api_key(state, request.headers.get(API_KEY_HEADER))
        champion = require_champion(state)
        if state.explainer is None or state.schemas is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"explanations are not available: {state.explain_problem}",
            )
        check_media_type(request)
        records = parse_records(await request.body(), state.schemas)
        frame = champion.frame(state.schemas.rows(records))
        # SHAP takes milliseconds to seconds: off the event loop, so /predict keeps answering.
        found = await run_in_threadpool(state.explainer.explain, frame)
        body = {
            "model_version": champion.version,
            "method": found.method,
            "explanations": [found.row(index) for index in range(len(frame))],
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return router
