"""Property-based: schemathesis generates requests from the OpenAPI schema; none may be a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from .conftest import (
    RunningService,
)


@pytest.mark.slow
def test_no_generated_request_is_a_server_error(running_service: RunningService) -> None:
    schema = schemathesis.openapi.from_url(f"{running_service.url}/openapi.json")

    @given(case=schema.as_strategy())
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    no_server_error()
