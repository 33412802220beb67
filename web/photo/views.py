"""Uploaded images, served from the upload folder."""

from __future__ import annotations

from flask import current_app, send_from_directory
from flask_smorest import abort

from models.photo import stored_media_type
from web.api import Blueprint

blp = Blueprint("photo", __name__, url_prefix="/images", description="Uploaded pet images")
# The gateway's fixed mount point (web.API_ROOT) and this blueprint's prefix. Not from
# url_for: gunicorn takes SCRIPT_NAME from a request header under `--header-map dangerous`.
IMAGES_PATH = "/v2/images/"
# Whatever a stored file holds, a browser renders it as an image or not at all: it never
# sniffs another type, and a document made of it runs nothing and loads nothing.
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def image_url(name: str) -> str:
    """A stored image's URL on the configured public URL, never on the request's Host."""
    return f"{current_app.config['PUBLIC_URL']}{IMAGES_PATH}{name}"


@blp.route("/<string(maxlength=40):name>")
@blp.response(200, content_type="image/*")
@blp.alt_response(404, response="NOT_FOUND")
def image(name: str):
    """An uploaded image"""
    media_type = stored_media_type(name)
    if media_type is None:  # not a name the service makes: nothing stored under it
        abort(404)
    response = send_from_directory(current_app.config["UPLOAD_DIR"], name,
                                   mimetype=media_type)
    response.headers.update(IMAGE_HEADERS)
    response.headers["Content-Disposition"] = f'inline; filename="{name}"'
    return response
