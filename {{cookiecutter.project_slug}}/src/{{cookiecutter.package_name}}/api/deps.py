"""Dependencies the routes declare: the service state, a ready model, the API key."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from ..bundle import Champion
from ..settings import API_KEY_HEADER
from .state import ServiceState

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def get_state(request: Request) -> ServiceState:
    """The state `create_app` built for this process (async: no thread hop per request)."""
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def require_champion(state: ServiceState) -> Champion:
    """The verified model, or 503 naming why there is none."""
    if state.champion is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"model not ready: {state.not_ready_reason}"
        )
    return state.champion


async def get_champion(state: StateDep) -> Champion:
    """Dependency form of `require_champion`."""
    return require_champion(state)


ChampionDep = Annotated[Champion, Depends(get_champion)]


def verify_api_key(state: ServiceState, given: str | None) -> None:
    """401 unless auth is off or `given` matches the key (constant-time comparison)."""
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


def given_key(request: Request) -> str | None:
    """The key a request carries: X-API-Key, or `Authorization: Bearer` (Prometheus sends that)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else None
    return request.headers.get(API_KEY_HEADER) or bearer or None


async def check_api_key(
    state: StateDep, given: Annotated[str | None, Security(_api_key_header)]
) -> None:
    """Dependency form of `verify_api_key`; also declares the scheme in the OpenAPI docs."""
    verify_api_key(state, given)


ApiKeyDep = Depends(check_api_key)
# /predict calls the plain functions above instead: FastAPI's dependency solving cost more per
# request than everything else the route does (measured with cProfile under wrk).
API_KEY_SECURITY: list[dict[str, list[str]]] = [{_api_key_header.scheme_name: []}]
# OpenAPI responses of a route that needs the key (documented only when it does).
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": f"Missing or wrong {API_KEY_HEADER} header"}
}
