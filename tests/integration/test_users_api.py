"""The user operations under /v2/user, over the gateway, on real PostgreSQL and Redis."""

from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from models.db import unit_of_work
from models.user import LoginToken, User


def a_name(prefix: str = "user") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def an_address() -> str:
    """A client address of its own: the login limits count per address, in a Redis that
    the whole test session shares."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def a_profile(**overrides):
    return {"username": a_name(), "password": uuid.uuid4().hex, **overrides}


def stored(username: str) -> User | None:
    with unit_of_work() as session:
        return session.scalar(select(User).where(User.username == username))


def users_named_like(marker: str) -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(User)
                              .where(User.username.contains(marker)))


def assert_error(response, code: int) -> dict:
    assert response.status_code == code, (response.status_code, response.get_data(as_text=True))
    assert response.is_json, response.get_data(as_text=True)
    body = response.json
    assert body["code"] == code
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    return body


def log_in(client, username: str, password: str, **kwargs):
    return client.get("/v2/user/login",
                      query_string={"username": username, "password": password}, **kwargs)


def token_of(client, username: str, password: str) -> str:
    response = log_in(client, username, password)
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def anonymous(app):
    """A client with no cookies, from an address of its own: only what each request sends
    authenticates it."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = an_address()
    return client


# Signing up


def test_sign_up_creates_a_customer_and_never_returns_the_password(client):
    profile = a_profile(firstName="Ada", lastName="Lovelace", email="ada@example.com",
                        phone="+44 1234", userStatus=1)
    response = client.post("/v2/user", json=profile)
    assert response.status_code == 200, response.json
    body = response.json
    assert "password" not in body
    assert profile["password"] not in response.get_data(as_text=True)
    assert isinstance(body["id"], int)
    assert body["username"] == profile["username"]
    assert (body["firstName"], body["lastName"]) == ("Ada", "Lovelace")
    assert (body["email"], body["phone"], body["userStatus"]) == ("ada@example.com",
                                                                  "+44 1234", 1)
    user = stored(profile["username"])
    assert user is not None and user.role == "customer" and not user.is_owner


def test_sign_up_stores_only_a_scrypt_hash_of_the_password(client):
    profile = a_profile()
    assert client.post("/v2/user", json=profile).status_code == 200
    password_hash = stored(profile["username"]).password_hash
    assert password_hash.startswith("scrypt$")
    assert profile["password"] not in password_hash


def test_a_new_customer_can_log_in_with_their_password(client, anonymous):
    profile = a_profile()
    assert client.post("/v2/user", json=profile).status_code == 200
    assert log_in(anonymous, profile["username"], profile["password"]).status_code == 200


def test_signing_up_with_a_taken_username_is_a_conflict(client, sign_up):
    username, password, _ = sign_up()
    response = client.post("/v2/user", json={"username": username, "password": "other"})
    body = assert_error(response, 409)
    assert username in body["message"]
    assert log_in(client, username, password).status_code == 200


def test_signing_up_with_the_owners_username_is_a_conflict(client):
    from common.settings import get_settings

    owner_name, owner_password = get_settings().owner
    response = client.post("/v2/user", json={"username": owner_name, "password": "mine"})
    assert_error(response, 409)
    assert stored(owner_name).is_owner
    assert log_in(client, owner_name, owner_password).status_code == 200


def test_concurrent_sign_ups_of_one_username_make_one_account_and_conflicts(app):
    username = a_name()
    barrier = threading.Barrier(6)
    codes: list[int] = []

    def sign_up_once() -> None:
        client = app.test_client()
        barrier.wait()
        try:
            response = client.post("/v2/user",
                                   json={"username": username, "password": uuid.uuid4().hex})
        except Exception:  # TESTING propagates what production answers with a 500
            codes.append(500)
        else:
            codes.append(response.status_code)

    threads = [threading.Thread(target=sign_up_once) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] + [409] * 5


def test_sign_up_ignores_any_credentials_and_always_makes_a_customer(client, owner):
    profile = a_profile()
    assert client.post("/v2/user", json=profile, headers=owner).status_code == 200
    assert stored(profile["username"]).role == "customer"


# Bad input


@pytest.mark.parametrize("change", [
    pytest.param({"password": ""}, id="password-empty"),
    pytest.param({"username_suffix": " x"}, id="username-with-space"),
    pytest.param({"username_suffix": "\x00x"}, id="username-with-nul"),
    pytest.param({"username_suffix": "\ud800x"}, id="username-with-lone-surrogate"),
    pytest.param({"userStatus": "1"}, id="user-status-string"),
    pytest.param({"userStatus": 2**40}, id="user-status-too-big"),
    pytest.param({"firstName": "A\x00da"}, id="first-name-with-nul"),
    pytest.param({"id": 2**63}, id="id-beyond-int64"),
    pytest.param({"id": "5"}, id="id-string"),
])
def test_invalid_sign_ups_are_refused_with_422_and_write_nothing(client, change):
    marker = uuid.uuid4().hex[:12]
    profile = {"username": f"u{marker}", "password": "s3cret"}
    change = dict(change)
    profile["username"] += change.pop("username_suffix", "")
    profile.update(change)
    body = assert_error(client.post("/v2/user", json=profile), 422)
    assert body["errors"]
    assert users_named_like(marker) == 0


def test_a_sign_up_without_a_password_is_refused(client):
    username = a_name()
    body = assert_error(client.post("/v2/user", json={"username": username}), 400)
    assert "needs a username and a password" in body["message"]
    assert stored(username) is None


def test_a_sign_up_gets_the_id_its_client_chose_and_a_taken_one_is_a_409(client):
    chosen = random.randint(10**12, 2**62)
    profile = {"id": chosen, "username": a_name(), "password": "s3cret"}
    response = client.post("/v2/user", json=profile)
    assert response.status_code == 200, response.json
    assert response.json["id"] == chosen
    again = {**profile, "username": a_name()}
    body = assert_error(client.post("/v2/user", json=again), 409)
    assert f"User {chosen} already exists" in body["message"]
    assert stored(again["username"]) is None


def test_fields_the_spec_does_not_know_are_ignored_so_no_one_signs_up_as_owner(client):
    profile = {"username": a_name(), "password": "s3cret", "role": "owner"}
    assert client.post("/v2/user", json=profile).status_code == 200
    assert stored(profile["username"]).role == "customer"


def test_the_very_profile_a_get_returns_can_be_put_back(sign_up, anonymous):
    username, _, headers = sign_up()
    fetched = anonymous.get(f"/v2/user/{username}", headers=headers).json
    response = anonymous.put(f"/v2/user/{username}", json=fetched, headers=headers)
    assert response.status_code == 200, response.json
    assert response.json == fetched


def test_an_accounts_id_cannot_change(sign_up, anonymous):
    username, _, headers = sign_up()
    fetched = anonymous.get(f"/v2/user/{username}", headers=headers).json
    changed = {**fetched, "id": fetched["id"] + 1}
    body = assert_error(anonymous.put(f"/v2/user/{username}", json=changed, headers=headers),
                        409)
    assert "cannot change" in body["message"]


def test_a_sign_up_body_that_is_not_json_is_refused(client):
    marker = uuid.uuid4().hex[:12]
    response = client.post("/v2/user", data=f"username=u{marker}&password=s3cret",
                           content_type="application/x-www-form-urlencoded")
    assert_error(response, 400)
    text = json.dumps({"username": f"u{marker}", "password": "s3cret"})
    response = client.post("/v2/user", data=text, content_type="text/plain")
    assert_error(response, 400)
    assert users_named_like(marker) == 0


def test_a_sign_up_body_of_malformed_json_is_a_bad_request(client):
    marker = uuid.uuid4().hex[:12]
    truncated = json.dumps({"username": f"u{marker}", "password": "s3cret"})[:-10]
    response = client.post("/v2/user", data=truncated, content_type="application/json")
    assert_error(response, 400)
    assert users_named_like(marker) == 0


@pytest.mark.parametrize("body", ["[]", '"alice"', "7", "null"])
def test_a_sign_up_body_that_is_not_an_object_is_refused(client, body):
    response = client.post("/v2/user", data=body, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.json["code"] == response.status_code


def test_a_username_with_a_trailing_newline_is_refused(client):
    username = a_name()
    response = client.post("/v2/user", json={"username": username + "\n", "password": "pw"})
    assert_error(response, 422)
    assert stored(username + "\n") is None


# Logging in


def test_login_returns_a_json_string_token_with_rate_and_expiry_headers(app, sign_up,
                                                                        anonymous):
    username, password, _ = sign_up()
    before = datetime.now(UTC)
    response = log_in(anonymous, username, password)
    assert response.status_code == 200
    assert response.is_json
    token = response.json
    assert isinstance(token, str) and len(token) >= 32
    assert response.headers["X-Rate-Limit"] == str(app.config["LOGIN_ATTEMPTS_PER_HOUR"])
    expires = datetime.fromisoformat(response.headers["X-Expires-After"])
    ttl = timedelta(seconds=app.config["TOKEN_TTL_SECONDS"])
    assert before + ttl - timedelta(seconds=5) <= expires <= datetime.now(UTC) + ttl


def test_login_sets_an_http_only_strict_auth_key_cookie(sign_up, anonymous):
    username, password, _ = sign_up()
    response = log_in(anonymous, username, password)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"AUTH_KEY={response.json};")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Expires=" in cookie


def test_each_login_gives_a_new_token(sign_up, anonymous):
    username, password, _ = sign_up()
    assert token_of(anonymous, username, password) != token_of(anonymous, username, password)


def test_the_token_works_in_the_api_key_header(sign_up, anonymous):
    username, password, _ = sign_up()
    token = token_of(anonymous, username, password)
    fresh = anonymous.application.test_client()
    response = fresh.get(f"/v2/user/{username}", headers={"api_key": token})
    assert response.status_code == 200
    assert response.json["username"] == username


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_the_token_works_as_a_bearer_token(sign_up, app, scheme):
    username, password, _ = sign_up()
    token = token_of(app.test_client(), username, password)
    response = app.test_client().get(f"/v2/user/{username}",
                                     headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200
    assert response.json["username"] == username


def test_the_cookie_authenticates_reads_but_not_writes(sign_up, anonymous):
    username, password, _ = sign_up()
    assert log_in(anonymous, username, password).status_code == 200
    assert anonymous.get(f"/v2/user/{username}").status_code == 200
    response = anonymous.put(f"/v2/user/{username}", json={"firstName": "Mallory"})
    assert_error(response, 401)
    assert anonymous.delete(f"/v2/user/{username}").status_code == 401
    assert stored(username).first_name is None


def test_a_wrong_password_is_unauthorized(sign_up, anonymous):
    username, password, _ = sign_up()
    body = assert_error(log_in(anonymous, username, password + "x"), 401)
    assert password not in body["message"]
    assert "Set-Cookie" not in log_in(anonymous, username, "nope").headers


def test_an_unknown_username_gets_the_same_answer_as_a_wrong_password(sign_up, anonymous):
    username, _, _ = sign_up()
    wrong_password = assert_error(log_in(anonymous, username, "nope"), 401)
    unknown_user = assert_error(log_in(anonymous, a_name(), "nope"), 401)
    assert wrong_password == unknown_user


def test_login_needs_both_username_and_password(anonymous):
    assert_error(anonymous.get("/v2/user/login", query_string={"username": a_name()}), 422)
    assert_error(anonymous.get("/v2/user/login", query_string={"password": "x"}), 422)


@pytest.mark.parametrize("token", ["", "garbage", "x" * 500, "Bearer"])
def test_a_made_up_token_is_unauthorized(sign_up, anonymous, token):
    username, _, _ = sign_up()
    assert_error(anonymous.get(f"/v2/user/{username}", headers={"api_key": token}), 401)
    assert_error(anonymous.get(f"/v2/user/{username}",
                               headers={"Authorization": f"Bearer {token}"}), 401)


def test_no_credentials_at_all_is_unauthorized(sign_up, anonymous):
    username, _, _ = sign_up()
    body = assert_error(anonymous.get(f"/v2/user/{username}"), 401)
    assert "login" in body["message"]


# Logging out and token lifetime


def test_logout_revokes_the_token(sign_up, anonymous):
    username, _, headers = sign_up()
    assert anonymous.get(f"/v2/user/{username}", headers=headers).status_code == 200
    response = anonymous.get("/v2/user/logout", headers=headers)
    assert response.status_code == 204
    assert_error(anonymous.get(f"/v2/user/{username}", headers=headers), 401)
    assert_error(anonymous.get("/v2/user/logout", headers=headers), 401)


def test_logout_ends_only_the_session_it_is_called_with(sign_up, anonymous):
    username, password, first = sign_up()
    second = {"api_key": token_of(anonymous, username, password)}
    assert anonymous.get("/v2/user/logout", headers=first).status_code == 204
    assert anonymous.get(f"/v2/user/{username}", headers=first).status_code == 401
    assert anonymous.get(f"/v2/user/{username}", headers=second).status_code == 200


def test_logout_with_a_bearer_token_revokes_it(sign_up, anonymous):
    username, _, headers = sign_up()
    bearer = {"Authorization": f"Bearer {headers['api_key']}"}
    assert anonymous.get("/v2/user/logout", headers=bearer).status_code == 204
    assert_error(anonymous.get(f"/v2/user/{username}", headers=headers), 401)


def test_logout_without_a_token_is_unauthorized(anonymous):
    assert_error(anonymous.get("/v2/user/logout"), 401)


def test_an_expired_token_is_refused(sign_up, anonymous):
    username, password, headers = sign_up()
    user_id = stored(username).id
    with unit_of_work() as session:
        expired = session.execute(
            update(LoginToken).where(LoginToken.user_id == user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert expired.rowcount >= 1
    assert_error(anonymous.get(f"/v2/user/{username}", headers=headers), 401)
    fresh = {"api_key": token_of(anonymous, username, password)}
    assert anonymous.get(f"/v2/user/{username}", headers=fresh).status_code == 200


def test_only_a_hash_of_the_token_is_stored(sign_up):
    username, _, headers = sign_up()
    with unit_of_work() as session:
        hashes = session.scalars(select(LoginToken.token_hash).join(User)
                                 .where(User.username == username)).all()
    assert hashes
    assert headers["api_key"] not in hashes


# Rate limiting


def signed_up(client) -> tuple[str, str]:
    """A new customer that has not logged in yet, so no login attempt is counted."""
    profile = a_profile()
    assert client.post("/v2/user", json=profile).status_code == 200
    return profile["username"], profile["password"]


@pytest.fixture(scope="module")
def limited_app():
    from web import create_app

    return create_app({"TESTING": True, "LOGIN_ATTEMPTS_PER_HOUR": 3})


@pytest.fixture
def limited(limited_app):
    """A client of the limited app, from an address of its own."""
    client = limited_app.test_client()
    client.environ_base["REMOTE_ADDR"] = an_address()
    return client


def test_failed_logins_beyond_the_hourly_limit_get_429_with_retry_after(limited):
    username, password = signed_up(limited)
    for _ in range(3):
        assert log_in(limited, username, "wrong").status_code == 401
    response = log_in(limited, username, password)
    body = assert_error(response, 429)
    assert "Set-Cookie" not in response.headers
    assert body["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    assert log_in(limited, username, password).status_code == 429


def test_successful_logins_are_not_counted(limited):
    username, password = signed_up(limited)
    codes = [log_in(limited, username, password).status_code for _ in range(5)]
    assert codes == [200] * 5
    assert log_in(limited, username, "wrong").status_code == 401


def test_the_login_limit_is_reported_in_x_rate_limit(limited):
    response = log_in(limited, *signed_up(limited))
    assert response.headers["X-Rate-Limit"] == "3"


def test_the_login_limit_counts_per_username_and_address(limited):
    alice, alice_password = signed_up(limited)
    bob, bob_password = signed_up(limited)
    here = {"environ_base": {"REMOTE_ADDR": an_address()}}
    there = {"environ_base": {"REMOTE_ADDR": an_address()}}
    for _ in range(3):
        assert log_in(limited, alice, "wrong", **here).status_code == 401
    assert log_in(limited, alice, alice_password, **here).status_code == 429
    assert log_in(limited, alice, alice_password, **there).status_code == 200
    assert log_in(limited, bob, bob_password, **here).status_code == 200


def test_the_login_limit_holds_for_unknown_usernames_too(limited):
    username = a_name()
    codes = [log_in(limited, username, "guess").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]


# Reading, changing and deleting accounts


def test_a_user_reads_their_own_account_without_the_password(sign_up, anonymous):
    username, password, headers = sign_up()
    response = anonymous.get(f"/v2/user/{username}", headers=headers)
    assert response.status_code == 200
    assert response.json["username"] == username
    assert "password" not in response.json
    assert password not in response.get_data(as_text=True)


def test_a_user_may_not_read_another_users_account(sign_up, anonymous):
    alice, _, _ = sign_up()
    _, _, bob = sign_up()
    body = assert_error(anonymous.get(f"/v2/user/{alice}", headers=bob), 403)
    assert alice not in str(body.get("errors", ""))


def test_the_owner_reads_any_account(sign_up, anonymous, owner):
    username, _, _ = sign_up()
    response = anonymous.get(f"/v2/user/{username}", headers=owner)
    assert response.status_code == 200
    assert response.json["username"] == username


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_the_owner_gets_404_for_an_unknown_user(anonymous, owner, method):
    username = a_name()
    kwargs = {"json": {"firstName": "X"}} if method == "put" else {}
    response = getattr(anonymous, method)(f"/v2/user/{username}", headers=owner, **kwargs)
    body = assert_error(response, 404)
    assert username in body["message"]
    assert stored(username) is None


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_account_operations_need_a_login(sign_up, anonymous, method):
    username, _, _ = sign_up()
    kwargs = {"json": {"firstName": "X"}} if method == "put" else {}
    assert_error(getattr(anonymous, method)(f"/v2/user/{username}", **kwargs), 401)
    assert stored(username) is not None


def test_a_user_changes_their_own_profile(sign_up, anonymous):
    username, password, headers = sign_up()
    changes = {"firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com",
               "phone": "555", "userStatus": 2}
    response = anonymous.put(f"/v2/user/{username}", json=changes, headers=headers)
    assert response.status_code == 200, response.json
    assert {k: response.json[k] for k in changes} == changes
    assert "password" not in response.json
    read = anonymous.get(f"/v2/user/{username}", headers=headers).json
    assert {k: read[k] for k in changes} == changes
    assert log_in(anonymous, username, password).status_code == 200


def test_a_partial_update_leaves_other_fields_alone(sign_up, anonymous):
    username, _, headers = sign_up()
    anonymous.put(f"/v2/user/{username}", json={"firstName": "A", "lastName": "B"},
                  headers=headers)
    response = anonymous.put(f"/v2/user/{username}", json={"lastName": "C"}, headers=headers)
    assert (response.json["firstName"], response.json["lastName"]) == ("A", "C")


def test_a_user_may_not_change_another_users_account(sign_up, anonymous):
    alice, alice_password, _ = sign_up()
    _, _, bob = sign_up()
    response = anonymous.put(f"/v2/user/{alice}", json={"password": "stolen",
                                                         "firstName": "Bob"}, headers=bob)
    assert_error(response, 403)
    assert stored(alice).first_name is None
    assert log_in(anonymous, alice, alice_password).status_code == 200


def test_the_owner_changes_any_account(sign_up, anonymous, owner):
    username, _, headers = sign_up()
    response = anonymous.put(f"/v2/user/{username}", json={"firstName": "Set by owner"},
                             headers=owner)
    assert response.status_code == 200
    assert stored(username).first_name == "Set by owner"
    assert stored(username).role == "customer"
    assert anonymous.get(f"/v2/user/{username}", headers=headers).status_code == 200


def test_changing_the_password_revokes_old_tokens(sign_up, anonymous):
    username, old_password, headers = sign_up()
    other_session = {"api_key": token_of(anonymous, username, old_password)}
    response = anonymous.put(f"/v2/user/{username}", json={
        "password": "brand-new-secret", "currentPassword": old_password}, headers=headers)
    assert response.status_code == 200
    assert_error(anonymous.get(f"/v2/user/{username}", headers=headers), 401)
    assert_error(anonymous.get(f"/v2/user/{username}", headers=other_session), 401)
    assert_error(log_in(anonymous, username, old_password), 401)
    fresh = {"api_key": token_of(anonymous, username, "brand-new-secret")}
    assert anonymous.get(f"/v2/user/{username}", headers=fresh).status_code == 200


def test_a_new_password_is_stored_hashed(sign_up, anonymous):
    username, password, headers = sign_up()
    response = anonymous.put(f"/v2/user/{username}", json={
        "password": "another-secret", "currentPassword": password}, headers=headers)
    assert response.status_code == 200, response.json
    password_hash = stored(username).password_hash
    assert password_hash.startswith("scrypt$")
    assert "another-secret" not in password_hash


def test_the_owner_resetting_a_password_logs_the_user_out(sign_up, anonymous, owner):
    username, _, headers = sign_up()
    response = anonymous.put(f"/v2/user/{username}", json={"password": "reset-by-owner"},
                             headers=owner)
    assert response.status_code == 200
    assert_error(anonymous.get(f"/v2/user/{username}", headers=headers), 401)
    assert anonymous.get(f"/v2/user/{username}", headers=owner).status_code == 200
    assert log_in(anonymous, username, "reset-by-owner").status_code == 200


def test_changing_other_fields_keeps_the_session(sign_up, anonymous):
    username, _, headers = sign_up()
    anonymous.put(f"/v2/user/{username}", json={"phone": "123"}, headers=headers)
    assert anonymous.get(f"/v2/user/{username}", headers=headers).status_code == 200


def test_a_user_may_rename_themselves_and_keep_their_session(sign_up, anonymous):
    username, password, headers = sign_up()
    new_name = a_name()
    response = anonymous.put(f"/v2/user/{username}", json={"username": new_name},
                             headers=headers)
    assert response.status_code == 200
    assert response.json["username"] == new_name
    assert stored(username) is None
    assert anonymous.get(f"/v2/user/{new_name}", headers=headers).status_code == 200
    assert log_in(anonymous, new_name, password).status_code == 200


def test_renaming_to_a_taken_username_is_a_conflict(sign_up, anonymous):
    alice, _, alice_headers = sign_up()
    bob, _, _ = sign_up()
    response = anonymous.put(f"/v2/user/{alice}", json={"username": bob, "firstName": "X"},
                             headers=alice_headers)
    body = assert_error(response, 409)
    assert bob in body["message"]
    assert stored(alice).first_name is None
    assert stored(bob) is not None


def test_renaming_to_ones_own_username_is_fine(sign_up, anonymous):
    username, _, headers = sign_up()
    response = anonymous.put(f"/v2/user/{username}", json={"username": username},
                             headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("changes", [
    {"password": ""},
    {"username": "has space"},
    {"username": "nul\x00byte"},
    {"userStatus": "2"},
    {"firstName": "x" * 201},
])
def test_invalid_changes_are_refused_and_nothing_changes(sign_up, anonymous, changes):
    username, password, headers = sign_up()
    body = assert_error(anonymous.put(f"/v2/user/{username}", json=changes, headers=headers),
                        422)
    assert body["errors"]
    user = stored(username)
    assert user is not None and user.role == "customer"
    assert user.user_status is None and user.first_name is None
    assert anonymous.get(f"/v2/user/{username}", headers=headers).status_code == 200
    assert log_in(anonymous, username, password).status_code == 200


def test_a_user_deletes_their_own_account(sign_up, anonymous, owner):
    username, password, headers = sign_up()
    response = anonymous.delete(f"/v2/user/{username}", headers=headers)
    assert response.status_code == 204
    assert stored(username) is None
    assert_error(anonymous.get(f"/v2/user/{username}", headers=headers), 401)
    assert_error(anonymous.get(f"/v2/user/{username}", headers=owner), 404)
    assert_error(log_in(anonymous, username, password), 401)


def test_a_user_may_not_delete_another_users_account(sign_up, anonymous):
    alice, _, alice_headers = sign_up()
    _, _, bob = sign_up()
    assert_error(anonymous.delete(f"/v2/user/{alice}", headers=bob), 403)
    assert stored(alice) is not None
    assert anonymous.get(f"/v2/user/{alice}", headers=alice_headers).status_code == 200


def test_the_owner_deletes_any_account(sign_up, anonymous, owner):
    username, _, headers = sign_up()
    assert anonymous.delete(f"/v2/user/{username}", headers=owner).status_code == 204
    assert stored(username) is None
    assert_error(anonymous.get(f"/v2/user/{username}", headers=headers), 401)


def test_a_deleted_username_can_be_signed_up_again_without_the_old_sessions(sign_up,
                                                                           anonymous):
    username, _, old_headers = sign_up()
    anonymous.delete(f"/v2/user/{username}", headers=old_headers)
    assert anonymous.post("/v2/user", json={"username": username,
                                            "password": "new"}).status_code == 200
    assert_error(anonymous.get(f"/v2/user/{username}", headers=old_headers), 401)


# Creating users in bulk


BULK = ["/v2/user/createWithArray", "/v2/user/createWithList"]


@pytest.mark.parametrize("path", BULK)
def test_the_owner_creates_many_customers_at_once(anonymous, owner, path):
    profiles = [a_profile(firstName=f"n{i}") for i in range(3)]
    response = anonymous.post(path, json=profiles, headers=owner)
    assert response.status_code == 200, response.json
    assert [u["username"] for u in response.json] == [p["username"] for p in profiles]
    assert all("password" not in u for u in response.json)
    for profile in profiles:
        user = stored(profile["username"])
        assert user.role == "customer"
        assert user.password_hash.startswith("scrypt$")
        assert profile["password"] not in user.password_hash
        assert log_in(anonymous, profile["username"], profile["password"]).status_code == 200


@pytest.mark.parametrize("path", BULK)
def test_bulk_creation_is_forbidden_to_customers(anonymous, customer, path):
    profiles = [a_profile()]
    assert_error(anonymous.post(path, json=profiles, headers=customer), 403)
    assert stored(profiles[0]["username"]) is None


@pytest.mark.parametrize("path", BULK)
def test_bulk_creation_needs_a_login(anonymous, path):
    profiles = [a_profile()]
    assert_error(anonymous.post(path, json=profiles), 401)
    assert stored(profiles[0]["username"]) is None


@pytest.mark.parametrize("path", BULK)
def test_a_bulk_list_with_one_taken_username_creates_none(anonymous, owner, sign_up, path):
    taken, _, _ = sign_up()
    profiles = [a_profile(), a_profile(username=taken), a_profile()]
    body = assert_error(anonymous.post(path, json=profiles, headers=owner), 409)
    assert taken in body["message"]
    assert stored(profiles[0]["username"]) is None
    assert stored(profiles[2]["username"]) is None


@pytest.mark.parametrize("path", BULK)
def test_a_bulk_list_repeating_a_username_creates_none(anonymous, owner, path):
    first, other = a_profile(), a_profile()
    profiles = [first, other, a_profile(username=first["username"])]
    assert_error(anonymous.post(path, json=profiles, headers=owner), 409)
    assert stored(first["username"]) is None
    assert stored(other["username"]) is None


@pytest.mark.parametrize("path", BULK)
def test_a_bulk_list_with_one_invalid_profile_creates_none(anonymous, owner, path):
    good = a_profile()
    body = assert_error(anonymous.post(path, json=[good, {"username": a_name()}],
                                       headers=owner), 400)
    assert "needs a username and a password" in body["message"]
    assert stored(good["username"]) is None


@pytest.mark.parametrize("path", BULK)
def test_a_bulk_body_must_be_a_list(anonymous, owner, path):
    profile = a_profile()
    response = anonymous.post(path, json=profile, headers=owner)
    assert_error(response, 422)
    assert stored(profile["username"]) is None


@pytest.mark.parametrize("path", BULK)
def test_an_empty_bulk_list_creates_nothing(anonymous, owner, path):
    response = anonymous.post(path, json=[], headers=owner)
    assert response.status_code == 200
    assert response.json == []


def test_bulk_creation_never_makes_an_owner(anonymous, owner):
    profiles = [a_profile(), a_profile()]
    assert anonymous.post(BULK[0], json=profiles, headers=owner).status_code == 200
    for profile in profiles:
        headers = {"api_key": token_of(anonymous, profile["username"], profile["password"])}
        assert_error(anonymous.post(BULK[0], json=[a_profile()], headers=headers), 403)
