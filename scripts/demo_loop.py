"""`make demo`'s loop: serve the champion, send clean then drifted traffic, monitor, retrain.

Runs the baked project's own commands, as a user would: `serve` in the background,
`simulate clean|drifted --url` (real HTTP traffic, logged by the service), `monitor` on the
latest predictions after each batch (no alert, then a drift alert), then `retrain` on the
drifted batch's labels, where the promotion gate decides. Prints where each artifact is.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DRIFT_EXIT_CODE = 3


def command(project: Path, *args: str, expect: tuple[int, ...] = (0,)) -> str:
    """Run one of the project's commands; its stdout (its stderr too if it fails)."""
    package = next((project / "src").iterdir()).name
    result = subprocess.run(
        [str(project / ".venv/bin" / package), *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in expect:
        sys.exit(f"error: {package} {' '.join(args)} exited {result.returncode}\n{result.stderr}")
    return result.stdout


def streamed(project: Path, *args: str, expect: tuple[int, ...] = (0,)) -> str:
    """`command`, for a long one: each pipeline stage is announced as it starts (progress)."""
    package = next((project / "src").iterdir()).name
    with subprocess.Popen(
        [str(project / ".venv/bin" / package), *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if stage := re.match(r"Running stage '(\w+)'", line):
                print(f"   ... {stage[1]}", flush=True)
    if process.returncode not in expect:
        sys.exit(f"error: {package} {' '.join(args)} exited {process.returncode}\n{''.join(lines)}")
    return "".join(lines)


def verdict(monitor_output: str) -> str:
    """The lines after the per-column table: rows, drift share, alert, report path."""
    lines = monitor_output.splitlines()
    start = next(i for i, line in enumerate(lines) if " rows from " in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("report: "))
    return "\n".join(f"   {line}" for line in lines[start : end + 1])


def report_path(verdict_lines: str) -> str:
    """The HTML report named on a verdict's last line."""
    return verdict_lines.rsplit("report: ", 1)[1].strip()


def main(project: Path) -> None:
    package = next((project / "src").iterdir()).name
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
        print(f"1. service ready in {time.monotonic() - started:.1f} s at {url} (docs: {url}/docs)")
        with urllib.request.urlopen(f"{url}/model", timeout=5) as response:
            model = json.loads(response.read())
        print(f"   serving {model['name']} v{model['version']} ({model['alias']})")

        # Every held-back production row, each once (simulate's default): no copies to learn twice.
        sent = command(project, "simulate", "clean", "--url", url, "--force")
        counted = re.search(r"batch of (\d+) rows", sent)
        rows = counted.group(1) if counted else sys.exit(f"error: unexpected output: {sent}")
        print(f"2. {rows} clean rows sent; monitor on the latest {rows} predictions:")
        clean = verdict(command(project, "monitor", "--window", rows))
        print(clean)

        sent = command(project, "simulate", "drifted", "--url", url, "--force")
        print(f"3. {rows} drifted rows sent ({sent.splitlines()[1].strip()}); monitor again:")
        drifted = verdict(command(project, "monitor", "--window", rows, expect=(DRIFT_EXIT_CODE,)))
        print(drifted)
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            gauges = [
                line
                for line in response.read().decode().splitlines()
                if line.startswith(("model_drift_share", "model_drift_alert"))
            ]
        print(f"   the service's /metrics now shows: {', '.join(gauges)}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    labels = "data/simulated/drifted-0.labels.csv"
    print(f"4. retrain on the drifted rows' labels ({labels}); dvc repro, the gate decides:")
    # Exit 1: the retrained model missed a quality threshold, so the champion stays.
    retrained = streamed(project, "retrain", "--labels", labels, expect=(0, 1))
    print(f"   {retrained.strip().splitlines()[-1]}")
    print(command(project, "models"))
    logs = sorted((project / "logs/predictions").glob("*.jsonl"))
    print(f"Prediction log:   {logs[-1] if logs else 'none'}")
    print(f"Drift reports:    {project / report_path(clean)} (clean)")
    print(f"                  {project / report_path(drifted)} (drifted)")
    print(f"Drift gauges:     {project}/reports/monitoring/drift.prom")
    print(f"Labelled batch:   {next((project / 'data/external/labelled').glob('*.csv'))}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
