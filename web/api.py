"""The flask-smorest Api and Blueprint the gateway uses, with one JSON shape for errors."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import flask_smorest
from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import abort
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.exceptions import HTTPException, default_exceptions
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import BaseConverter

from models.db import INT64_MAX


class Api(flask_smorest.Api):
    """Every error is `{code, status, message[, errors]}`, never an HTML page."""

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        payload.setdefault("message", error.description)
        # What `abort(..., extra={...})` adds, such as the saga a failure belongs to.
        payload.update((getattr(error, "data", None) or {}).get("extra", {}))
        # Keep what the exception itself says, such as a 405's `Allow`.
        own = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return payload, code, {**own, **(headers or {})}


MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 20  # room for every int64, so a larger one is a field error, not this
MAX_FLOAT_CHARS = 40
TOO_DEEP = f"Request body is nested too deeply: at most {MAX_JSON_DEPTH} levels"
TOO_LARGE = f"A number in the request body is too large: at most {MAX_INT_DIGITS} digits"
NOT_JSON = "NaN and Infinity are not JSON numbers"
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


class UnsafeJSON(json.JSONDecodeError):
    """JSON the API will not take: deeper, or with a larger number, than any request needs.
    A JSONDecodeError, so that webargs answers it as a 400 like any other bad body."""


class _Refused(ValueError):
    """Raised by a parse hook, inside json.loads, where the document is not at hand."""


def _bounded_int(text: str) -> int:
    # Python refuses to convert 4,301 digits with a ValueError json.loads passes on.
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(TOO_LARGE)
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_FLOAT_CHARS:
        raise _Refused(TOO_LARGE)
    value = float(text)
    if not math.isfinite(value):  # such as 1e999
        raise _Refused(TOO_LARGE)
    return value


def _no_constant(text: str) -> Any:
    raise _Refused(NOT_JSON)


def _within_depth(text: str, limit: int) -> bool:
    """Whether valid JSON nests at most `limit` levels: each pass removes the innermost
    brackets, all in C, so a large body costs a few scans, not a Python walk."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):
        if not brackets:
            return True
        brackets = _INNERMOST.sub("", brackets)
    return not brackets


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing bodies that would cost a 500: nesting deep enough to exhaust
    the recursion limit, and integers longer than Python converts."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        text = s if isinstance(s, str) else s.decode(json.detect_encoding(s), "surrogatepass")
        try:
            data = json.loads(text, parse_int=_bounded_int, parse_float=_bounded_float,
                              parse_constant=_no_constant, **kwargs)
        except RecursionError:
            raise UnsafeJSON(TOO_DEEP, text, 0) from None
        except _Refused as refused:
            raise UnsafeJSON(str(refused), text, 0) from None
        if not _within_depth(text, MAX_JSON_DEPTH):
            raise UnsafeJSON(TOO_DEEP, text, 0)
        return data


class Parser(FlaskParser):
    """Reads JSON bodies with the app's bounded JSON, and adds a `multipart` location: a
    form's fields and files read as one schema."""

    __location_map__ = {**FlaskParser.__location_map__, "multipart": "load_multipart"}

    def _raw_load_json(self, req):
        # webargs would call json.loads itself, around the app's bounds.
        if not is_json_request(req):
            return core.missing
        return current_app.json.loads(req.get_data(cache=True))

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        if isinstance(error, UnsafeJSON):
            abort(400, exc=error, message=error.msg, errors={"json": [error.msg]})
        super()._handle_invalid_json_error(error, req, *args, **kwargs)

    def load_multipart(self, req, schema):
        return MultiDictProxy(CombinedMultiDict([req.files, req.form]), schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
    }


def error_response(start_response: Callable[..., Any], code: int, message: str,
                   headers: Sequence[tuple[str, str]] = ()) -> list[bytes]:
    """An error in the API's JSON shape, from a WSGI app mounted beside the Flask app."""
    status = HTTP_STATUS_CODES[code]
    body = json.dumps({"code": code, "status": status, "message": message}).encode()
    start_response(f"{code} {status.upper()}", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers])
    return [body]


def error_maps(app: Flask, api: Api, mapping: dict[type[Exception], int]) -> None:
    """Answer each domain error with its HTTP status and the error's own words."""

    def handler_for(status: int) -> Callable[[Exception], Any]:
        def handle(exc: Exception):
            return api.handle_http_exception(default_exceptions[status](str(exc)))

        return handle

    for exc_type, status in mapping.items():
        app.register_error_handler(exc_type, handler_for(status))


class InvalidId(str):
    """A path segment, where an id belongs, that is not one."""


class IdConverter(BaseConverter):
    """A path id (`<id:pet_id>`). Any segment matches, so that one that is not an id is
    the spec's 400 "Invalid ID supplied", not a 404 for a URL that seems not to exist."""

    part_isolating = True

    def to_python(self, value: str) -> int | InvalidId:
        if value.isascii() and value.isdigit() and 0 < int(value) <= INT64_MAX:
            return int(value)
        return InvalidId(value)


def _refuse_invalid_ids() -> None:
    for name, value in (request.view_args or {}).items():
        if isinstance(value, InvalidId):
            abort(400, message=f"{value!r} is not a valid {name.replace('_', ' ')}: ids are "
                               f"whole numbers from 1 to {INT64_MAX}")


def use_path_ids(app: Flask, api: Api) -> None:
    """`<id:...>` in routes, documented as the spec's int64 ids; before any blueprint."""
    app.url_map.converters["id"] = IdConverter
    api.register_converter(IdConverter, lambda _: {"type": "integer", "format": "int64",
                                                   "minimum": 1})
    app.before_request(_refuse_invalid_ids)
