"""/v2/docs works without internet: headless Chromium renders the operations.

Swagger UI is served by the gateway from an installed package; a CDN would leave the page
blank offline. Chromium runs with every host name unresolvable, so the page can only
render from what the gateway itself serves, and its network log must show no request
from the page to any other host. Set SWAGGER_UI_SCREENSHOT=docs/swagger-ui.png
to also write the screenshot kept in docs/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class _References(HTMLParser):
    """Every URL a page's tags load (script src, link href, img src...)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.fixture(scope="module")
def base_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def chromium(url: str, *args: str) -> tuple[str, set[str]]:
    """Headless Chromium on `url`, offline (every host but 127.0.0.1 fails to resolve).

    Returns what it printed and every URL the page requested, from the network log
    (leaving out the browser's own calls home, which have no initiating origin).
    """
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        net_log = Path(profile) / "net-log.json"
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--disable-extensions",
                   "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                   f"--log-net-log={net_log}", f"--user-data-dir={profile}",
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


def test_docs_page_loads_only_local_files(base_url: str) -> None:
    page = f"{base_url}/v2/docs"
    with urllib.request.urlopen(page, timeout=5) as response:
        parser = _References()
        parser.feed(response.read().decode())
    assert {url.rsplit("/", 1)[-1] for url in parser.urls} >= {
        "swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"}
    for url in parser.urls:
        assert not urllib.parse.urlsplit(url).netloc, f"{url} leaves the machine"
        with urllib.request.urlopen(urllib.parse.urljoin(page, url), timeout=5) as response:
            assert response.status == 200, url


def test_chromium_renders_the_operations_offline(base_url: str) -> None:
    with urllib.request.urlopen(f"{base_url}/v2/openapi.json", timeout=5) as response:
        paths = json.load(response)["paths"]
    dom, requested = chromium(f"{base_url}/v2/docs", "--dump-dom")
    assert {f"{base_url}/v2/openapi.json", f"{base_url}/v2/docs/swagger-ui/swagger-ui-bundle.js",
            f"{base_url}/v2/docs/swagger-ui/swagger-ui.css"} <= requested
    assert {url for url in requested if not url.startswith(f"{base_url}/")} == set()
    assert 'class="title">Petstore sagas<' in dom, dom[-3000:]
    operations = sum(len(set(item) & METHODS) for item in paths.values())
    assert dom.count('class="opblock opblock-') == operations >= 20
    assert "/pet/findByStatus" in paths
    for path in paths:
        assert f'data-path="{path}"' in dom, path
    if screenshot := os.environ.get("SWAGGER_UI_SCREENSHOT"):
        chromium(f"{base_url}/v2/docs", f"--screenshot={Path(screenshot).resolve()}",
                 "--window-size=1280,1600", "--hide-scrollbars")
