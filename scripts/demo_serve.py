"""`make demo`'s serving step: start the baked project's service, send it real traffic, stop it.

Posts the held-back production rows (one by one, then as one batch), prints what came back and
where the prediction log is, then shuts the service down gracefully (which flushes the log).
"""

from __future__ import annotations

import csv
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def post(url: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def main(project: Path) -> None:
    package = next((project / "src").iterdir()).name
    contract = yaml.safe_load((project / "contract.yaml").read_text())
    features = [(c["name"], c["type"] != "category") for c in contract["features"]]
    with (project / "data/prepared/production.csv").open() as stream:
        records = [
            {name: float(row[name]) if numeric else row[name] for name, numeric in features}
            for row in csv.DictReader(stream)
        ]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    server = subprocess.Popen(
        [str(project / ".venv/bin" / package), "serve", "--port", str(port)],
        cwd=project,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() - started > 60:
                    sys.exit("error: the service did not become ready")
                time.sleep(0.1)
        print(f"service ready in {time.monotonic() - started:.1f} s at {url} (docs: {url}/docs)")
        sent = time.monotonic()
        singles = [post(f"{url}/predict", record) for record in records]
        single_ms = (time.monotonic() - sent) / len(records) * 1000
        batch = post(f"{url}/predict", records)
        first = singles[0]["predictions"][0]
        print(
            f"{len(records)} production records one by one ({single_ms:.1f} ms each, "
            f"sequential) and as one batch; model v{batch['model_version']}"
        )
        print(f"first record -> {json.dumps(first)}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    logs = sorted((project / "logs/predictions").glob("*.jsonl"))
    lines = sum(len(path.read_text().splitlines()) for path in logs)
    print(f"prediction log:   {logs[-1] if logs else 'none'} ({lines} records)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
