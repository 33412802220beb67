"""The pet operations over the gateway, on a real PostgreSQL."""

from __future__ import annotations

import io
import random
import uuid

from PIL import Image
from sqlalchemy import func, select

from models.db import unit_of_work
from models.pet import Pet
from tests.support.generated_client import tiny_png

PNG = tiny_png()


def a_pet(**overrides):
    return {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": ["http://img/1.png"],
            "category": {"name": "dogs"}, "tags": [{"name": "good"}], **overrides}


def add(client, owner, **overrides) -> dict:
    response = client.post("/v2/pet", json=a_pet(**overrides), headers=owner)
    assert response.status_code == 200, response.json
    return response.json


def pet_count() -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Pet))


def test_owner_adds_a_pet_and_anyone_reads_it(client, owner):
    pet = add(client, owner)
    assert pet["status"] == "available"
    assert pet["category"]["name"] == "dogs"
    assert [t["name"] for t in pet["tags"]] == ["good"]
    assert pet["photoUrls"] == ["http://img/1.png"]

    fetched = client.get(f"/v2/pet/{pet['id']}")
    assert fetched.status_code == 200
    assert fetched.json == pet


def a_new_id() -> int:
    return random.randint(10**12, 2**62)


def test_a_pet_gets_the_id_its_client_chose(client, owner):
    chosen = a_new_id()
    pet = add(client, owner, id=chosen)
    assert pet["id"] == chosen
    assert client.get(f"/v2/pet/{chosen}").json == pet


def test_a_taken_id_is_a_409_and_overwrites_nothing(client, owner):
    pet = add(client, owner, id=a_new_id())
    before = pet_count()
    response = client.post("/v2/pet", json=a_pet(id=pet["id"], name="intruder"), headers=owner)
    assert response.status_code == 409
    assert f"Pet {pet['id']} already exists" in response.json["message"]
    assert client.get(f"/v2/pet/{pet['id']}").json == pet
    assert pet_count() == before


def test_without_an_id_or_with_0_the_store_assigns_one_no_client_chose(client, owner):
    assigned = add(client, owner)
    chosen = add(client, owner, id=assigned["id"] + 1)  # where the store would go next
    after = [add(client, owner)["id"], add(client, owner, id=0)["id"]]
    assert chosen["id"] not in after
    assert len(set(after)) == 2


def test_a_category_or_tag_is_named_by_its_id_its_name_or_both(client, owner):
    name, label_id = f"cat{uuid.uuid4().hex[:8]}", a_new_id()
    created = add(client, owner, category={"id": label_id, "name": name},
                  tags=[{"id": label_id, "name": name}])
    assert created["category"] == {"id": label_id, "name": name}
    assert created["tags"] == [{"id": label_id, "name": name}]
    by_id = add(client, owner, category={"id": label_id}, tags=[{"id": label_id}])
    by_name = add(client, owner, category={"name": name}, tags=[{"name": name}])
    assert by_id["category"] == by_name["category"] == created["category"]
    assert by_id["tags"] == by_name["tags"] == created["tags"]


def test_a_category_id_and_name_that_disagree_are_a_409_that_says_so(client, owner):
    pet = add(client, owner, category={"name": f"cat{uuid.uuid4().hex[:8]}"})
    category = pet["category"]
    before = pet_count()
    response = client.post("/v2/pet", json=a_pet(category={"id": category["id"],
                                                           "name": "other"}), headers=owner)
    assert response.status_code == 409
    assert f"Category {category['id']} is {category['name']!r}" in response.json["message"]
    response = client.post("/v2/pet", json=a_pet(tags=[{"id": a_new_id(), "name": "good"}]),
                           headers=owner)
    assert response.status_code == 409
    assert "Tag 'good' has id" in response.json["message"]
    assert pet_count() == before


def test_a_category_named_only_by_an_unknown_id_is_a_400(client, owner):
    response = client.post("/v2/pet", json=a_pet(category={"id": a_new_id()}), headers=owner)
    assert response.status_code == 400
    assert "send its name too" in response.json["message"]


def test_a_pet_without_a_category_has_none_in_its_answer_not_null(client, owner):
    pet = add(client, owner, category={})
    assert "category" not in pet
    assert "category" not in client.get(f"/v2/pet/{pet['id']}").json


def test_the_very_body_a_get_returns_can_be_put_back(client, owner):
    pet = add(client, owner)
    fetched = client.get(f"/v2/pet/{pet['id']}").json
    response = client.put("/v2/pet", json=fetched, headers=owner)
    assert response.status_code == 200, response.json
    assert response.json == fetched


def test_owner_replaces_a_pet(client, owner):
    pet = add(client, owner)
    changed = {**a_pet(name="max", status="sold", tags=[{"name": "old"}]), "id": pet["id"]}
    response = client.put("/v2/pet", json=changed, headers=owner)
    assert response.status_code == 200, response.json
    assert response.json["name"] == "max"
    assert response.json["status"] == "sold"
    assert [t["name"] for t in response.json["tags"]] == ["old"]
    assert client.get(f"/v2/pet/{pet['id']}").json == response.json


def test_replacing_needs_an_existing_pet_id(client, owner):
    assert client.put("/v2/pet", json=a_pet(), headers=owner).status_code == 400
    missing = client.put("/v2/pet", json={**a_pet(), "id": 2**62}, headers=owner)
    assert missing.status_code == 404
    assert "not found" in missing.json["message"]


def test_owner_updates_name_and_status_with_a_form(client, owner):
    pet = add(client, owner)
    response = client.post(f"/v2/pet/{pet['id']}", data={"name": "bella", "status": "pending"},
                           headers=owner)
    assert response.status_code == 200, response.json
    assert (response.json["name"], response.json["status"]) == ("bella", "pending")


def test_pets_are_found_by_status_and_by_tags(client, owner):
    tag = f"t{uuid.uuid4().hex[:8]}"
    sold = add(client, owner, status="sold", tags=[{"name": tag}])
    available = add(client, owner, tags=[{"name": tag}, {"name": "x"}])
    by_status = client.get("/v2/pet/findByStatus", query_string={"status": "sold,pending"})
    assert by_status.status_code == 200
    assert sold["id"] in [p["id"] for p in by_status.json]
    assert available["id"] not in [p["id"] for p in by_status.json]
    by_tags = client.get("/v2/pet/findByTags", query_string={"tags": f"{tag},nothing"})
    assert sorted(p["id"] for p in by_tags.json) == sorted([sold["id"], available["id"]])


def test_an_unknown_status_is_refused(client):
    response = client.get("/v2/pet/findByStatus", query_string={"status": "lost"})
    assert response.status_code == 422
    assert "status" in response.json["errors"]["query"]


def test_an_available_pet_is_deleted(client, owner):
    pet = add(client, owner)
    assert client.delete(f"/v2/pet/{pet['id']}", headers=owner).status_code == 204
    assert client.get(f"/v2/pet/{pet['id']}").status_code == 404
    assert client.delete(f"/v2/pet/{pet['id']}", headers=owner).status_code == 404


def test_a_pending_or_sold_pet_is_not_deleted(client, owner):
    for status in ("pending", "sold"):
        pet = add(client, owner, status=status)
        response = client.delete(f"/v2/pet/{pet['id']}", headers=owner)
        assert response.status_code == 409
        assert status in response.json["message"]
        assert "order" not in response.json["message"]  # no order holds it: not the reason
        assert client.get(f"/v2/pet/{pet['id']}").status_code == 200


def test_writing_pets_needs_the_owner(client, customer):
    before = pet_count()
    assert client.post("/v2/pet", json=a_pet()).status_code == 401
    assert client.post("/v2/pet", json=a_pet(), headers={"api_key": "nonsense"}).status_code == 401
    forbidden = client.post("/v2/pet", json=a_pet(), headers=customer)
    assert forbidden.status_code == 403
    assert forbidden.json["message"]
    assert pet_count() == before


def test_a_customer_reads_but_does_not_delete_pets(client, owner, customer):
    pet = add(client, owner)
    assert client.get(f"/v2/pet/{pet['id']}", headers=customer).status_code == 200
    assert client.delete(f"/v2/pet/{pet['id']}", headers=customer).status_code == 403


def test_an_uploaded_image_is_stored_served_and_listed(app, client, owner):
    pet = add(client, owner, photoUrls=[])
    response = client.post(f"/v2/pet/{pet['id']}/uploadImage", headers=owner,
                           data={"additionalMetadata": "front",
                                 "file": (io.BytesIO(PNG), "rex.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.json
    assert response.json["type"] == "image/png"
    [url] = client.get(f"/v2/pet/{pet['id']}").json["photoUrls"]
    served = client.get(url.removeprefix(app.config["PUBLIC_URL"]))
    assert served.status_code == 200
    assert served.mimetype == "image/png"
    with Image.open(io.BytesIO(served.data)) as image:  # stored as it decodes, re-encoded
        assert (image.format, image.size) == ("PNG", (1, 1))


def test_an_upload_that_is_not_an_image_is_refused(client, owner):
    pet = add(client, owner, photoUrls=[])
    response = client.post(f"/v2/pet/{pet['id']}/uploadImage", headers=owner,
                           data={"file": (io.BytesIO(b"#!/bin/sh\nrm -rf /"), "x.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 415
    assert "image" in response.json["message"]
    assert client.get(f"/v2/pet/{pet['id']}").json["photoUrls"] == []


def test_an_oversized_upload_is_refused(app, owner):
    client = app.test_client()
    pet = add(client, owner, photoUrls=[])
    big = PNG + b"\x00" * app.config["MAX_CONTENT_LENGTH"]
    response = client.post(f"/v2/pet/{pet['id']}/uploadImage", headers=owner,
                           data={"file": (io.BytesIO(big), "big.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 413
    assert response.json["code"] == 413
    assert client.get(f"/v2/pet/{pet['id']}").json["photoUrls"] == []


def test_uploading_for_a_missing_pet_is_404(client, owner):
    response = client.post(f"/v2/pet/{2**62}/uploadImage", headers=owner,
                           data={"file": (io.BytesIO(PNG), "rex.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 404
