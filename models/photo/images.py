"""Which uploads are images: recognised by their first bytes, never by their name."""

from __future__ import annotations

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
