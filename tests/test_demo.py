"""The README's main command: `make demo` runs quietly and every next step it prints works.

Run with uv nowhere on PATH (the README asks for python3, git and make only): each printed
path exists, each printed command runs, and the servers it names start and answer.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import TEMPLATE, free_port, without_uv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]
# "Label:   cd <folder> && <command>   (a note)": the command a reader copies.
STEP = re.compile(r"cd (?P<folder>\S+) && (?P<command>.+?)(?:\s{3}\(.*)?\)?$")
# Labelled lines whose first word is a path: "Model card:       /abs/.../model_card.md".
PATH_LINE = re.compile(r"^[A-Z][\w ,/]+:\s+(?P<path>/\S+)")
# Long-running steps, started, checked on their page, then stopped.
SERVERS = {"make serve": "/ready", "make ui": "/health"}


def shell(command: str, folder: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, f"{command} (in {folder}):\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def serve_briefly(command: str, folder: Path, env: dict[str, str], check: str) -> None:
    """Start a printed server on a free port; it must answer `check`; then stop it."""
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        ["bash", "-c", f"exec {command} PORT={port}"],
        cwd=folder,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline_checks = 600  # x 0.2 s: the UI starts in ~10 s alone, slower beside other tests
        for _ in range(deadline_checks):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{check}", timeout=2):
                    return
            except OSError:
                assert server.poll() is None, f"{command} exited {server.returncode}"
                subprocess.run(["sleep", "0.2"], check=True)
        pytest.fail(f"{command} did not answer {check} on port {port}")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def test_make_demo_is_quiet_and_its_printed_steps_work(tmp_path: Path) -> None:
    env = without_uv()
    demo = tmp_path / "demo"
    output = shell(f"make --no-print-directory demo DEMO_DIR={demo}", TEMPLATE, env)
    # Warnings are fixed where they arise, not left for a reader to wonder about.
    assert "warning" not in output.lower(), output
    assert not re.search(r"^ \+ \S+==", output, re.MULTILINE), "a line per installed package"
    for header in ("== Baking", "== make setup pipeline", "== Registered versions"):
        assert header in output
    project = demo / "my-ml-service"
    # The demo commits the baked files first: the runs, and so the model card, name that commit.
    head = shell("git rev-parse HEAD", project, env).strip()
    assert f"git commit `{head}`" in (project / "models/champion/model_card.md").read_text()
    steps = 0
    for line in output.splitlines():
        if found := PATH_LINE.match(line):
            assert Path(found["path"]).exists(), line
        if (step := STEP.search(line)) is None:
            continue
        folder, command = Path(step["folder"]), step["command"].strip()
        folder = folder if folder.is_absolute() else TEMPLATE / folder
        steps += 1
        if command in SERVERS:
            serve_briefly(command, folder, env, SERVERS[command])
        elif command.startswith("make image"):
            continue  # building the image is the image tests' job (and needs Docker)
        else:
            shell(command, folder, env)
    assert steps >= 5, output
