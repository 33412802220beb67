"""Uploads are recognised as images by their first bytes only."""

from __future__ import annotations

import pytest

from models.photo.images import image_kind, new_file_name, stored_file

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
GIF87 = b"GIF87a" + b"\x00" * 24
GIF89 = b"GIF89a" + b"\x00" * 24
WEBP = b"RIFF" + (1234).to_bytes(4, "little") + b"WEBPVP8 " + b"\x00" * 16


@pytest.mark.parametrize(("content", "kind"), [
    (PNG, ("png", "image/png")),
    (JPEG, ("jpg", "image/jpeg")),
    (GIF87, ("gif", "image/gif")),
    (GIF89, ("gif", "image/gif")),
    (WEBP, ("webp", "image/webp")),
])
def test_each_supported_image_format_is_recognised_by_its_signature(content, kind):
    assert image_kind(content) == kind


@pytest.mark.parametrize("content", [
    b"",
    b"hello, world",
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    b"%PDF-1.7\n",
    b"\x89PNG",  # a truncated PNG signature
    b"\xff\xd8",  # a truncated JPEG signature
    b"GIF88a" + b"\x00" * 10,
    b"RIFF",
    b"RIFF\x00\x00\x00\x00WAVEfmt ",  # a RIFF file that is audio, not WebP
    b"xx" + PNG,  # the signature must come first
])
def test_anything_else_is_not_an_image(content):
    assert image_kind(content) is None


def test_a_stored_file_is_only_ever_one_the_service_named_inside_the_upload_folder(tmp_path):
    name = new_file_name("png")
    assert stored_file(tmp_path, name) == tmp_path / name
    for smuggled in ("/etc/passwd", "../../etc/passwd", "x.png", f"../{name}",
                     f"{name}/../../secret", name.upper(), f"{name[:-3]}html", None):
        assert stored_file(tmp_path, smuggled) is None, smuggled
