"""Headless Chromium on pages the gateway serves, offline, for the tests that need a real
browser (Swagger UI, a saga's timeline)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium")


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app on a free local port, in a thread: its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def chromium(url: str, *args: str, profile: Path | None = None) -> tuple[str, set[str]]:
    """Headless Chromium on `url`, offline (every host but 127.0.0.1 fails to resolve).

    Returns what it printed and every URL the page requested, from the network log
    (leaving out the browser's own calls home, which have no initiating origin). One
    `profile` across calls keeps the browser's cookies, as a person's browser would.
    """
    with tempfile.TemporaryDirectory(prefix="chromium-") as scratch:
        net_log = Path(scratch) / "net-log.json"
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--disable-extensions",
                   "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                   f"--log-net-log={net_log}", f"--user-data-dir={profile or scratch}",
                   "--virtual-time-budget=10000", *args, url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        log = json.loads(net_log.read_text())
    failed = [line for line in done.stderr.splitlines() if "load failed" in line]
    assert done.returncode == 0 and not failed, done.stderr[-3000:]
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requested = {params["url"] for event in log["events"] if event["type"] == start
                 if "url" in (params := event.get("params", {}))
                 and params.get("initiator") != "not an origin"}
    return done.stdout, requested
