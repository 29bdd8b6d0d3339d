"""A pipeline started by a command stops with it, however the command is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The chain `retrain` starts: itself -> dvc (not ours) -> /bin/sh -> a stage command (this
# project's CLI). The shell matters: it outlives dvc, so a stage's parent-death signal never fires.
DRIVER = """
import os, sys
from {{ cookiecutter.package_name }}.processes import run_as_group
middle = [sys.executable, sys.argv[1], sys.argv[2], sys.argv[3]]
run_as_group(middle, dict(os.environ), "the test pipeline")
"""
MIDDLE = """
import shlex, subprocess, sys
# Like dvc: the stage through a shell; `; exit` keeps the shell from exec-ing the stage.
stage = shlex.join([sys.executable, sys.argv[1], sys.argv[2]])
subprocess.run(stage + "; exit $?", shell=True)
"""
LEAF = """
import os, sys, time
with open(sys.argv[1], "w") as out:
    out.write(str(os.getpid()))
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has finished; only its exit status is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
@pytest.mark.parametrize("stop_with", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_stopping_the_command_stops_the_whole_pipeline(
    tmp_path: Path, stop_with: signal.Signals
) -> None:
    scripts = {}
    for name, code in {"driver": DRIVER, "middle": MIDDLE, "leaf": LEAF}.items():
        scripts[name] = tmp_path / f"{name}.py"
        scripts[name].write_text(code)
    pid_file = tmp_path / "leaf.pid"
    driver = subprocess.Popen(
        [sys.executable, scripts["driver"], scripts["middle"], scripts["leaf"], pid_file],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the pipeline never started"
        time.sleep(0.05)
    leaf = int(pid_file.read_text())
    driver.send_signal(stop_with)
    _, stderr = driver.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _alive(leaf):
        if time.monotonic() > deadline:
            os.kill(leaf, signal.SIGKILL)
            pytest.fail(f"the pipeline's stage kept running after {stop_with.name}")
        time.sleep(0.05)
    if stop_with != signal.SIGKILL:
        assert f"stopped by {stop_with.name}; the test pipeline was stopped too" in stderr
