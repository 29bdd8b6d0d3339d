"""/metrics: Prometheus exposition of the service's metrics, plus the latest drift gauges."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ...monitoring.gauges import gauges_for
from ..deps import StateDep

router = APIRouter(tags=["probes"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """Requests and latency by route and status, predictions, model version, log drops.

    When `monitor` has run on the model being served, its gauges (file `monitor.metrics_file`)
    follow, so one scrape puts drift next to latency on a dashboard; another model's are left out.
    """
    body = generate_latest(state.telemetry.registry)
    # Missing before the first monitoring run, or where the file is not mounted.
    with contextlib.suppress(OSError, UnicodeDecodeError):
        gauges = state.settings.monitor.metrics_file.read_text(encoding="utf-8")
        if state.champion is not None:
            body += gauges_for(gauges, state.champion.version).encode()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
