"""Security specifications of the gateway: who may do what, tokens, secrets and hostile input.

Every name is random, so these tests never collide with each other or with other modules.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from models.db import unit_of_work, utcnow
from models.photo import Photo
from models.user import LoginToken, User
from web.auth import COOKIE

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WRITES = ("post", "put", "delete", "patch")
# Hostile strings: SQL quoting and comments, LIKE wildcards, a backslash, a double quote.
SQL_METAS = ["x'; DROP TABLE pets;--", "%_\\", "Robert'); DROP TABLE users;--",
             "\" OR 1=1 --", "' OR '1'='1", "a%' OR name LIKE '%"]
# What a dummy value of each path parameter looks like.
DUMMY_PATH_VALUES = {"pet_id": "1", "order_id": "1", "username": "someone",
                     "saga_id": "00000000-0000-0000-0000-000000000000", "name": "x.png"}


def uid() -> str:
    return uuid.uuid4().hex[:10]


def login(client, username: str, password: str) -> str:
    response = client.get("/v2/user/login", query_string={"username": username,
                                                          "password": password})
    assert response.status_code == 200, response.json
    return response.json


def add_pet(client, owner, **overrides) -> dict:
    body = {"name": f"pet-{uid()}", "photoUrls": [], **overrides}
    response = client.post("/v2/pet", json=body, headers=owner)
    assert response.status_code == 200, response.json
    return response.json


def assert_json_error(response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.data[:500])
    assert response.is_json and response.json["code"] == status, response.data[:500]
    assert response.json["message"]


def write_operations(client) -> list[tuple[str, str]]:
    """(method, OpenAPI path) of every write the served document lists."""
    spec = client.get("/v2/openapi.json").json
    assert spec["servers"] == [{"url": "/v2"}]
    return sorted((method, path) for path, item in spec["paths"].items()
                  for method in item if method in WRITES)


def concrete(path: str) -> str:
    return "/v2" + re.sub(r"\{(\w+)\}", lambda m: DUMMY_PATH_VALUES.get(m[1], "1"), path)


# No write without credentials.


def test_every_write_in_the_served_document_needs_credentials(client):
    operations = write_operations(client)
    # Sign-up is the one open write; every other one must refuse an anonymous caller.
    assert ("post", "/user") in operations
    guarded = [op for op in operations if op != ("post", "/user")]
    assert len(guarded) >= 10, guarded
    for method, path in guarded:
        url = concrete(path)
        for body in ({}, {"id": 1, "name": "x", "photoUrls": [], "petId": 1,
                          "username": f"u{uid()}", "password": "p"}):
            response = client.open(url, method=method.upper(), json=body)
            assert response.status_code == 401, (method, url, response.status_code)
            assert_json_error(response, 401)
        form = client.open(url, method=method.upper(), data={"name": "x", "file": (
            io.BytesIO(PNG), "x.png")}, content_type="multipart/form-data")
        assert form.status_code == 401, (method, url, form.status_code)


def test_every_write_refuses_a_bad_or_a_cookie_only_token(client, owner):
    from common.settings import get_settings

    token = owner["api_key"]
    client.set_cookie(COOKIE, token)
    # The cookie is sent, and it counts for a read.
    assert client.get(f"/v2/user/{get_settings().owner[0]}").status_code == 200
    client.delete_cookie(COOKIE)
    for method, path in write_operations(client):
        if (method, path) == ("post", "/user"):
            continue
        url = concrete(path)
        for headers in ({"api_key": "not-a-token"}, {"Authorization": f"Bearer x{token}"}):
            response = client.open(url, method=method.upper(), json={}, headers=headers)
            assert response.status_code == 401, (method, url, headers, response.status_code)
        # The cookie counts only for reads: another site cannot make a browser write.
        client.set_cookie(COOKIE, token)
        try:
            response = client.open(url, method=method.upper(), json={})
        finally:
            client.delete_cookie(COOKIE)
        assert response.status_code == 401, (method, url, "cookie", response.status_code)


def test_nothing_is_written_by_refused_anonymous_writes(client, owner):
    pet = add_pet(client, owner)
    name = f"anon-{uid()}"
    assert client.put("/v2/pet", json={"id": pet["id"], "name": name,
                                       "photoUrls": []}).status_code == 401
    assert client.post(f"/v2/pet/{pet['id']}", data={"name": name}).status_code == 401
    assert client.delete(f"/v2/pet/{pet['id']}").status_code == 401
    assert client.get(f"/v2/pet/{pet['id']}").json == pet


# Customers keep to their own orders and their own account.


@pytest.fixture
def placed(client, owner, sign_up, worker):
    """(the customer's headers, the order) for an order placed by a fresh customer."""
    pet = add_pet(client, owner)
    headers = sign_up()[2]
    response = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "placed"
    return headers, response.json


def test_a_customer_cannot_see_or_change_another_customers_order(client, placed, customer):
    mine, order = placed
    url = f"/v2/store/order/{order['id']}"
    assert client.get(url, headers=mine).status_code == 200
    assert_json_error(client.get(url, headers=customer), 403)
    assert_json_error(client.delete(url, headers=customer), 403)
    assert_json_error(client.post(f"{url}/approve", headers=customer), 403)
    assert_json_error(client.post(f"{url}/deliver", headers=customer), 403)
    # Nothing moved: the order is still placed, as its customer sees it.
    assert client.get(url, headers=mine).json == order


def test_a_customer_cannot_approve_or_deliver_even_their_own_order(client, placed):
    mine, order = placed
    url = f"/v2/store/order/{order['id']}"
    assert_json_error(client.post(f"{url}/approve", headers=mine), 403)
    assert_json_error(client.post(f"{url}/deliver", headers=mine), 403)
    assert client.get(url, headers=mine).json["status"] == "placed"


def test_a_customer_cannot_read_change_or_delete_another_user(client, sign_up, customer):
    victim, password, _ = sign_up()
    url = f"/v2/user/{victim}"
    assert_json_error(client.get(url, headers=customer), 403)
    changed = client.put(url, json={"password": "hijacked", "firstName": "Mallory"},
                         headers=customer)
    assert_json_error(changed, 403)
    assert_json_error(client.delete(url, headers=customer), 403)
    # The victim's account is whole: same password, same profile.
    token = login(client, victim, password)
    profile = client.get(url, headers={"api_key": token}).json
    assert profile["username"] == victim and profile.get("firstName") is None


def test_a_customer_cannot_rename_themselves_onto_another_user(client, sign_up):
    victim = sign_up()[0]
    me, _, mine = sign_up()
    response = client.put(f"/v2/user/{me}", json={"username": victim}, headers=mine)
    assert response.status_code == 409
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(User)
                              .where(User.username == victim)) == 1


def test_a_customer_cannot_create_users_in_bulk(client, customer):
    body = [{"username": f"bulk{uid()}", "password": "p"}]
    for path in ("/v2/user/createWithArray", "/v2/user/createWithList"):
        assert_json_error(client.post(path, json=body, headers=customer), 403)
    with unit_of_work() as session:
        assert session.scalar(select(User).where(User.username == body[0]["username"])) is None


# Tokens.


def expire_tokens_of(username: str) -> None:
    """Let every login token of this user reach its expiry, as time would."""
    with unit_of_work() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        changed = session.execute(update(LoginToken).where(LoginToken.user_id == user_id)
                                  .values(expires_at=utcnow() - timedelta(seconds=1))).rowcount
    assert changed >= 1


def test_an_expired_token_is_refused(client, sign_up):
    username, password, headers = sign_up()
    url = f"/v2/user/{username}"
    assert client.get(url, headers=headers).status_code == 200
    expire_tokens_of(username)
    assert_json_error(client.get(url, headers=headers), 401)
    assert_json_error(client.get(url, headers={
        "Authorization": f"Bearer {headers['api_key']}"}), 401)
    assert_json_error(client.put(url, json={"firstName": "late"}, headers=headers), 401)
    # Logging in again gives a fresh, working token.
    assert client.get(url, headers={"api_key": login(client, username, password)}
                      ).status_code == 200


def test_logout_revokes_that_token_only(client, sign_up):
    username, password, headers = sign_up()
    other = {"api_key": login(client, username, password)}
    url = f"/v2/user/{username}"
    assert client.get("/v2/user/logout", headers=headers).status_code == 204
    assert_json_error(client.get(url, headers=headers), 401)
    assert_json_error(client.get("/v2/user/logout", headers=headers), 401)
    assert client.get(url, headers=other).status_code == 200


def test_a_token_appears_nowhere_in_the_database(client, sign_up):
    username, _, headers = sign_up()
    token = headers["api_key"]
    assert client.get(f"/v2/user/{username}", headers=headers).status_code == 200
    with unit_of_work() as session:
        tables = session.scalars(text(
            "SELECT quote_ident(table_name) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")).all()
        holding = [table for table in tables if session.scalar(text(
            f"SELECT count(*) FROM {table} AS whole_row "
            "WHERE strpos(whole_row::text, :token) > 0"), {"token": token})]
        kept = session.scalar(select(func.count()).select_from(LoginToken).join(User)
                              .where(User.username == username))
    assert "login_tokens" in tables and kept == 1  # searched where the token is kept
    assert holding == []


def test_a_new_password_revokes_every_token(client, sign_up):
    username, password, headers = sign_up()
    other = {"api_key": login(client, username, password)}
    url = f"/v2/user/{username}"
    response = client.put(url, json={"password": f"new-{uid()}", "currentPassword": password},
                          headers=headers)
    assert response.status_code == 200
    assert_json_error(client.get(url, headers=headers), 401)
    assert_json_error(client.get(url, headers=other), 401)


# Passwords.


@pytest.fixture
def captured(caplog):
    """Every log record at DEBUG and up: the gateway's own non-propagating loggers too, and
    SQLAlchemy's statements with their parameters."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    own = [logging.getLogger(name) for name in ("web", "sagas", "workers")]
    levels = [logger.level for logger in own]
    for logger in own:
        logger.addHandler(caplog.handler)
        logger.setLevel(logging.DEBUG)
    yield caplog
    for logger, level in zip(own, levels, strict=True):
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)


def _logged(caplog) -> str:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        lines.append(repr(record.args))
        lines.append(repr(vars(record)))
    return "\n".join(lines)


def test_passwords_are_never_returned_logged_or_stored_in_clear(client, owner, captured):
    first, second, third = (f"Pw-{uid()}-secret" for _ in range(3))
    username = f"pw{uid()}"
    responses = [client.post("/v2/user", json={"username": username, "password": first,
                                               "firstName": "Ann"})]
    assert responses[-1].status_code == 200
    responses.append(client.get("/v2/user/login", query_string={
        "username": username, "password": f"wrong-{first}"}))
    assert responses[-1].status_code == 401
    responses.append(client.get("/v2/user/login", query_string={
        "username": username, "password": first}))
    headers = {"api_key": responses[-1].json}
    url = f"/v2/user/{username}"
    responses.append(client.get(url, headers=headers))
    responses.append(client.put(url, json={"password": second, "currentPassword": first,
                                           "lastName": "Lee"}, headers=headers))
    assert responses[-1].status_code == 200
    headers = {"api_key": login(client, username, second)}
    responses.append(client.get(url, headers=headers))
    bulk = f"pw{uid()}"
    responses.append(client.post("/v2/user/createWithArray",
                                 json=[{"username": bulk, "password": third}], headers=owner))
    assert responses[-1].status_code == 200
    responses.append(client.get(f"/v2/user/{bulk}", headers=owner))

    for response in responses:
        body = response.get_data(as_text=True)
        for password in (first, second, third):
            assert password not in body and password not in str(response.headers)
        if response.status_code == 200 and response.is_json:
            for user in (response.json if isinstance(response.json, list) else [response.json]):
                if isinstance(user, dict):
                    assert "password" not in user and "passwordHash" not in user
                    assert not any("hash" in key.lower() for key in user)
    canary = f"canary-{uid()}"
    logging.getLogger("web.test_security").info(canary)
    logged = _logged(captured)
    assert canary in logged, "the capture misses the gateway's loggers"
    assert "INSERT INTO users" in logged, "the capture misses SQL statements"
    for password in (first, second, third):
        assert password not in logged
    with unit_of_work() as session:
        rows = session.scalars(text("SELECT u::text FROM users u WHERE username IN (:a, :b)"),
                               {"a": username, "b": bulk}).all()
    assert len(rows) == 2
    for password in (first, second, third):
        assert not any(password in row for row in rows)


# Hostile strings are data.


def _table_count(name: str) -> int:
    with unit_of_work() as session:
        return session.scalar(text(f"SELECT count(*) FROM {name}"))


@pytest.mark.parametrize("meta", SQL_METAS)
def test_sql_metacharacters_in_pet_fields_are_stored_and_returned_as_data(client, owner, meta):
    pets_before = _table_count("pets")
    suffix = uid()
    name, tag, url = f"{meta}{suffix}", f"{meta}{suffix}", f"http://img/{meta}{suffix}"
    category = f"c_{suffix}"  # category names follow the spec's pattern; `_` is a wildcard
    pet = add_pet(client, owner, name=name, tags=[{"name": tag}], photoUrls=[url],
                  category={"name": category})
    assert pet["name"] == name and [t["name"] for t in pet["tags"]] == [tag]
    assert pet["photoUrls"] == [url] and pet["category"]["name"] == category
    assert client.get(f"/v2/pet/{pet['id']}").json == pet
    found = client.get("/v2/pet/findByTags", query_string={"tags": tag})
    assert [p["id"] for p in found.json] == [pet["id"]]
    # Wildcards match only themselves.
    for pattern in ("%", "_", f"%{suffix}", f"{meta[:1]}%", tag[:-1] + "_"):
        found = client.get("/v2/pet/findByTags", query_string={"tags": pattern})
        assert found.status_code == 200
        assert pet["id"] not in [p["id"] for p in found.json], pattern
    # A form update takes the string as it is too.
    renamed = client.post(f"/v2/pet/{pet['id']}", data={"name": f"{meta}!"}, headers=owner)
    assert renamed.status_code == 200 and renamed.json["name"] == f"{meta}!"
    assert _table_count("pets") == pets_before + 1


@pytest.mark.parametrize("meta", SQL_METAS)
def test_a_category_name_outside_the_spec_pattern_is_refused_not_run(client, owner, meta):
    pets_before = _table_count("pets")
    response = client.post("/v2/pet", json={"name": "x", "photoUrls": [],
                                            "category": {"name": f"{meta}{uid()}"}},
                           headers=owner)
    assert_json_error(response, 422)
    assert _table_count("pets") == pets_before


@pytest.mark.parametrize("meta", SQL_METAS)
def test_sql_metacharacters_in_user_fields_are_stored_and_returned_as_data(
        client, sign_up, meta):
    username, password, headers = sign_up()
    users_before = _table_count("users")
    profile = {"firstName": f"{meta}{uid()}", "lastName": meta, "email": f"{meta}@x.org",
               "phone": meta[:50]}
    response = client.put(f"/v2/user/{username}", json=profile, headers=headers)
    assert response.status_code == 200, response.json
    stored = client.get(f"/v2/user/{username}", headers=headers).json
    assert {key: stored[key] for key in profile} == profile
    # The password is taken literally too.
    changed = client.put(f"/v2/user/{username}", json={"password": meta,
                                                        "currentPassword": password},
                         headers=headers)
    assert changed.status_code == 200
    token = login(client, username, meta)
    assert client.get(f"/v2/user/{username}", headers={"api_key": token}).status_code == 200
    assert _table_count("users") == users_before


@pytest.mark.parametrize("meta", SQL_METAS)
def test_sql_metacharacters_in_credentials_log_no_one_in(client, sign_up, meta):
    username, _, _ = sign_up()
    wrong = client.get("/v2/user/login", query_string={"username": username, "password": meta})
    assert_json_error(wrong, 401)
    odd_name = client.get("/v2/user/login", query_string={"username": f"{username}{meta}",
                                                          "password": meta})
    assert odd_name.status_code in (401, 422) and odd_name.is_json
    signed = client.post("/v2/user", json={"username": f"{meta}{uid()}", "password": "p"})
    assert_json_error(signed, 422)


def test_a_username_with_a_wildcard_names_only_itself(client, owner, sign_up):
    username = sign_up()[0]
    for lookalike in (username[:-1] + "_", username[:-2] + "__", username[:-1] + "%"):
        response = client.get(f"/v2/user/{lookalike}", headers=owner)
        assert_json_error(response, 404)
    assert client.get(f"/v2/user/{username}", headers=owner).status_code == 200


# Uploads.


def _listed(pet_id: int) -> int:
    with unit_of_work() as session:
        photos = session.scalar(select(func.count()).select_from(Photo)
                                .where(Photo.pet_id == pet_id))
    return photos


def _files(app) -> set[str]:
    return {path.name for path in app.config["UPLOAD_DIR"].iterdir()}


@pytest.mark.parametrize("content", [
    b"#!/bin/sh\nrm -rf /\n", b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>",
    b"<html><script>alert(1)</script></html>", b"", b"\x89PN", b"%PDF-1.7\n",
], ids=["script", "svg", "html", "empty", "truncated-png", "pdf"])
def test_an_upload_that_is_not_an_image_is_refused_and_nothing_is_listed(
        app, client, owner, content):
    pet = add_pet(client, owner)
    files = _files(app)
    response = client.post(f"/v2/pet/{pet['id']}/uploadImage", headers=owner,
                           data={"file": (io.BytesIO(content), "cute.png")},
                           content_type="multipart/form-data")
    assert_json_error(response, 415)
    assert client.get(f"/v2/pet/{pet['id']}").json["photoUrls"] == []
    assert _listed(pet["id"]) == 0
    assert _files(app) == files


def test_an_upload_that_is_too_large_is_refused_and_nothing_is_listed(app, owner):
    client = app.test_client()
    pet = add_pet(client, owner)
    files = _files(app)
    big = PNG + b"\x00" * app.config["MAX_CONTENT_LENGTH"]
    response = client.post(f"/v2/pet/{pet['id']}/uploadImage", headers=owner,
                           data={"file": (io.BytesIO(big), "big.png")},
                           content_type="multipart/form-data")
    assert_json_error(response, 413)
    assert client.get(f"/v2/pet/{pet['id']}").json["photoUrls"] == []
    assert _listed(pet["id"]) == 0
    assert _files(app) == files


def test_only_the_owner_uploads(app, client, owner, customer):
    pet = add_pet(client, owner)
    files = _files(app)
    for headers, status in (({}, 401), (customer, 403)):
        response = client.post(f"/v2/pet/{pet['id']}/uploadImage", headers=headers,
                               data={"file": (io.BytesIO(PNG), "rex.png")},
                               content_type="multipart/form-data")
        assert_json_error(response, status)
    assert client.get(f"/v2/pet/{pet['id']}").json["photoUrls"] == []
    assert _files(app) == files


def test_an_uploaded_file_cannot_escape_the_upload_folder(client):
    for name in ("..%2fsecret", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2fapp.py"):
        response = client.get(f"/v2/images/{name}")
        assert response.status_code == 404, name


# The saga log is the owner's.


def test_a_customer_sees_only_their_own_sagas_and_anonymous_none(app, client, placed,
                                                                  customer):
    mine, order = placed
    # `client` holds the cookie of the last login (which counts for reads): a fresh one.
    anonymous = app.test_client()
    with unit_of_work() as session:
        saga_id = session.scalar(text(
            "SELECT id::text FROM sagas WHERE kind = 'create_order' "
            "AND (payload->>'order_id')::bigint = :id"), {"id": order["id"]})
    assert saga_id
    urls = ["/v2/sagas", "/v2/sagas?status=completed", f"/v2/sagas/{saga_id}",
            f"/v2/sagas/{uuid.uuid4()}"]
    for url in urls:
        assert_json_error(anonymous.get(url), 401)
        assert_json_error(anonymous.get(url, headers={"api_key": "garbage"}), 401)
    for url in urls[:2]:  # the list is the owner's
        assert_json_error(client.get(url, headers=mine), 403)
        assert_json_error(client.get(url, headers=customer), 403)
    # A saga is its customer's to read; to anyone else it does not exist (no oracle).
    assert client.get(urls[2], headers=mine).json["id"] == saga_id
    for url in urls[2:]:
        assert_json_error(client.get(url, headers=customer), 404)


def test_a_photo_task_never_touches_a_file_outside_the_upload_folder(tmp_path):
    """As if a message named a path (Flower's API or a forged message could send one)."""
    from workers import photos

    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    pet_id = 2**62 + uuid.uuid4().int % 2**40
    for name in (str(precious), f"../../../../../..{precious}"):
        photos.create_photos(pet_id, [{"url": f"http://img/{uuid.uuid4()}", "file_name": name}])
    photos.on_pet_deleted(event_id=str(uuid.uuid4()), event_type="PET_DELETED", pet_id=pet_id,
                          status=None, version=2)
    assert precious.read_text() == "keep me"
