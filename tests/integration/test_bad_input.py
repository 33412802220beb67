"""Bad input gets a 4xx with a JSON body saying what is wrong, and nothing is written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models.db import unit_of_work
from models.outbox import OutboxMessage
from models.pet import Pet


def written() -> tuple[int, int]:
    with unit_of_work() as session:
        return (session.scalar(select(func.count()).select_from(Pet)),
                session.scalar(select(func.count()).select_from(OutboxMessage)))


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.data[:300]
    assert response.is_json
    body = response.json
    assert body["code"] == status
    assert body["status"] and body["message"]
    return body


@pytest.mark.parametrize("body", [
    {"photoUrls": []},                                        # no name
    {"name": "rex"},                                          # no photoUrls
    {"name": "rex", "photoUrls": "http://x"},                 # wrong type
    {"name": 7, "photoUrls": []},                             # wrong type
    {"name": "rex", "photoUrls": [], "status": "lost"},       # unknown enum value
    {"name": "rex\x00", "photoUrls": []},                     # NUL byte
    {"name": "\ud800", "photoUrls": []},                      # lone surrogate
    {"name": "x" * 201, "photoUrls": []},                     # too long
    {"name": "rex", "photoUrls": [], "id": 2**63},            # beyond int64
    {"name": "rex", "photoUrls": [], "category": {"name": "a b"}},  # bad category name
    {"name": "rex", "photoUrls": [], "tags": [{"name": ""}]},  # empty tag name
    {"name": "rex", "photoUrls": [], "tags": [{"id": "1", "name": "a"}]},  # tag id a string
    {"name": "rex", "photoUrls": [], "tags": [{"id": 2**63, "name": "a"}]},  # beyond int64
    {"name": "rex", "photoUrls": [], "category": {"id": 1.5, "name": "dogs"}},  # id not an int
    [],                                                       # not an object
])
def test_a_bad_pet_is_refused_with_field_errors(client, owner, body):
    before = written()
    error = assert_json_error(client.post("/v2/pet", json=body, headers=owner), 422)
    assert error["errors"]
    assert written() == before


def test_a_body_that_is_not_json_is_refused(client, owner):
    before = written()
    response = client.post("/v2/pet", data="{not json", headers=owner,
                           content_type="application/json")
    assert response.status_code in (400, 422)
    assert_json_error(response, response.status_code)
    assert written() == before


@pytest.mark.parametrize("path", [
    f"/v2/pet/{2**63}", "/v2/pet/-5", "/v2/pet/0", "/v2/pet/abc", "/v2/pet/1.5",
    "/v2/store/order/abc", "/v2/store/order/-1",
])
def test_path_ids_that_are_not_int64_ids_are_json_400s(client, owner, path):
    body = assert_json_error(client.get(path, headers=owner), 400)
    assert "not a valid" in body["message"]


@pytest.mark.parametrize("path", ["/v2/pet/9223372036854775807", "/v2/nowhere", "/nowhere",
                                  "/"])
def test_unknown_ids_and_paths_are_json_404s(client, path):
    assert_json_error(client.get(path), 404)


def test_a_wrong_method_is_a_json_405(client):
    assert_json_error(client.patch("/v2/pet"), 405)


def test_a_nul_byte_in_a_query_is_refused(client):
    assert_json_error(client.get("/v2/pet/findByTags", query_string={"tags": "a\x00"}), 422)
    assert_json_error(client.get("/v2/pet/findByStatus"), 422)


def test_a_bad_form_update_is_refused(client, owner):
    response = client.post("/v2/pet/1", data={"status": "lost"}, headers=owner)
    assert_json_error(response, 422)


def test_the_openapi_document_is_served(client):
    spec = client.get("/v2/openapi.json").json
    assert spec["servers"] == [{"url": "/v2"}]
    for path in ("/pet", "/pet/findByStatus", "/pet/findByTags", "/pet/{pet_id}",
                 "/pet/{pet_id}/uploadImage", "/store/inventory", "/user", "/user/login",
                 "/user/logout", "/user/createWithArray", "/user/createWithList",
                 "/user/{username}"):
        assert path in spec["paths"], path
    assert set(spec["components"]["securitySchemes"]) == {"api_key", "bearer"}
