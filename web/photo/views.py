"""Uploaded images, served from the upload folder."""

from __future__ import annotations

from flask import current_app, send_from_directory

from web.api import Blueprint

blp = Blueprint("photo", __name__, url_prefix="/images", description="Uploaded pet images")


@blp.route("/<string(maxlength=40):name>")
@blp.response(200, content_type="image/*")
@blp.alt_response(404, response="NOT_FOUND")
def image(name: str):
    """An uploaded image"""
    return send_from_directory(current_app.config["UPLOAD_DIR"], name)
