"""/predict: one record (a JSON object) or a batch (a JSON array of objects).

The body is parsed and validated here rather than by a FastAPI body parameter: one pass with
orjson and pydantic-core, errors located as `body.<field>` or `body.<row>.<field>`, and a batch
count checked before any record is validated.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import ValidationError

from ...bundle import Champion
from ...monitoring.records import PREDICTION_ID, REQUEST_ID
from ...settings import API_KEY_HEADER
from ..answered import Role, log_entries, record_telemetry
from ..batching import MicroBatcher
from ..deps import API_KEY_SECURITY, UNAUTHORIZED, require_champion, verify_api_key
from ..problems import MAX_ERRORS, BoundedValidationError
from ..rollout import ROUTING_KEY_HEADER
from ..schemas import PredictResponse, RequestSchemas
from ..state import ServiceState

logger = logging.getLogger(__name__)


def _invalid(message: str, kind: str) -> Exception:
    return BoundedValidationError([{"type": kind, "loc": ("body",), "msg": message}], total=1)


def _validated(payload: list[Any], schemas: RequestSchemas) -> list[dict[str, Any]]:
    """The records, each validated on its own (as fast as a list, measured).

    Problems are kept up to `MAX_ERRORS` and only counted after, so a body of broken records
    costs what a valid one does.
    """
    records: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    total = 0
    for row, item in enumerate(payload):
        try:
            records.append(schemas.one.validate_python(item))
        except ValidationError as error:
            total += error.error_count()
            if len(problems) < MAX_ERRORS:
                problems.extend(
                    {**problem, "loc": ("body", row, *problem["loc"])}
                    for problem in error.errors(
                        include_url=False, include_context=False, include_input=False
                    )
                )
    if total:
        raise BoundedValidationError(problems, total)
    return records


def parse_records(body: bytes, schemas: RequestSchemas) -> list[dict[str, Any]]:
    """The body's records, validated against the contract (422 naming each field), or raise."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _invalid(
            f"body is not valid JSON ({str(error)[:200]}); NaN and Infinity are not JSON numbers",
            "json_invalid",
        ) from None
    if isinstance(payload, dict):
        try:
            return [schemas.one.validate_python(payload)]
        except ValidationError as error:
            problems = error.errors(include_url=False, include_context=False, include_input=False)
            raise BoundedValidationError(
                ({**problem, "loc": ("body", *problem["loc"])} for problem in problems),
                error.error_count(),
            ) from None
    if isinstance(payload, list):
        if not payload:
            raise _invalid("empty batch: send at least one record", "too_short")
        if len(payload) > schemas.max_batch_rows:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"batch of {len(payload)} records is over the limit of "
                f"{schemas.max_batch_rows} (serve.max_batch_rows); split it",
            )
        return _validated(payload, schemas)
    raise _invalid("body must be a JSON object (one record) or an array of records", "type_error")


def check_media_type(request: Request) -> None:
    """415 unless the body is declared as plain, uncompressed JSON.

    A form or text/plain post from a foreign web page (no CORS preflight) must not reach the
    model or the prediction log.
    """
    declared = request.headers.get("content-type", "")
    if declared.partition(";")[0].strip().lower() != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type must be application/json, not {declared[:100] or 'missing'}; "
            "send the records as a JSON body with that header",
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"compressed bodies (Content-Encoding: {encoding[:50]}) are not accepted; "
            "send uncompressed JSON",
        )


def _answering(
    state: ServiceState, champion: Champion, request: Request, request_id: str
) -> tuple[Champion, MicroBatcher, Role]:
    """The model that answers this request: the champion, or the challenger under a rollout."""
    rollout = state.rollout
    key = request.headers.get(ROUTING_KEY_HEADER) or request_id
    if rollout is not None and rollout.answers(key):
        return rollout.challenger, rollout.batcher, "challenger"
    assert state.batcher is not None  # noqa: S101 - checked by the route  # nosec B101
    return champion, state.batcher, "champion"


def openapi_body(request_body: dict[str, Any] | None) -> dict[str, Any]:
    """The route's OpenAPI extras: the contract-derived body when a contract is known."""
    if request_body is None:
        return {"requestBody": {"required": True, "content": {"application/json": {}}}}
    return {"requestBody": request_body}


VALIDATION_PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Records that break the data contract: up to 20 problems, each naming "
        "its field (`loc`), and `error_count`"
    }
}


def build_router(schemas: RequestSchemas | None, auth: bool) -> APIRouter:
    """/predict, documenting this contract's request schema (None: a generic JSON body)."""
    predict_router = APIRouter(tags=["model"])

    @predict_router.post(
        "/predict",
        response_model=PredictResponse,
        openapi_extra={
            **openapi_body(schemas.openapi_body if schemas else None),
            **({"security": API_KEY_SECURITY} if auth else {}),
        },
        responses={
            **(UNAUTHORIZED if auth else {}),
            **VALIDATION_PROBLEMS,
            413: {"description": "Body or batch over the limits in params.yaml (serve)"},
            415: {"description": "Not Content-Type: application/json, or a compressed body"},
            503: {"description": "No servable model (see /ready)"},
        },
    )
    async def predict(request: Request) -> Response:
        """Predict one record or a batch, answered with the model version and a prediction id.

        Labels for these predictions refer to that id, with each record's row.
        """
        state: ServiceState = request.app.state.service
        verify_api_key(state, request.headers.get(API_KEY_HEADER))
        champion = require_champion(state)
        check_media_type(request)
        if state.schemas is None or state.batcher is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "service is starting")
        records = parse_records(await request.body(), state.schemas)
        rows = state.schemas.rows(records)
        request_id: str = request.scope["state"]["request_id"]
        model, batcher, role = _answering(state, champion, request, request_id)
        predictions = await batcher.predict(rows)
        answers = [model.task.answer(item) for item in predictions]
        ids = (uuid.uuid4().hex, request_id)  # the prediction id is ours, unique: labels join on it
        record_telemetry(state.telemetry, model, role, predictions)
        state.prediction_log.append(log_entries(model, role, ids, rows, answers))
        rollout = state.rollout
        if rollout is not None and rollout.mode == "shadow":
            rollout.shadow(ids, rows, predictions)  # scored after the response, in batches
        request.scope["state"]["model_version"] = model.version
        body = {
            "model_version": model.version,
            "model_role": role,
            PREDICTION_ID: ids[0],
            REQUEST_ID: request_id,
            "predictions": answers,
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return predict_router
