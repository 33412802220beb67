"""Processes the tests start, each in a session (process group) of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import psutil


def stop_group(process: subprocess.Popen, grace: float = 30) -> None:
    """Stop the process and all it started: SIGTERM to its group, then SIGKILL to the group
    if anything of it is left after `grace` seconds (children may outlive their leader)."""
    deadline = time.monotonic() + grace
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    left = psutil.wait_procs(group(process.pid), timeout=max(deadline - time.monotonic(), 0))[1]
    if process.returncode is None or left:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(10)


def group(pgid: int) -> list[psutil.Process]:
    """The living (not zombie) processes of process group `pgid`."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):  # gone meanwhile
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def marked(name: str, value: str, grace: float = 5) -> list[psutil.Process]:
    """The processes other than this one whose environment holds `name=value` (inherited
    from this one) and that are still running after `grace` seconds."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):  # gone, a zombie, or not ours to read
            if process.environ().get(name) == value:
                found.append(process)
    return psutil.wait_procs(found, timeout=grace)[1] if found else []


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid}: {' '.join(process.cmdline()) or process.name()}"
    except psutil.Error:
        return f"{process.pid}: (gone)"


def kill(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=10)
