"""/metrics: Prometheus exposition of the service's metrics, plus the latest drift gauges."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ...monitoring.gauges import gauges_for
from ..deps import UNAUTHORIZED, StateDep, given_key, verify_api_key


def build_router(auth: bool) -> APIRouter:
    """/metrics; behind the key when `auth`, as X-API-Key or `Authorization: Bearer`."""
    router = APIRouter(tags=["probes"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses=UNAUTHORIZED if auth else None,
    )
    async def metrics(request: Request, state: StateDep) -> Response:
        """Requests and latency by route and status, predictions, model version, log drops.

        When `monitor` has run on the model being served, its gauges (file
        `monitor.metrics_file`) follow, so one scrape puts drift next to latency on a
        dashboard; another model's are left out. With the API key on, the key is needed here
        too (class counts and model details are not public): give Prometheus the key as a
        bearer token (`authorization` in the scrape config).
        """
        verify_api_key(state, given_key(request))
        body = generate_latest(state.telemetry.registry)
        # Missing before the first monitoring run, or where the file is not mounted.
        with contextlib.suppress(OSError, UnicodeDecodeError):
            gauges = state.settings.monitor.metrics_file.read_text(encoding="utf-8")
            if state.champion is not None:
                body += gauges_for(gauges, state.champion.version).encode()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
