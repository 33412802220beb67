"""Request bodies and query lists that would cost a 500 or a false 503 get a JSON 400
saying what is wrong, and requests of a sensible size are served as before."""

from __future__ import annotations

import json

import pytest

PET = {"name": "rex", "photoUrls": []}


def post_pet(client, owner, body: str):
    return client.post("/v2/pet", data=body, headers=owner, content_type="application/json")


def assert_json_400(response, says: str) -> dict:
    assert response.status_code == 400, response.data[:300]
    assert response.is_json
    body = response.json
    assert body["code"] == 400 and body["status"] == "Bad Request"
    assert says in body["message"]
    return body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [32, 1_000, 100_000])
def test_a_deeply_nested_body_is_a_400(client, owner, depth):
    # The lists sit in the body's object: 32 of them make 33 levels, one too many.
    body = json.dumps(PET)[:-1] + f', "tags": {nested(depth)}}}'
    error = assert_json_400(post_pet(client, owner, body), "nested too deeply")
    assert error["errors"] == {"json": [error["message"]]}


def test_nesting_within_the_bound_is_parsed(client, owner):
    # 32 levels in all: parsed, and then a schema error (422), not a refusal.
    body = json.dumps({**PET, "tags": json.loads(nested(31))})
    assert post_pet(client, owner, body).status_code == 422


@pytest.mark.parametrize("number", ["9" * 4_301, "-" + "9" * 21, "1" * 50 + ".5", "1e999"])
def test_a_huge_number_is_a_400(client, owner, number):
    body = json.dumps(PET)[:-1] + f', "id": {number}}}'
    assert_json_400(post_pet(client, owner, body), "number in the request body is too large")


def test_nan_is_refused(client, owner):
    body = json.dumps(PET)[:-1] + ', "id": NaN}'
    assert_json_400(post_pet(client, owner, body), "NaN")


def test_an_int64_beyond_range_is_still_a_field_error(client, owner):
    response = client.post("/v2/pet", json={**PET, "id": 2**64}, headers=owner)
    assert response.status_code == 422
    assert "id" in response.json["errors"]["json"]


def test_a_normal_pet_is_created(client, owner):
    response = client.post("/v2/pet", json={**PET, "id": 0, "tags": [{"name": "calm"}]},
                           headers=owner)
    assert response.status_code == 200, response.json
    assert response.json["tags"][0]["name"] == "calm"


@pytest.mark.parametrize("path, name, value", [
    ("/v2/pet/findByStatus", "status", "sold"),
    ("/v2/pet/findByTags", "tags", "calm"),
])
def test_a_hundred_thousand_values_are_a_400_not_a_503(client, path, name, value):
    response = client.get(path, query_string={name: ",".join([value] * 100_000)})
    assert_json_400(response, f"At most 100 values for {name}")


def test_repeated_parameters_count_too(client):
    response = client.get("/v2/pet/findByStatus", query_string=[("status", "sold")] * 101)
    assert_json_400(response, "At most 100 values for status")


def test_a_hundred_statuses_are_served(client):
    response = client.get("/v2/pet/findByStatus",
                          query_string={"status": ",".join(["available", "sold"] * 50)})
    assert response.status_code == 200, response.json
    assert isinstance(response.json, list)


def test_tags_keep_their_own_bound(client):
    assert client.get("/v2/pet/findByTags",
                      query_string={"tags": ",".join(["calm"] * 50)}).status_code == 200
    assert client.get("/v2/pet/findByTags",
                      query_string={"tags": ",".join(["calm"] * 51)}).status_code == 422
