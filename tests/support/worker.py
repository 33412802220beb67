"""A real Celery worker (with beat) in a subprocess, consuming every service queue."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.processes import stop_group
from workers.celery_app import QUEUES, app, messages_waiting


class WorkerProcess:
    def __init__(self, log_path: Path, name: str = "test", *, beat: bool = True,
                 env: dict[str, str] | None = None, app_module: str = "workers") -> None:
        """`app_module`: the module `celery -A` loads, the project's `workers` unless a
        test runs other code (tests/support/deployed.py: a deploy's)."""
        self.log_path = log_path
        self.app_module = app_module
        self.name = f"{name}-{os.getpid()}@localhost"
        self.beat = beat
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        schedule = self.log_path.with_suffix(".schedule")
        command = [sys.executable, "-m", "celery", "-A", self.app_module, "worker",
                   *(["--beat", "--schedule", str(schedule)] if self.beat else []),
                   "--queues", ",".join(QUEUES),
                   "--hostname", self.name, "--concurrency", "2", "--loglevel", "INFO",
                   "--without-mingle", "--without-gossip"]
        self._log = self.log_path.open("ab")
        # A temporary folder of its own: what a killed worker leaves there goes with it, and
        # what a stopped one leaves stays in the run's for its leftover check to see.
        self._temp = Path(tempfile.mkdtemp(prefix="worker-"))
        # Its own process group, so a test can kill the worker with all its children.
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**self.env, "TMPDIR": str(self._temp)},
                                        start_new_session=True)
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()  # its whole group: nothing of a failed start outlives the test
            raise
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self._log_tail()}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise RuntimeError(f"worker not ready:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def idle(self) -> bool:
        """Nothing queued, reserved or running: every message sent so far is processed."""
        if any(messages_waiting(queue) for queue in QUEUES):
            return False
        inspect = app.control.inspect(destination=[self.name], timeout=1)
        busy = [*(inspect.active() or {}).get(self.name, [None]),
                *(inspect.reserved() or {}).get(self.name, [None])]
        return not busy

    def kill(self) -> None:
        """SIGKILL the worker and every child, as a lost machine would end them."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()
        shutil.rmtree(self._temp, ignore_errors=True)  # its temporary files, lost with it

    def stop(self, grace: float = 20) -> None:
        """Stop the worker with its whole group (pool children and beat), at once."""
        if self._log.closed:
            return
        if self.process:
            stop_group(self.process, grace)
        self._log.close()
        with contextlib.suppress(OSError):  # not empty: left for the leftover check
            self._temp.rmdir()
