"""Which uploads are images: recognised by their first bytes, never by their name."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": ("png", "image/png"),
    b"\xff\xd8\xff": ("jpg", "image/jpeg"),
    b"GIF87a": ("gif", "image/gif"),
    b"GIF89a": ("gif", "image/gif"),
}


def image_kind(content: bytes) -> tuple[str, str] | None:
    """(file extension, media type) of a PNG, JPEG, GIF or WebP image; None otherwise."""
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "webp", "image/webp"
    for signature, kind in SIGNATURES.items():
        if content.startswith(signature):
            return kind
    return None


# The only names an uploaded file is ever stored under: made here, never taken from a request.
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(png|jpg|gif|webp)")


def new_file_name(extension: str) -> str:
    return f"{uuid.uuid4().hex}.{extension}"


def stored_file(upload_dir: Path, name: str | None) -> Path | None:
    """The upload folder's file of this name, if it is a name this service makes; None for
    anything else, such as a path a message smuggled in, so no task touches a file
    outside the upload folder."""
    if name is None or STORED_NAME.fullmatch(name) is None:
        return None
    return upload_dir / name
