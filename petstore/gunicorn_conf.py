"""gunicorn's settings for the API, one file for `make run` (the Procfile) and
docker-compose.yml: `gunicorn -c python:petstore.gunicorn_conf "web:create_app()"`.

Command-line options still win, such as a test's `--bind` and `--workers`.
"""

import os
import sys

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gevent, so a request waiting for its saga holds no worker; refusals answered as JSON.
worker_class = "petstore.serving.JSONErrorWorker"
# The spec's `api_key` header has an underscore, which gunicorn drops by default.
header_map = "dangerous"
accesslog = "-"
# The login sends its password in the query string: the logs must not keep it.
logger_class = "petstore.serving.RedactingLogger"
# A request line as long as gunicorn allows (room for long tag lists), and gunicorn's
# default header limits, so no request holds a worker for long or floods the log.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# No shared control socket in ~/.gunicorn: two checkouts' APIs on one host would fight over it.
control_socket_disable = True


def on_starting(server: object) -> None:
    """The API does not serve on settings that would lose or repeat work."""
    from workers import app
    from workers.guardrails import UnsafeSettings, refuse_unsafe

    try:
        refuse_unsafe(app)
    except UnsafeSettings as exc:
        sys.exit(f"Error: {exc.message}")
