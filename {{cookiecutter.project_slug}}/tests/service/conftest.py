"""A real service process (uvicorn over HTTP) for the tests that need one."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RunningService:
    """A started server: where it listens and its process, for RSS readings."""

    url: str
    process: subprocess.Popen[bytes]

    def rss_kib(self) -> int:
        """Resident memory of the server process, in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(bundle: Path, log_dir: Path, **settings: str) -> Iterator[RunningService]:
    """`<package> serve` on a free port, serving `bundle`, until the block ends.

    `settings` (SECTION__NAME=value) reach it through the environment; a clean stop is asserted.
    """
    package = next((PROJECT_ROOT / "src").iterdir()).name
    prefix = package.upper()
    port = free_port()
    environment = {
        **os.environ,
        f"{prefix}_REGISTRY__EXPORT_DIR": str(bundle),
        f"{prefix}_SERVE__PREDICTION_LOG_DIR": str(log_dir),
        **{f"{prefix}_{name}": value for name, value in settings.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", package, "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=environment,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the service did not become ready (exit code {process.poll()})")
            time.sleep(0.2)
    yield RunningService(url, process)
    process.send_signal(signal.SIGTERM)
    # uvicorn drains, shuts the app down, then re-raises the signal: -SIGTERM is a clean exit.
    assert process.wait(timeout=30) in {0, -signal.SIGTERM}, "the service did not shut down cleanly"


@pytest.fixture(scope="module")
def running_service(
    exported_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The service with the project's settings, until the module ends."""
    with serving(exported_bundle, tmp_path_factory.mktemp("log")) as service:
        yield service
