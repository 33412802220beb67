"""Uploads are kept only as images Pillow decodes, re-encoded from their pixels."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image

from models.photo.images import (
    MAX_FRAMES,
    MAX_PIXELS,
    NotAnImage,
    TooManyPixels,
    clean_image,
    new_file_name,
    stored_file,
    stored_media_type,
)

HTML = b"<html><script>alert(1)</script></html>"


def encoded(frames: list[Image.Image], image_format: str, **options) -> bytes:
    out = BytesIO()
    if len(frames) > 1:
        options.update(save_all=True, append_images=frames[1:])
    frames[0].save(out, format=image_format, **options)
    return out.getvalue()


def solid(color: tuple[int, ...], size: tuple[int, int] = (8, 6), mode: str = "RGB"):
    return Image.new(mode, size, color)


@pytest.mark.parametrize(("image_format", "mode", "kind"), [
    ("PNG", "RGBA", ("png", "image/png")),
    ("JPEG", "RGB", ("jpg", "image/jpeg")),
    ("GIF", "RGB", ("gif", "image/gif")),
    ("WEBP", "RGB", ("webp", "image/webp")),
])
def test_each_supported_format_is_kept_in_its_own_format(image_format, mode, kind):
    content = encoded([solid((200, 100, 0, 255)[:len(mode)], mode=mode)], image_format)
    clean = clean_image(content)
    assert (clean.extension, clean.media_type) == kind
    with Image.open(BytesIO(clean.content)) as image:
        assert (image.format, image.size) == (image_format, (8, 6))
        assert image.convert("RGB").getpixel((3, 3)) == pytest.approx((200, 100, 0), abs=8)


@pytest.mark.parametrize(("image_format", "options"), [
    ("GIF", {"comment": HTML}),  # a comment extension block
    ("JPEG", {"comment": HTML}),  # a COM segment
    ("JPEG", {"exif": b"Exif\x00\x00" + HTML}),
    ("PNG", {"exif": b"Exif\x00\x00" + HTML}),
    ("WEBP", {"xmp": HTML, "exif": b"Exif\x00\x00" + HTML}),
])
def test_a_polyglot_keeps_its_pixels_and_loses_its_payload(image_format, options):
    content = encoded([solid((0, 128, 255))], image_format, **options) + HTML
    assert content.count(b"<script") >= 2  # in the image and after it
    clean = clean_image(content)
    assert b"<script" not in clean.content
    with Image.open(BytesIO(clean.content)) as image:
        assert image.convert("RGB").getpixel((0, 0)) == pytest.approx((0, 128, 255), abs=8)


def test_a_png_text_chunk_is_dropped():
    from PIL.PngImagePlugin import PngInfo

    text = PngInfo()
    text.add_text("Comment", HTML.decode())
    clean = clean_image(encoded([solid((1, 2, 3))], "PNG", pnginfo=text))
    assert b"<script" not in clean.content


@pytest.mark.parametrize("image_format", ["GIF", "WEBP"])
def test_an_animation_keeps_its_frames_timing_and_loop(image_format):
    frames = [solid((80 * i, 0, 0)) for i in range(3)]
    content = encoded(frames, image_format, duration=[100, 200, 300], loop=3, comment=HTML)
    clean = clean_image(content)
    assert b"<script" not in clean.content
    with Image.open(BytesIO(clean.content)) as image:
        assert image.n_frames == 3
        assert image.info["loop"] == 3
        durations = []
        for index in range(3):
            image.seek(index)
            image.load()
            durations.append(image.info["duration"])
        assert durations == [100, 200, 300]


def test_a_photo_is_turned_upright_as_its_exif_orientation_says():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    content = encoded([solid((9, 9, 9), size=(40, 20))], "JPEG", exif=exif.tobytes())
    with Image.open(BytesIO(clean_image(content).content)) as image:
        assert image.size == (20, 40)
        assert not image.getexif()


def test_palette_transparency_is_kept():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0])
    clean = clean_image(encoded([image], "PNG", transparency=0))
    with Image.open(BytesIO(clean.content)) as decoded:
        assert decoded.convert("RGBA").getpixel((0, 0))[3] == 0


@pytest.mark.parametrize("content", [
    b"",
    b"hello, world",
    HTML,
    b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
    b"%PDF-1.7\n",
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # a PNG signature and nothing of a PNG
    b"\xff\xd8\xff\xe0" + b"\x00" * 64,
    b"GIF89a" + b"\x00" * 64,
    b"RIFF" + (1234).to_bytes(4, "little") + b"WEBPVP8 " + b"\x00" * 16,
    b"RIFF\x00\x00\x00\x00WAVEfmt ",  # a RIFF file that is audio, not WebP
    b"GIF89a" + HTML,
], ids=["empty", "text", "html", "svg", "pdf", "png-signature", "jpeg-signature",
        "gif-signature", "webp-signature", "wav", "gif-html"])
def test_anything_that_does_not_decode_is_not_an_image(content):
    with pytest.raises(NotAnImage):
        clean_image(content)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_a_truncated_image_is_not_an_image(image_format):
    noise = Image.effect_noise((64, 64), 80).convert("RGB")
    content = encoded([noise], image_format)
    with pytest.raises(NotAnImage):
        clean_image(content[:len(content) // 2])


@pytest.mark.parametrize("image_format", ["BMP", "TIFF", "ICO"])
def test_other_formats_pillow_reads_are_refused(image_format):
    with pytest.raises(NotAnImage):
        clean_image(encoded([solid((1, 2, 3))], image_format))


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    side = int(MAX_PIXELS**0.5) + 1
    bomb = encoded([Image.new("1", (side, side))], "PNG")
    assert len(bomb) < 100_000  # tiny on the wire, MAX_PIXELS+ once decoded
    with pytest.raises(TooManyPixels):
        clean_image(bomb)


def test_frames_count_towards_the_pixel_bound():
    side = int((MAX_PIXELS / 3) ** 0.5) + 1  # each frame fits, four do not
    frames = [Image.new("L", (side, side), 60 * i) for i in range(4)]
    with pytest.raises(TooManyPixels):
        clean_image(encoded(frames, "GIF"))


def test_frames_are_bounded():
    frames = [Image.new("L", (1, 1), i % 2 * 255) for i in range(MAX_FRAMES + 1)]
    with pytest.raises(TooManyPixels):
        clean_image(encoded(frames, "GIF"))


def test_a_stored_file_is_only_ever_one_the_service_named_inside_the_upload_folder(tmp_path):
    name = new_file_name("png")
    assert stored_file(tmp_path, name) == tmp_path / name
    for smuggled in ("/etc/passwd", "../../etc/passwd", "x.png", f"../{name}",
                     f"{name}/../../secret", name.upper(), f"{name[:-3]}html", None):
        assert stored_file(tmp_path, smuggled) is None, smuggled


def test_a_stored_file_is_served_as_the_image_type_of_its_name():
    for extension, media_type in (("png", "image/png"), ("jpg", "image/jpeg"),
                                  ("gif", "image/gif"), ("webp", "image/webp")):
        assert stored_media_type(new_file_name(extension)) == media_type
    for name in (new_file_name("html"), new_file_name("svg"), "x.png", "../a.png"):
        assert stored_media_type(name) is None, name
