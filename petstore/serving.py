"""How gunicorn serves the API: the requests it refuses itself are answered in the API's
JSON error shape, and its logs never hold a password or a token.

This lives outside the `web` package on purpose: gunicorn's master process loads these
classes, and importing `web` there would import psycopg before the gevent worker patches
`select`, so psycopg would settle on a wait that blocks every greenlet.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidHeader,
    InvalidHeaderName,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.ggevent import GeventWorker
from werkzeug.http import HTTP_STATUS_CODES

REDACTED = "[redacted]"
SECRET_PARAMS = frozenset({"password", "api_key", "token", "access_token"})
SECRET_HEADERS = frozenset({"api_key", "authorization", "proxy-authorization", "cookie"})
# Where gunicorn's atoms hold those headers: as sent (`{api_key}i`) and in the environ.
SECRET_ATOMS = frozenset({f"{{{name}}}i" for name in SECRET_HEADERS}
                         | {f"{{http_{name.replace('-', '_')}}}e" for name in SECRET_HEADERS})
# `name=value` in a query string, a request line or a message quoting one. As in werkzeug's
# parsing, only `&` separates parameters, so a value runs to the next `&` or whitespace.
_PARAM = re.compile(r"(?P<name>[^\s?&=]+)=(?P<value>[^\s&]*)")

# gunicorn's own status for the refusals it names; any other request it cannot parse is
# a 400.
REFUSALS: dict[type[Exception], int] = {
    LimitRequestLine: 414,
    LimitRequestHeaders: 431,
    ExpectationFailed: 417,
    UnsupportedTransferCoding: 501,
    ForbiddenProxyRequest: 403,
}
# Parse errors that are the server's fault, not the client's: gunicorn's 500 stays.
SERVER_FAULTS = (ConfigurationProblem, InvalidResponseHeader, InvalidResponseHeaderName)


def redact(text: str) -> str:
    """`text` with the value of every secret parameter replaced by REDACTED."""
    return _PARAM.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    if unquote_plus(match["name"]).lower() in SECRET_PARAMS:
        return f"{match['name']}={REDACTED}"
    return match[0]


class _Redacting(logging.Filter):
    """Redacts a record's final message, so that no argument can carry a secret past it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


_REDACTING = _Redacting()


class RedactingLogger(Logger):
    """gunicorn's logger, with secrets taken out of the access and error logs: the spec's
    login sends the password in the query string."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # Such as "Error handling request GET /v2/user/login?...": the same filter
        # object, so a reload's setup adds nothing.
        self.error_log.addFilter(_REDACTING)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any],
              request_time: timedelta) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: _redacted_atom(key, value) for key, value in atoms.items()}


def _redacted_atom(key: str, value: Any) -> Any:
    if key in SECRET_ATOMS:
        return REDACTED
    return redact(value) if isinstance(value, str) else value


def refusal_status(exc: BaseException) -> int | None:
    """The status for a request gunicorn could not take, None for the server's faults."""
    if not isinstance(exc, ParseException) or isinstance(exc, SERVER_FAULTS):
        return None
    return next((status for kind, status in REFUSALS.items() if isinstance(exc, kind)), 400)


def error_answer(status: int, message: str) -> bytes:
    """A complete HTTP answer with the body every API error has."""
    reason = HTTP_STATUS_CODES[status]
    body = json.dumps({"code": status, "status": reason, "message": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class JSONErrorWorker(GeventWorker):
    """gunicorn's gevent worker, refusing what it cannot parse with a JSON error, not an
    HTML page."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status = refusal_status(exc)
        if status is None:
            super().handle_error(req, client, addr, exc)
            return
        addr = addr or ("", -1)  # a unix socket
        self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
        answer = error_answer(status, self.refusal_message(status, exc))
        # Requests whose headers were read are logged as gunicorn does.
        if req is None and isinstance(exc, InvalidHeader | InvalidHeaderName):
            req = getattr(exc, "req", None)
        if req is not None:
            self.log_refusal(req, client, addr, status, len(answer))
        try:
            util.write_nonblock(client, answer)
        except Exception:
            self.log.debug("Failed to send error message.")

    def refusal_message(self, status: int, exc: BaseException) -> str:
        if status == 414:
            return (f"The request line is longer than {self.cfg.limit_request_line} bytes: "
                    f"send fewer or shorter query parameters.")
        if status == 431:
            return (f"Too many or too large header fields: at most "
                    f"{self.cfg.limit_request_fields} fields of "
                    f"{self.cfg.limit_request_field_size} bytes each.")
        return str(exc)

    def log_refusal(self, req: Any, client: Any, addr: tuple[str, int], status: int,
                    length: int) -> None:
        environ = default_environ(req, client, self.cfg)
        environ.update(REMOTE_ADDR=addr[0], REMOTE_PORT=str(addr[1]))
        resp = Response(req, client, self.cfg)
        resp.status = f"{status} {HTTP_STATUS_CODES[status]}"
        resp.response_length = length
        self.log.access(resp, req, environ, timedelta(0))
