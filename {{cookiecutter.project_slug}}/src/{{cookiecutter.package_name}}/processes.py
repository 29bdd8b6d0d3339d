"""Child processes that stop with the command that started them.

`retrain` runs `dvc repro`, which runs this project's stage commands through `/bin/sh`. Stopping
`retrain` (Ctrl-C, SIGTERM, or even SIGKILL) must stop all of them: a pipeline left running
promoted a new champion minutes later with nobody watching. The pipeline runs in its own process
group under a small supervisor (`supervise`, this module run with `-m`). A signal `retrain`
catches stops the group as a whole. A SIGKILL nobody can catch reaches the supervisor as its
parent-death signal (Linux), and the supervisor stops the group: the shell dvc puts between
itself and a stage would otherwise keep that stage running (a parent-death signal only follows
the direct parent, and the shell outlives dvc).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess  # runs the project's own pipeline  # nosec B404
import sys
import time
from collections.abc import Sequence
from types import FrameType

from .errors import StoppedError

_PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 30


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _reap(process: subprocess.Popen[bytes], group: int, stopped_at: list[float]) -> int:
    """Wait for `process`; once a stop began (`stopped_at`), SIGKILL `group` after STOP_GRACE_S."""
    while True:
        try:
            return process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if stopped_at and time.monotonic() - stopped_at[0] > STOP_GRACE_S:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)


def _wait(process: subprocess.Popen[bytes], what: str) -> int:
    """Wait for `process`; a SIGINT or SIGTERM meanwhile stops its whole group, then raises."""
    signals: list[int] = []
    stopped_at: list[float] = []

    def stop(signum: int, _: FrameType | None) -> None:
        # Only signal here: waiting inside a handler would re-enter the wait it interrupted.
        signals.append(signum)
        stopped_at.append(time.monotonic())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = _reap(process, process.pid, stopped_at)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if signals:
        name = signal.Signals(signals[0]).name
        raise StoppedError(f"stopped by {name}; {what} was stopped too")
    return code


def run_as_group(command: Sequence[str], env: dict[str, str], what: str) -> int:
    """Run `command` in its own process group, under `supervise`, and wait for its exit code.

    SIGINT or SIGTERM here stop the whole group (then `StoppedError`); if this process is killed
    outright, the kernel signals the supervisor, which stops the whole group.
    """
    supervisor = [sys.executable, "-m", __name__, str(os.getpid()), *command]
    process = subprocess.Popen(  # noqa: S603 - the project's own pipeline  # nosec B603
        supervisor,
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - single-threaded here; prctl only
    )
    return _wait(process, what)


def supervise(parent: int, command: Sequence[str]) -> int:
    """Run `command` in this process group; its exit code, or 143 once stopped.

    A SIGTERM or SIGINT (the parent-death signal among them) stops the whole group: SIGTERM,
    then SIGKILL after STOP_GRACE_S.
    """
    stopped: list[float] = []

    def stop(signum: int, _: FrameType | None) -> None:
        del signum
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)  # the group's signal reaches this process too
        stopped.append(time.monotonic())
        os.killpg(0, signal.SIGTERM)

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, stop)
    # The parent-death signal was armed before this program started: if the parent is already
    # gone, it died before the signal could follow it.
    if os.getppid() != parent:
        return 128 + signal.SIGTERM
    child = subprocess.Popen(list(command))  # noqa: S603 - the project's own pipeline  # nosec B603
    code = _reap(child, 0, stopped)  # group 0: this process's own
    return 128 + signal.SIGTERM if stopped else code


if __name__ == "__main__":
    sys.exit(supervise(int(sys.argv[1]), sys.argv[2:]))
