"""Swagger UI's static files, served by the gateway itself.

flask-smorest renders the /docs page but loads swagger-ui's script and stylesheet from
OPENAPI_SWAGGER_UI_URL. Pointing that at a CDN leaves /docs blank on a machine without
internet, so the files come from the installed `flask-swagger-ui` package (only its
`dist/` folder is used, not its blueprint: flask-smorest keeps rendering the page) and
no request made by the docs page leaves the machine.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from flask import Blueprint, send_from_directory
from flask.typing import ResponseReturnValue

DIST_DIR = str(files("flask_swagger_ui") / "dist")
STATIC_PATH = "/docs/swagger-ui"
# Relative to the page (/v2/docs, OPENAPI_SWAGGER_UI_PATH), so it holds under any mount
# point or reverse-proxy prefix; flask-smorest appends the file names to it.
SWAGGER_UI_URL = "docs/swagger-ui/"
# No online validator badge (validator.swagger.io); nothing else in the page calls out.
SWAGGER_UI_CONFIG: dict[str, Any] = {"validatorUrl": None}

blp = Blueprint("swagger_ui_static", __name__)


@blp.get(f"{STATIC_PATH}/<path:filename>")
def static_file(filename: str) -> ResponseReturnValue:
    return send_from_directory(DIST_DIR, filename)
