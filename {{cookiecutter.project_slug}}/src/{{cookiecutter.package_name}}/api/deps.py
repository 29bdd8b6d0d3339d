"""Dependencies the routes declare: the service state, a ready model, the API key."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from .champion import Champion
from .state import ServiceState

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def get_state(request: Request) -> ServiceState:
    """The state `create_app` built for this process (async: no thread hop per request)."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_champion(state: StateDep) -> Champion:
    """The verified model, or 503 naming why there is none."""
    if state.champion is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"model not ready: {state.not_ready_reason}"
        )
    return state.champion


ChampionDep = Annotated[Champion, Depends(get_champion)]


async def check_api_key(
    state: StateDep, given: Annotated[str | None, Security(_api_key_header)]
) -> None:
    """401 unless auth is off or the header matches the key (constant-time comparison)."""
    serve = state.settings.serve
    if not serve.require_api_key or serve.api_key is None:
        return
    expected = serve.api_key.get_secret_value().encode()
    if given is None or not hmac.compare_digest(given.encode(), expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing or wrong {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


ApiKeyDep = Depends(check_api_key)
