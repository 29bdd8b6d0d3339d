"""Error replies that stay small and cheap whatever a client sends.

A validation reply lists at most `MAX_ERRORS` problems, each a location, a type and a short
message, never the input that caused it: echoing input is how a 3 KB body of empty records
became a 2.7 MB reply that took seconds to build. A client gone mid-body is not a server error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect

MAX_ERRORS = 20
MAX_MESSAGE_CHARS = 300
# nginx's code for "client closed the request": counted apart from the service's own errors.
CLIENT_CLOSED = 499
logger = logging.getLogger(__name__)


class BoundedValidationError(RequestValidationError):
    """At most `MAX_ERRORS` problems, and how many there were in all."""

    def __init__(self, problems: Iterable[dict[str, Any]], total: int) -> None:
        super().__init__(list(problems)[:MAX_ERRORS])
        self.total = total


def summary(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem as the reply shows it: where, what kind, and a message of bounded length."""
    location = [part if isinstance(part, int) else str(part)[:100] for part in problem["loc"]]
    return {
        "type": str(problem.get("type", "value_error")),
        "loc": location,
        "msg": str(problem.get("msg", ""))[:MAX_MESSAGE_CHARS],
    }


def _detail(problems: list[dict[str, Any]], total: int) -> Iterator[dict[str, Any]]:
    yield from (summary(problem) for problem in problems[:MAX_ERRORS])
    if total > MAX_ERRORS:
        yield {
            "type": "too_many_errors",
            "loc": ["body"],
            "msg": f"and {total - MAX_ERRORS} more problems not shown; fix these first",
        }


async def validation_reply(_: Request, error: Exception) -> Response:
    """422 with the first problems and their count."""
    assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for it  # nosec B101
    problems = list(error.errors())
    total = getattr(error, "total", len(problems))
    body = {"detail": list(_detail(problems, total)), "error_count": total}
    return Response(orjson.dumps(body), status_code=422, media_type="application/json")


async def disconnected_reply(request: Request, _: Exception) -> Response:
    """Nobody is there to read it; counted as 499 in the metrics, logged as one line."""
    logger.info(
        "client closed the connection before sending the whole body of %s", request.url.path
    )
    return Response(status_code=CLIENT_CLOSED)


def install(app: FastAPI) -> None:
    """Use these replies in `app`."""
    app.add_exception_handler(RequestValidationError, validation_reply)
    app.add_exception_handler(ClientDisconnect, disconnected_reply)
