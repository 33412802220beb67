"""The pet operations over the gateway, on a real PostgreSQL."""

from __future__ import annotations

import uuid


def a_pet(**overrides):
    return {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": ["http://img/1.png"],
            "category": {"name": "dogs"}, "tags": [{"name": "good"}], **overrides}


def test_owner_adds_a_pet_and_anyone_reads_it(client, owner):
    created = client.post("/v2/pet", json=a_pet(), headers=owner)
    assert created.status_code == 200, created.json
    pet = created.json
    assert pet["status"] == "available"
    assert pet["category"]["name"] == "dogs"
    assert [t["name"] for t in pet["tags"]] == ["good"]
    assert pet["photoUrls"] == ["http://img/1.png"]

    fetched = client.get(f"/v2/pet/{pet['id']}")
    assert fetched.status_code == 200
    assert fetched.json == pet
