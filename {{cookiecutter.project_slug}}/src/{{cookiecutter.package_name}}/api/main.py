"""The FastAPI application, composed from settings, the verified champion and the routes.

Run it with `<package> serve`, or `uvicorn <package>.api.main:create_app --factory`. Nothing
happens at import: `create_app` loads the model, so tests build as many apps as they like.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from ..settings import Settings, load_settings
from . import problems
from .routes import explain, health, metrics, model, predict
from .state import ServiceState
from .telemetry import RequestMiddleware

PACKAGE = __name__.partition(".")[0]
logger = logging.getLogger(__name__)
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _documented_app(settings: Settings, state: ServiceState, lifespan: Lifespan) -> FastAPI:
    """The app and its OpenAPI description; with the key on, no contract or model details."""
    auth = settings.serve.require_api_key
    model = f"model v{state.model_version} of {settings.registry.model_name}"
    # /docs and /redoc from files shipped in the package: FastAPI's CDN is not there offline.
    return FastAPIOffline(
        title=f"{PACKAGE} prediction service",
        summary=None if auth else f"Serves {model}.",
        description="" if auth or state.schemas is None else state.schemas.description,
        version="1" if auth else state.model_version,
        lifespan=lifespan,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; without a servable model it starts anyway and reports not ready."""
    settings = settings or load_settings()
    state = ServiceState.load(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (libraries, the model) lives as long as the process: freezing
        # it keeps the garbage collector's full passes from stalling requests for tens of ms.
        gc.freeze()
        state.start()
        try:
            yield
        finally:
            await state.stop()

    app = _documented_app(settings, state, lifespan)
    app.state.service = state
    problems.install(app)
    auth = settings.serve.require_api_key
    routers = [
        health.router,
        metrics.build_router(auth),
        model.build_router(auth),
        predict.build_router(None if auth else state.schemas, auth),
    ]
    if settings.serve.explain:
        routers.append(explain.build_router(None if auth else state.schemas, auth))
    for router in routers:
        app.include_router(router)
    if settings.serve.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.serve.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "X-Request-Id"],
        )
    app.add_middleware(
        RequestMiddleware,
        telemetry=state.telemetry,
        # Metric labels use these paths; any other path counts as "unmatched" (bounded labels).
        routes=frozenset(
            route.path
            for route in [*app.routes, *(r for router in routers for r in router.routes)]
            if hasattr(route, "path")
        ),
        model_version=lambda: state.model_version,
        max_body_bytes=settings.serve.max_body_bytes,
    )
    return app
