"""The API gateway: a Flask app factory with one flask-smorest blueprint per service."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.middleware.dispatcher import DispatcherMiddleware

# The Celery app, set up with its after-commit relay: a request's messages go out at commit.
import workers  # noqa: F401
from common import logs, tracing
from common.settings import get_settings
from web import docs, headers, metrics, pet, photo, saga, store, user
from web.api import Api, BoundedJSONProvider, error_maps, error_response, use_path_ids
from web.auth import SECURITY_SCHEMES
from web.errors import DOMAIN_ERRORS

API_ROOT = "/v2"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    settings = get_settings()
    app = Flask(__name__)
    app.json = BoundedJSONProvider(app)
    # No SECRET_KEY: the API keeps no Flask session (a login is a token), so no request
    # pays for opening a signed cookie.
    app.config.from_mapping(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        UPLOAD_DIR=settings.upload_dir,
        TOKEN_TTL_SECONDS=settings.token_ttl_seconds,
        LOGIN_ATTEMPTS_PER_HOUR=settings.login_attempts_per_hour,
        LOGIN_FAILURES_PER_ADDRESS=settings.login_failures_per_address,
        SIGNUPS_PER_HOUR=settings.signups_per_hour,
        MAX_OPEN_ORDERS=settings.max_open_orders,
        ORDER_HOLD_SECONDS=settings.order_hold_seconds,
        PUBLIC_URL=settings.public_url,
        METRICS_TOKEN=settings.metrics_token,
        ORDER_WAIT_SECONDS=settings.order_wait_seconds,
        API_TITLE="Petstore sagas",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=docs.SWAGGER_UI_URL,
        OPENAPI_SWAGGER_UI_CONFIG=docs.SWAGGER_UI_CONFIG,
    )
    app.config.update(config or {})
    _log_lines(app)
    if tracing.setup("petstore-api"):
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app)
    app.config["UPLOAD_DIR"].mkdir(parents=True, exist_ok=True)

    api = Api(app, spec_kwargs={
        "servers": [{"url": API_ROOT}],
        "components": {"securitySchemes": SECURITY_SCHEMES},
    })
    use_path_ids(app, api)
    for blueprint in (pet.blp, store.blp, user.blp, photo.blp, saga.blp):
        api.register_blueprint(blueprint)
    # flask-smorest sends X-Pagination as JSON: say so, rather than as a `simple` header.
    api.spec.components.headers["PAGINATION"] = {
        "description": "Pagination metadata",
        "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/PaginationMetadata"}}},
    }
    app.register_blueprint(docs.blp)
    error_maps(app, api, DOMAIN_ERRORS)
    app.register_error_handler(OperationalError, _database_unavailable(api))
    # Served under /v2, the spec's server URL, so the paths match petstore.yaml's.
    app.wsgi_app = DispatcherMiddleware(_outside, {
        API_ROOT: app.wsgi_app, "/metrics": metrics.wsgi_app(app.config["METRICS_TOKEN"])})
    headers.install(app)
    return app


def _database_unavailable(api: Api) -> Any:
    """PostgreSQL unreachable (restarting, failing over): 503, and nothing was accepted."""

    def handle(exc: OperationalError) -> Any:
        logging.getLogger(__name__).warning("database unavailable: %s", exc.orig)
        error = ServiceUnavailable("The database is unavailable; nothing was changed. "
                                   "Try again in a moment.")
        payload, code, headers = api.handle_http_exception(error)
        return payload, code, {**headers, "Retry-After": "2"}

    return handle


def _log_lines(app: Flask) -> None:
    """The gateway's own lines in logfmt, naming the saga a request started."""
    handler = logging.StreamHandler()
    logs.install(handler)
    for name in ("web", "sagas", "workers"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


def _outside(environ: dict[str, Any], start_response: Any) -> Any:
    """A JSON 404 for every URL outside the API root."""
    return error_response(start_response, 404, f"Nothing here: the API lives under {API_ROOT}")
