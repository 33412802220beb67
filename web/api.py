"""The flask-smorest Api and Blueprint the gateway uses, with one JSON shape for errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask_smorest
from flask import Flask, request
from flask_smorest import abort
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.exceptions import HTTPException, default_exceptions
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


class Parser(FlaskParser):
    """Adds a `multipart` location: a form's fields and files read as one schema."""

    __location_map__ = {**FlaskParser.__location_map__, "multipart": "load_multipart"}

    def load_multipart(self, req, schema):
        return MultiDictProxy(CombinedMultiDict([req.files, req.form]), schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
    }


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
