"""The flask-smorest Api and Blueprint the gateway uses, with one JSON shape for errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask_smorest
from flask import Flask
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.exceptions import HTTPException, default_exceptions


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
