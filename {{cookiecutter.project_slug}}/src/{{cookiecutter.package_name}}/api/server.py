"""The HTTP server: uvicorn's httptools protocol, plus the limits it does not have.

uvicorn buffers headers without a size limit and never times out a request that stops halfway:
twelve connections sending 50 MB of headers took the process past its memory limit, and
half-sent requests were held forever. This protocol refuses oversized headers (431) as they
arrive, and closes connections whose headers (408) or body do not arrive within the timeouts in
`serve` (params.yaml). Requests beyond `serve.max_requests_in_flight` get 503: uvicorn's own
limit counts connections, so idle or half-sent ones would lock everyone out until they time out.
"""

from __future__ import annotations

import asyncio
import functools
import http
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..settings import ServeSettings


@dataclass(frozen=True)
class Limits:
    """What one request may send, and how slowly."""

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    max_requests_in_flight: int

    @classmethod
    def of(cls, serve: ServeSettings) -> Limits:
        """The limits `serve` sets."""
        return cls(
            serve.max_header_bytes,
            serve.max_headers,
            serve.header_timeout_seconds,
            serve.body_timeout_seconds,
            serve.max_requests_in_flight,
        )


class _Refused(Exception):  # noqa: N818 - a signal out of a parser callback, not an error
    """Raised inside a parser callback to stop parsing; the reply is already chosen."""


class GuardedProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, with the limits of `Limits`."""

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._in_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._parsed_bytes = 0
        self._refusal: tuple[int, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection must send its first request's headers in time."""
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the pending deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse, then refuse if the headers so far are over the size limit.

        Counting after parsing, and only while headers are incomplete, lets a body that arrives
        with the headers in one read through; memory is bounded by the limit plus one read.
        """
        super().data_received(data)
        if not self._in_headers or self.transport.is_closing():
            return
        self._header_bytes += len(data)
        if self._header_bytes > self.limits.max_header_bytes:
            self._reply(
                http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"request headers over {self.limits.max_header_bytes} bytes "
                "(serve.max_header_bytes)",
            )

    def on_message_begin(self) -> None:
        """A request starts: its headers are counted and must arrive in time."""
        super().on_message_begin()
        self._in_headers, self._header_bytes, self._header_count = True, 0, 0
        self._parsed_bytes = 0
        self._arm(self.limits.header_timeout, "headers")

    def on_url(self, url: bytes) -> None:
        """Count the target toward the header size (a 50 MB URL is as bad as a header)."""
        self._count_header(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the headers and their size; over a limit, stop parsing (the reply is 431)."""
        self._count_header(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def _count_header(self, size: int, count: int) -> None:
        # Headers that arrive in one read are complete before data_received can count them.
        self._parsed_bytes += size
        self._header_count += count
        if self._parsed_bytes > self.limits.max_header_bytes:
            self._refuse_headers(
                f"over {self.limits.max_header_bytes} bytes (serve.max_header_bytes)"
            )
        if self._header_count > self.limits.max_headers:
            self._refuse_headers(f"more than {self.limits.max_headers} (serve.max_headers)")

    def _refuse_headers(self, why: str) -> None:
        self._refusal = (http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request headers {why}")
        raise _Refused

    def on_headers_complete(self) -> None:
        """Headers are in: the body, if any, must follow in time, if there is room for it."""
        self._in_headers = False
        if len(self.tasks) >= self.limits.max_requests_in_flight:
            self._refusal = (
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"over {self.limits.max_requests_in_flight} requests in flight "
                "(serve.max_requests_in_flight); retry shortly",
            )
            raise _Refused
        self._arm(self.limits.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request is in: no deadline until the next one begins."""
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """Uvicorn's reply to a parse error; a refusal chosen in a callback replaces it."""
        status, message = self._refusal or (http.HTTPStatus.BAD_REQUEST, msg)
        self._reply(status, message)

    def _arm(self, seconds: float, part: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._late, part)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self, part: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_headers:
            seconds = self.limits.header_timeout
            self._reply(
                http.HTTPStatus.REQUEST_TIMEOUT,
                f"request {part} not received within {seconds:g} s",
            )
        else:
            # The app is waiting for the body: closing tells it the client is gone (499).
            self.transport.close()

    def _reply(self, status: int, message: str) -> None:
        body = message.encode()
        head = (
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            "content-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def protocol(serve: ServeSettings) -> functools.partial[GuardedProtocol]:
    """The protocol factory for `uvicorn.run(http=...)`, with the limits of `serve`."""
    return functools.partial(GuardedProtocol, limits=Limits.of(serve))
