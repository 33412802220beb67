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
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask

from tests.support.browser import chromium, needs_chromium, served

pytestmark = needs_chromium
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
    with served(app) as url:
        yield url


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
