"""Which uploads are images: those Pillow decodes, kept only as Pillow re-encodes them.

A file can be a valid image and an HTML page at once (a polyglot: a GIF with a script in
a comment block, or HTML after the image data). Checking first bytes, or even decoding,
keeps such a file whole. Re-encoding from the decoded pixels drops comments, metadata
(EXIF, and its GPS position, XMP, ICC profiles, text chunks) and trailing bytes, so the
stored file is only what the pixels need. Serving headers (nosniff, a sandboxing CSP, the
stored image type) are what stop a browser from running a file; this keeps the obvious
payloads out of storage too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, ImageSequence

# Pillow format: (file extension, media type). Only these decoders ever see an upload.
FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
}
MEDIA_TYPES = dict(FORMATS.values())
# Pixels decoded per upload, over all frames: a few MB of PNG or GIF can claim gigapixels.
# 40 MP holds any phone photo and bounds memory to about 160 MB (RGBA).
MAX_PIXELS = 40_000_000
MAX_FRAMES = 1_000
# What a frame keeps of its metadata: how it shows, nothing that carries free text.
KEPT_INFO = ("transparency", "duration", "loop", "background")
SAVE_OPTIONS: dict[str, dict[str, Any]] = {"JPEG": {"quality": 90}, "WEBP": {"quality": 90}}


class NotAnImage(ValueError):
    """The upload is not a PNG, JPEG, GIF or WebP image that decodes."""


class TooManyPixels(NotAnImage):
    """The upload decodes to more pixels than MAX_PIXELS (a decompression bomb)."""


@dataclass(frozen=True)
class CleanImage:
    content: bytes
    extension: str
    media_type: str


def clean_image(content: bytes) -> CleanImage:
    """The upload re-encoded by Pillow in its own format; NotAnImage if it does not decode."""
    try:
        image_format = _verified_format(content)
        with Image.open(BytesIO(content), formats=[image_format]) as image:
            encoded = _encode(list(_bare_frames(image)), image_format)
    except NotAnImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels(str(exc)) from exc
    except Exception as exc:  # a decoder fails in many ways on hostile input: all mean "no"
        raise NotAnImage(str(exc)) from exc
    extension, media_type = FORMATS[image_format]
    return CleanImage(encoded, extension, media_type)


def _verified_format(content: bytes) -> str:
    """The format of a file whose structure Pillow checked, before any pixel is decoded."""
    with Image.open(BytesIO(content), formats=list(FORMATS)) as probe:
        _check_pixels(probe.width * probe.height)
        image_format = str(probe.format)  # one of FORMATS: no other decoder was tried
        probe.verify()
    return image_format


def _check_pixels(pixels: int) -> None:
    if pixels > MAX_PIXELS:
        raise TooManyPixels(f"{pixels} pixels, more than {MAX_PIXELS}")


def _bare_frames(image: Image.Image) -> Iterator[Image.Image]:
    """Each frame decoded, upright (EXIF orientation applied), with no free-text metadata."""
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index >= MAX_FRAMES:
            raise TooManyPixels(f"more than {MAX_FRAMES} frames")
        _check_pixels((index + 1) * image.width * image.height)
        bare = _upright(frame)
        bare.info = {key: frame.info[key] for key in KEPT_INFO if key in frame.info}
        yield bare


def _upright(frame: Image.Image) -> Image.Image:
    """A decoded copy of the frame, turned as its EXIF orientation says (EXIF is dropped)."""
    try:
        return ImageOps.exif_transpose(frame)
    except Exception:  # unreadable EXIF: the pixels are still an image, shown as stored
        return frame.copy()


def _encode(frames: list[Image.Image], image_format: str) -> bytes:
    first, *rest = frames
    options = dict(SAVE_OPTIONS.get(image_format, {}))
    if rest:  # an animation keeps its timing, given explicitly: not every encoder reads info
        options.update(save_all=True, append_images=rest,
                       duration=[frame.info.get("duration", 0) for frame in frames])
        if "loop" in first.info:
            options["loop"] = first.info["loop"]
    out = BytesIO()
    first.save(out, format=image_format, **options)
    return out.getvalue()


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


def stored_media_type(name: str) -> str | None:
    """The image type a stored file is served as, from the name this service gave it."""
    if STORED_NAME.fullmatch(name) is None:
        return None
    return MEDIA_TYPES[name.rsplit(".", 1)[1]]
