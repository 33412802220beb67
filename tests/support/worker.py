"""A real Celery worker (with beat) in a subprocess, consuming every service queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workers.celery_app import QUEUES, app


class WorkerProcess:
    def __init__(self, log_path: Path, name: str = "test", *, beat: bool = True,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.name = f"{name}-{os.getpid()}@localhost"
        self.beat = beat
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        schedule = self.log_path.with_suffix(".schedule")
        command = [sys.executable, "-m", "celery", "-A", "workers", "worker",
                   *(["--beat", "--schedule", str(schedule)] if self.beat else []),
                   "--queues", ",".join(QUEUES),
                   "--hostname", self.name, "--concurrency", "2", "--loglevel", "INFO",
                   "--without-mingle", "--without-gossip"]
        self._log = self.log_path.open("ab")
        # Its own process group, so a test can kill the worker with all its children.
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log_path.read_text()[-3000:]}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return self
        raise RuntimeError(f"worker not ready:\n{self.log_path.read_text()[-3000:]}")

    def idle(self) -> bool:
        """Nothing queued, reserved or running: every message sent so far is processed."""
        with app.connection_for_read() as connection:
            client = connection.default_channel.client
            if any(client.llen(queue) for queue in QUEUES):
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

    def stop(self) -> None:
        if self._log.closed:
            return
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:  # the whole group: no pool child is orphaned
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
