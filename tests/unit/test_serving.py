"""How gunicorn serves the API (petstore/serving.py, petstore/gunicorn_conf.py) and the
bounds on JSON bodies (web/api.py), without a server."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import pytest
from flask import Flask
from gunicorn.config import Config
from gunicorn.http.errors import (
    ConfigurationProblem,
    InvalidHeaderName,
    InvalidRequestLine,
    InvalidResponseHeader,
    LimitRequestHeaders,
    LimitRequestLine,
    NoMoreData,
    UnsupportedTransferCoding,
)

from petstore.serving import RedactingLogger, error_answer, redact, refusal_status
from web.api import MAX_JSON_DEPTH, BoundedJSONProvider, UnsafeJSON


@pytest.mark.parametrize("text, expected", [
    ("username=a&password=s3cret", "username=a&password=[redacted]"),
    ("GET /v2/user/login?username=a&password=s3cret HTTP/1.1",
     "GET /v2/user/login?username=a&password=[redacted] HTTP/1.1"),
    ("PassWord=x&API_KEY=y&token=z&tokens=keep",
     "PassWord=[redacted]&API_KEY=[redacted]&token=[redacted]&tokens=keep"),
    # Encoded names and values with `;`, `'` or `=`: the whole value goes.
    ("pass%77ord=a;b'c=d&x=1", "pass%77ord=[redacted]&x=1"),
    ("request line: 'GET /x?password=s3cret\\x01 HTTP/1.1'",
     "request line: 'GET /x?password=[redacted] HTTP/1.1'"),
    ("/v2/pet/findByTags?tags=password", "/v2/pet/findByTags?tags=password"),
    ("/path/password=x?a=1", "/path/password=x?a=1"),  # a path, not a parameter
])
def test_redact(text, expected):
    assert redact(text) == expected


@pytest.fixture
def logger() -> RedactingLogger:
    return RedactingLogger(Config())


def test_access_atoms_hold_no_secret(logger):
    query = "username=a&password=s3cret"
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/v2/user/login?{query}",
               "PATH_INFO": "/v2/user/login", "QUERY_STRING": query,
               "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_REFERER": f"http://x/?{query}",
               "HTTP_API_KEY": "tok3n"}
    req = SimpleNamespace(headers=[("API_KEY", "tok3n"), ("AUTHORIZATION", "Bearer tok3n")])
    resp = SimpleNamespace(status="200 OK", headers=[], sent=2)
    atoms = logger.atoms(resp, req, environ, timedelta(0))
    assert atoms["r"] == "GET /v2/user/login?username=a&password=[redacted] HTTP/1.1"
    assert atoms["q"] == "username=a&password=[redacted]"
    assert atoms["f"] == "http://x/?username=a&password=[redacted]"
    assert atoms["{api_key}i"] == atoms["{authorization}i"] == "[redacted]"
    assert atoms["{http_api_key}e"] == "[redacted]"
    assert atoms["U"] == "/v2/user/login" and atoms["s"] == "200"
    assert not any("s3cret" in str(v) or "tok3n" in str(v) for v in atoms.values())


def test_the_error_log_holds_no_secret(logger):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.error_log.addHandler(handler)
    try:
        logger.warning("Error handling request %s %s", "GET", "/v2/user/login?password=s3cret")
    finally:
        logger.error_log.removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        "Error handling request GET /v2/user/login?password=[redacted]"]


@pytest.mark.parametrize("exc, status", [
    (LimitRequestLine(16384, 8190), 414),
    (LimitRequestHeaders("limit request headers fields"), 431),
    (InvalidRequestLine("GARBAGE"), 400),
    (InvalidHeaderName("Bad Header"), 400),
    (UnsupportedTransferCoding("gzip"), 501),
    (InvalidResponseHeader("X"), None),  # the application's fault: gunicorn's 500
    (ConfigurationProblem("x"), None),
    (NoMoreData(), None),
    (RuntimeError("boom"), None),
])
def test_refusal_status(exc, status):
    assert refusal_status(exc) == status


def test_error_answer_is_the_api_error_shape():
    head, _, body = error_answer(414, "too long").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 Request URI Too Long\r\n")
    assert b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"code": 414, "status": "Request URI Too Long",
                                "message": "too long"}


# gunicorn's master loads the configuration and its classes before any worker patches
# the standard library for gevent; psycopg picks how it waits when first imported.
MASTER = """
import runpy, sys
from gunicorn.config import Config
cfg = Config()
for name, value in runpy.run_module("petstore.gunicorn_conf").items():
    if name in cfg.settings:
        cfg.set(name, value)
print(cfg.worker_class.__mro__[1].__module__, cfg.logger_class.__name__, cfg.header_map,
      cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size)
print(sorted(name for name in ("web", "psycopg", "sqlalchemy", "flask") if name in sys.modules))
"""


def test_the_master_loads_the_configuration_without_the_app():
    out = subprocess.run([sys.executable, "-c", MASTER], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "gunicorn.workers.ggevent RedactingLogger dangerous 8190 100 8190"
    assert out[1] == "[]"


@pytest.fixture(scope="module")
def provider() -> BoundedJSONProvider:
    return BoundedJSONProvider(Flask(__name__))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_up_to_the_bound_is_parsed(provider):
    assert provider.loads(nested(MAX_JSON_DEPTH)) == json.loads(nested(MAX_JSON_DEPTH))
    with pytest.raises(UnsafeJSON, match="nested too deeply"):
        provider.loads(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(UnsafeJSON, match="nested too deeply"):
        provider.loads('{"a": ' * 50_000 + "1" + "}" * 50_000)


def test_brackets_in_strings_do_not_count(provider):
    text = json.dumps({"a": "[" * 100 + '\\"{' * 50, "b": ["]]]}"]})
    assert provider.loads(text) == json.loads(text)
    assert provider.loads(text.encode("utf-16")) == json.loads(text)


@pytest.mark.parametrize("number", ["1" * 21, "-" + "1" * 21, "9" * 4301, "1" * 41 + ".0",
                                    "1e400", "-1e400"])
def test_huge_numbers_are_refused(provider, number):
    with pytest.raises(UnsafeJSON, match="too large"):
        provider.loads(f'{{"n": {number}}}')


@pytest.mark.parametrize("number", ["1" * 20, "-" + "9" * 20, "1.5e300", "1e-400", "0.1"])
def test_ordinary_numbers_are_parsed(provider, number):
    assert provider.loads(f"[{number}]") == json.loads(f"[{number}]")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(provider, constant):
    with pytest.raises(UnsafeJSON, match="NaN and Infinity"):
        provider.loads(f"[{constant}]")


def test_an_empty_body_stays_an_empty_document(provider):
    # webargs reads an empty document as no body at all.
    with pytest.raises(json.JSONDecodeError) as raised:
        provider.loads(b"")
    assert raised.value.doc == "" and not isinstance(raised.value, UnsafeJSON)
