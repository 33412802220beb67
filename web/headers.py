"""Security headers on every answer of the gateway, the API's and /metrics' alike.

An API answer is data, never a page: a browser must not sniff it into HTML, frame it, run
anything from it, or hand it to another site. A header a view set itself (an image's own
CSP, the docs page's) is kept.
"""

from __future__ import annotations

import re
from base64 import b64encode
from collections.abc import Callable, Iterable
from hashlib import sha256
from typing import Any

from flask import Flask, Response, request

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# Swagger UI's page (flask-smorest's template): its files come from the gateway
# (web/docs.py), its icons are data: URIs in its stylesheet, "Try it out" calls the API,
# and its one inline script (the page's config) is allowed by its hash, not by
# 'unsafe-inline', so no markup Swagger UI renders can run a script of its own.
DOCS_ENDPOINT = "api-docs.openapi_swagger_ui"
DOCS_POLICY = ("default-src 'none'; script-src 'self' {hashes}; style-src 'self'; "
               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'")
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def install(app: Flask) -> None:
    """Call last in the app factory: it wraps the WSGI app, mounted apps included."""
    app.after_request(_docs_policy)
    app.wsgi_app = with_headers(app.wsgi_app)


def with_headers(wsgi_app: WSGIApp) -> WSGIApp:
    """The WSGI app with API_HEADERS added to each answer that does not set them."""

    def respond(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            missing = [(n, v) for n, v in API_HEADERS.items() if n.lower() not in present]
            return start_response(status, [*headers, *missing], exc_info)

        return wsgi_app(environ, start)

    return respond


def _docs_policy(response: Response) -> Response:
    if request.endpoint == DOCS_ENDPOINT and response.status_code == 200:
        hashes = " ".join(f"'sha256-{b64encode(sha256(script).digest()).decode()}'"
                          for script in INLINE_SCRIPT.findall(response.get_data()))
        response.headers.setdefault("Content-Security-Policy", DOCS_POLICY.format(hashes=hashes))
    return response
