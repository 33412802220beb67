"""What the gateway's answers let a browser do: polyglot uploads, security headers, photo
URLs under a forged Host, and who reads /metrics."""

from __future__ import annotations

import io
import re
import uuid
from base64 import b64encode
from hashlib import sha256

import pytest
from PIL import Image

from models.photo import MAX_PIXELS

HTML = b"<html><script>alert(1)</script></html>"
API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def encoded(image_format: str, size: tuple[int, int] = (8, 6), **options) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 140, 220)).save(out, format=image_format, **options)
    return out.getvalue()


def add_pet(client, owner) -> dict:
    body = {"name": f"pet-{uuid.uuid4().hex[:10]}", "photoUrls": []}
    response = client.post("/v2/pet", json=body, headers=owner)
    assert response.status_code == 200, response.json
    return response.json


def upload(client, headers: dict[str, str], pet_id: int, content: bytes, **kwargs):
    return client.post(f"/v2/pet/{pet_id}/uploadImage", headers=headers,
                       data={"file": (io.BytesIO(content), "cute.png")},
                       content_type="multipart/form-data", **kwargs)


def stored_files(app) -> set[str]:
    return {path.name for path in app.config["UPLOAD_DIR"].iterdir()}


def served(app, client, owner, content: bytes, media_type: str):
    """Upload `content` to a new pet; its one photo as the gateway serves it."""
    pet = add_pet(client, owner)
    response = upload(client, owner, pet["id"], content)
    assert response.status_code == 200, response.json
    assert response.json["type"] == media_type
    [url] = client.get(f"/v2/pet/{pet['id']}").json["photoUrls"]
    image = client.get(url.removeprefix(app.config["PUBLIC_URL"]))
    assert image.status_code == 200
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Content-Type"] == media_type
    assert "sandbox" in image.headers["Content-Security-Policy"]
    assert "default-src 'none'" in image.headers["Content-Security-Policy"]
    name = url.rsplit("/", 1)[1]
    assert image.headers["Content-Disposition"] == f'inline; filename="{name}"'
    return image


def assert_api_headers(response) -> None:
    for name, value in API_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code,
                                                     response.headers)


# Uploads: only images are stored, and only as Pillow re-encodes them.


@pytest.mark.parametrize(("image_format", "media_type"), [
    ("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_a_real_image_is_accepted_and_served_as_an_image(app, client, owner, image_format,
                                                         media_type):
    image = served(app, client, owner, encoded(image_format), media_type)
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert (decoded.format, decoded.size) == (image_format, (8, 6))
        assert decoded.getpixel((4, 3)) == pytest.approx((30, 140, 220), abs=8)


@pytest.mark.parametrize(("content", "media_type"), [
    (encoded("GIF", comment=HTML) + HTML, "image/gif"),
    (encoded("WEBP", xmp=HTML) + HTML, "image/webp"),
], ids=["gif", "webp"])
def test_a_polyglot_that_decodes_is_stored_without_its_html(app, client, owner, content,
                                                            media_type):
    assert b"<script" in content
    image = served(app, client, owner, content, media_type)
    assert b"<script" not in image.data
    assert b"<html" not in image.data


@pytest.mark.parametrize("content", [
    b"GIF89a" + HTML,
    b"RIFF\x40\x00\x00\x00WEBPVP8 " + HTML,
    b"\x89PNG\r\n\x1a\n" + HTML,
    HTML,
], ids=["gif-header-html", "webp-header-html", "png-header-html", "html"])
def test_html_behind_an_image_signature_is_refused_and_nothing_is_stored(app, client, owner,
                                                                         content):
    pet = add_pet(client, owner)
    files = stored_files(app)
    response = upload(client, owner, pet["id"], content)
    assert response.status_code == 415, response.data
    assert response.is_json and "image" in response.json["message"]
    assert client.get(f"/v2/pet/{pet['id']}").json["photoUrls"] == []
    assert stored_files(app) == files


def test_a_decompression_bomb_is_refused_and_nothing_is_stored(app, client, owner):
    side = int(MAX_PIXELS**0.5) + 1
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, format="PNG")
    pet = add_pet(client, owner)
    files = stored_files(app)
    response = upload(client, owner, pet["id"], out.getvalue())
    assert response.status_code == 413, response.data
    assert response.is_json and "pixels" in response.json["message"]
    assert client.get(f"/v2/pet/{pet['id']}").json["photoUrls"] == []
    assert stored_files(app) == files


def test_photo_urls_ignore_a_forged_host(app, client, owner):
    pet = add_pet(client, owner)
    # gunicorn takes SCRIPT_NAME from a request header under --header-map dangerous.
    response = upload(client, {**owner, "Host": "evil.example"}, pet["id"], encoded("PNG"),
                      environ_overrides={"SCRIPT_NAME": "/evil"})
    assert response.status_code == 200, response.json
    [url] = client.get(f"/v2/pet/{pet['id']}").json["photoUrls"]
    assert re.fullmatch(re.escape(app.config["PUBLIC_URL"]) + r"/v2/images/[0-9a-f]{32}\.png",
                        url), url
    assert f"File uploaded to {url}," in response.json["message"]


def test_only_stored_names_are_served(client):
    for name in ("x.html", f"{uuid.uuid4().hex}.html", f"{uuid.uuid4().hex}.png"):
        response = client.get(f"/v2/images/{name}")
        assert response.status_code == 404, name
        assert response.is_json
        assert_api_headers(response)


# Security headers on every answer.


def test_every_answer_carries_the_security_headers(app, client, owner):
    pet = add_pet(client, owner)
    answers = {
        200: client.get(f"/v2/pet/{pet['id']}"),
        401: client.post("/v2/pet", json={"name": "x", "photoUrls": []}),
        404: client.get(f"/v2/pet/{2**62}"),
        405: client.patch("/v2/pet"),
        # Outside the API and beside it: the root's 404 and /metrics.
        "outside": client.get("/nowhere"),
        "metrics": client.get("/metrics"),
        "openapi": client.get("/v2/openapi.json"),
        "docs files": client.get("/v2/docs/swagger-ui/swagger-ui-bundle.js"),
    }
    for key, response in answers.items():
        if isinstance(key, int):
            assert response.status_code == key, response.data
        assert_api_headers(response)
    assert answers["openapi"].json["paths"]
    assert answers["docs files"].status_code == 200


def test_the_docs_page_may_run_its_own_scripts_and_nothing_else(client):
    response = client.get("/v2/docs")
    assert response.status_code == 200
    policy = dict(directive.strip().split(" ", 1)
                  for directive in response.headers["Content-Security-Policy"].split(";"))
    inline = re.findall(rb"<script>(.*?)</script>", response.data, re.DOTALL)
    assert len(inline) == 1
    digest = b64encode(sha256(inline[0]).digest()).decode()
    assert policy["script-src"].split() == ["'self'", f"'sha256-{digest}'"]
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    for name in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert response.headers[name] == API_HEADERS[name]


# /metrics asks for a token, and is closed when none is configured.


@pytest.fixture(scope="module")
def metrics_token() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def guarded(app, metrics_token):
    from web import create_app

    return create_app({"TESTING": True, "METRICS_TOKEN": metrics_token}).test_client()


def assert_refused(response, status: int) -> None:
    assert response.status_code == status, response.data
    assert response.is_json and response.json["code"] == status
    assert "petstore_" not in response.get_data(as_text=True)
    assert_api_headers(response)


def test_metrics_are_closed_when_no_token_is_configured(app, metrics_token):
    from web import create_app

    closed = create_app({"TESTING": True, "METRICS_TOKEN": ""}).test_client()
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
        response = closed.get("/metrics", headers=headers)
        assert_refused(response, 403)
        assert "PETSTORE_METRICS_TOKEN" in response.json["message"]


def test_metrics_need_the_token(guarded, metrics_token):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer "},
                    {"Authorization": f"Basic {metrics_token}"},
                    {"Authorization": f"Bearer {metrics_token}x"},
                    {"Authorization": f"Bearer {metrics_token[:-1]}"},
                    {"Authorization": "Bearer é"},
                    {"api_key": metrics_token}):
        response = guarded.get("/metrics", headers=headers)
        assert_refused(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_metrics_answer_the_right_token(guarded, metrics_token):
    for scheme in ("Bearer", "bearer"):
        response = guarded.get("/metrics", headers={"Authorization": f"{scheme} {metrics_token}"})
        assert response.status_code == 200, response.data
        assert response.headers["Content-Type"].startswith("text/plain")
        assert "petstore_outbox_backlog" in response.get_data(as_text=True)
        assert_api_headers(response)
