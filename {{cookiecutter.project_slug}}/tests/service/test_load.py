"""Sustained real HTTP load on the running service: no errors, no memory growth."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.contract import (
    Contract,
)

from .conftest import (
    RunningService,
)

WARM_UP_S = 5.0
DURATION_S = 60.0
CONCURRENCY = 32


async def _hammer(url: str, bodies: list[bytes], seconds: float) -> Counter[str]:
    """CONCURRENCY clients posting back to back for `seconds`; outcomes by status or error."""
    outcomes: Counter[str] = Counter()
    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CONCURRENCY)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

        async def client_loop(offset: int) -> None:
            sent = offset
            while time.monotonic() < until:
                body = bodies[sent % len(bodies)]
                try:
                    response = await client.post("/predict", content=body, headers=headers)
                    outcomes[str(response.status_code)] += 1
                except httpx.HTTPError as error:
                    outcomes[type(error).__name__] += 1
                sent += 1

        await asyncio.gather(*(client_loop(offset) for offset in range(CONCURRENCY)))
    return outcomes


@pytest.mark.slow
def test_a_minute_at_concurrency_32_has_no_errors_and_no_memory_growth(
    running_service: RunningService, sample: pd.DataFrame, contract: Contract
) -> None:
    records = sample[contract.feature_names]
    bodies = [row.encode() for row in records.to_json(orient="records", lines=True).splitlines()]
    warm_up = asyncio.run(_hammer(running_service.url, bodies, WARM_UP_S))
    rss_after_warm_up = running_service.rss_kib()
    outcomes = asyncio.run(_hammer(running_service.url, bodies, DURATION_S - WARM_UP_S))
    rss_at_end = running_service.rss_kib()
    assert set(warm_up) == {"200"}, warm_up
    assert set(outcomes) == {"200"}, outcomes
    assert outcomes["200"] > 1000, outcomes  # it really was under load
    # Steady state: what a minute of traffic adds must be noise, not a leak.
    assert rss_at_end <= rss_after_warm_up * 1.05 + 4096, (rss_after_warm_up, rss_at_end)
