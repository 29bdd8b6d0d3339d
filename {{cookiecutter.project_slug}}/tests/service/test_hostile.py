"""Hostile clients against the real server (loopback): nothing they send takes the service down.

Each attack is what a careless or malicious client can do without a key: error replies that
amplify a small body, endless headers, requests that stop halfway, bodies cut off mid-way.
The service must answer 4xx or close the connection, keep /health fast, and hold its memory.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.package_name }}.api.schemas import (
    example_record,
)
from {{ cookiecutter.package_name }}.contract import (
    Contract,
)

from .conftest import (
    RunningService,
    serving,
)

pytestmark = pytest.mark.slow
TIMEOUT_S = 2  # the header and body timeouts this module's service runs with
# A starved /health waits for the TIMEOUT_S read timeouts; a busy CI machine adds ~0.2 s spikes.
STARVED_S = 0.5
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def service(
    exported_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The service with short read timeouts, so the slow-client checks take seconds."""
    with serving(
        exported_bundle,
        tmp_path_factory.mktemp("log"),
        SERVE__HEADER_TIMEOUT_SECONDS=str(TIMEOUT_S),
        SERVE__BODY_TIMEOUT_SECONDS=str(TIMEOUT_S),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def rss_at_start(service: RunningService) -> int:
    """The service's memory (KiB) before any attack."""
    return service.rss_kib()


def _address(service: RunningService) -> tuple[str, int]:
    host, port = service.url.removeprefix("http://").split(":")
    return host, int(port)


def _connect(service: RunningService) -> socket.socket:
    connection = socket.create_connection(_address(service), timeout=10)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return connection


def _health_latency(service: RunningService) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"{service.url}/health", timeout=5) as response:  # noqa: S310
        assert response.status == 200
    return time.perf_counter() - started


def _health_median(service: RunningService, times: int = 5) -> float:
    """The median, so one scheduling spike on a loaded machine is not read as starvation."""
    return sorted(_health_latency(service) for _ in range(times))[times // 2]


def _median_seconds(send: Callable[[], httpx.Response], times: int = 7) -> float:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        send()
        durations.append(time.perf_counter() - started)
    return sorted(durations)[times // 2]


def _server_errors(service: RunningService) -> list[str]:
    metrics = httpx.get(f"{service.url}/metrics").text
    return [
        line
        for line in metrics.splitlines()
        if line.startswith("http_requests_total") and 'status="5' in line
    ]


MISSING_FIELDS = {
    "3 KB of empty records": json.dumps([{}] * 1000).encode(),
    "0.9 MB of padded records": json.dumps([{"padding": "x" * 880}] * 1000).encode(),
}


@pytest.mark.parametrize("name", list(MISSING_FIELDS))
def test_invalid_bodies_cost_no_more_than_valid_ones(
    service: RunningService, rss_at_start: int, contract: Contract, name: str
) -> None:
    invalid = MISSING_FIELDS[name]
    valid = json.dumps([example_record(contract)] * 1000).encode()
    with httpx.Client(base_url=service.url, headers=JSON, timeout=30) as client:
        reply = client.post("/predict", content=invalid)
        assert reply.status_code == 422
        assert len(reply.content) < 16384
        invalid_s = _median_seconds(lambda: client.post("/predict", content=invalid))
        valid_s = _median_seconds(lambda: client.post("/predict", content=valid))
    assert invalid_s < valid_s + 0.1, f"{name}: invalid {invalid_s:.3f} s, valid {valid_s:.3f} s"


def test_health_stays_fast_while_clients_loop_invalid_bodies(service: RunningService) -> None:
    stop = threading.Event()

    def loop(body: bytes) -> None:
        with httpx.Client(base_url=service.url, headers=JSON, timeout=30) as client:
            while not stop.is_set():
                assert client.post("/predict", content=body).status_code == 422

    clients = [
        threading.Thread(target=loop, args=(body,), daemon=True)
        for body in [*MISSING_FIELDS.values(), *MISSING_FIELDS.values()]
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(1)
        latencies = [_health_latency(service) for _ in range(20)]
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
    ranked = sorted(latencies)
    median, p90 = ranked[len(ranked) // 2], ranked[len(ranked) * 9 // 10]
    assert median < 0.2, f"/health took {median:.3f} s (median), {p90:.3f} s (p90)"
    assert p90 < STARVED_S, f"/health took {p90:.3f} s (p90)"


def test_endless_headers_are_refused_and_cost_no_memory(service: RunningService) -> None:
    before = service.rss_kib()
    chunk = b"x" * 65536
    durations: list[float] = []

    def send_endless_header() -> None:
        connection = _connect(service)
        started = time.perf_counter()
        reply = b""
        try:
            connection.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nX-Padding: ")
            for _ in range(50 * 16):  # 50 MB
                connection.sendall(chunk)
        except OSError:
            pass  # the server closed the connection: what it should do
        with contextlib.suppress(OSError):
            reply = connection.recv(4096)
        durations.append(time.perf_counter() - started)
        connection.close()
        assert reply == b"" or reply.startswith(b"HTTP/1.1 431"), reply[:100]

    threads = [threading.Thread(target=send_endless_header) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(durations) == 12
    assert max(durations) < 2, f"a connection was held {max(durations):.1f} s"
    growth_mib = (service.rss_kib() - before) / 1024
    assert growth_mib < 50, f"RSS grew {growth_mib:.0f} MiB"
    assert _health_median(service) < STARVED_S


@pytest.mark.parametrize(
    "request_head",
    [
        "GET /health HTTP/1.1\r\n" + "".join(f"X-Header-{n}: {n}\r\n" for n in range(150)),
        "GET /health HTTP/1.1\r\nX-Padding: " + "x" * 20000 + "\r\n",  # in one read
        "GET /health?" + "q" * 20000 + " HTTP/1.1\r\n",
    ],
    ids=["150 headers", "a 20 KB header", "a 20 KB URL"],
)
def test_headers_over_the_limits_are_431(service: RunningService, request_head: str) -> None:
    with _connect(service) as connection:
        connection.sendall(f"{request_head}Host: test\r\n\r\n".encode())
        assert connection.recv(4096).startswith(b"HTTP/1.1 431")


def test_half_sent_requests_are_closed_after_the_timeout(service: RunningService) -> None:
    connections = []
    for _ in range(2000):
        connection = _connect(service)
        connection.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: appli")
        connections.append(connection)
    # The first request: a starved one waits for the held connections' timeouts; later ones
    # would find them gone, so a median would hide it.
    assert _health_latency(service) < STARVED_S
    time.sleep(TIMEOUT_S + 1)
    for connection in connections:
        connection.settimeout(5)
        reply = connection.recv(4096)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 408"), reply[:100]
        connection.close()


def test_slow_and_cut_off_bodies_are_dropped_without_a_server_error(
    service: RunningService, contract: Contract
) -> None:
    body = json.dumps(example_record(contract)).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    slow = _connect(service)
    slow.sendall(head + body[:10])  # and then nothing: closed after the body timeout
    for _ in range(20):
        with _connect(service) as cut_off:  # and then gone
            cut_off.sendall(head + body[:10])
    slow.settimeout(TIMEOUT_S + 5)
    assert slow.recv(4096) == b"", "a stalled body must be dropped after the body timeout"
    slow.close()
    time.sleep(0.5)
    assert _server_errors(service) == []
    response = httpx.post(f"{service.url}/predict", content=body, headers=JSON)
    assert response.status_code == 200


def test_no_attack_left_a_server_error_or_held_memory(
    service: RunningService, rss_at_start: int
) -> None:
    assert _server_errors(service) == []
    growth_mib = (service.rss_kib() - rss_at_start) / 1024
    assert growth_mib < 100, f"after every attack the service holds {growth_mib:.0f} MiB more"
