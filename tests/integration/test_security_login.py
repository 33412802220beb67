"""What a security probe of logins, passwords and accounts found, each as the request that
showed it and the answer the store now gives.

The limits count per client address in a Redis that the whole test session shares, so
every test sends from addresses of its own.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid

import pytest
from sqlalchemy import select, text

from common.settings import get_settings
from models.db import unit_of_work
from models.user import User, UsernameTaken, create_users
from web.auth import COOKIE

PASSWORD_HINT = "currentPassword"


def an_address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def a_name() -> str:
    return f"user{uuid.uuid4().hex[:12]}"


def client_of(app, address: str | None = None):
    """A test client without cookies that sends from `address` (a fresh one by default)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address or an_address()
    return client


def log_in(client, username: str, password: str, **kwargs):
    return client.get("/v2/user/login", query_string={"username": username,
                                                      "password": password}, **kwargs)


def signed_up(client) -> tuple[str, str]:
    username, password = a_name(), uuid.uuid4().hex
    response = client.post("/v2/user", json={"username": username, "password": password})
    assert response.status_code == 200, response.json
    return username, password


def token(client, username: str, password: str) -> dict[str, str]:
    response = log_in(client, username, password)
    assert response.status_code == 200, response.json
    return {"api_key": response.json}


def assert_error(response, code: int) -> dict:
    assert response.status_code == code, (response.status_code, response.get_data(as_text=True))
    assert response.is_json and response.json["code"] == code
    assert response.json["message"]
    return response.json


def assert_too_many(response) -> None:
    assert_error(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    assert "Set-Cookie" not in response.headers


def stored(username: str) -> User | None:
    with unit_of_work() as session:
        return session.scalar(select(User).where(User.username == username))


@pytest.fixture
def spray_app():
    """Five failed logins per address over all names; twenty per address and name."""
    from web import create_app

    return create_app({"TESTING": True, "LOGIN_FAILURES_PER_ADDRESS": 5,
                       "LOGIN_ATTEMPTS_PER_HOUR": 20})


# Nobody locks the owner out.


def test_the_owner_logs_in_from_their_address_after_100_failures_from_another(app):
    owner_name, owner_password = get_settings().owner
    attacker = client_of(app)
    codes = [log_in(attacker, owner_name, f"guess-{i}").status_code for i in range(100)]
    limit = app.config["LOGIN_ATTEMPTS_PER_HOUR"]
    assert codes == [401] * limit + [429] * (100 - limit)
    assert_too_many(log_in(attacker, owner_name, owner_password))
    assert log_in(client_of(app), owner_name, owner_password).status_code == 200


def test_successful_logins_are_not_counted(app):
    client = client_of(app)
    username, password = signed_up(client)
    assert app.config["LOGIN_ATTEMPTS_PER_HOUR"] < 30
    codes = [log_in(client, username, password).status_code for _ in range(30)]
    assert codes == [200] * 30


def test_one_password_sprayed_over_many_names_is_refused_once_the_address_budget_is_spent(
        spray_app):
    sprayer, elsewhere = client_of(spray_app), client_of(spray_app)
    victim, victim_password = signed_up(elsewhere)
    names = [victim] + [a_name() for _ in range(4)]
    assert [log_in(sprayer, name, "Summer2024!").status_code for name in names] == [401] * 5
    assert_too_many(log_in(sprayer, a_name(), "Summer2024!"))
    assert_too_many(log_in(sprayer, victim, victim_password))
    assert log_in(elsewhere, victim, victim_password).status_code == 200


# A login's work does not say whether a name exists.


def test_an_unknown_name_costs_the_same_scrypt_work_as_a_wrong_password(app, monkeypatch):
    client = client_of(app)
    username, _ = signed_up(client)
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(password, **params):
        calls.append((params["n"], params["r"], params["p"]))
        return real(password, **params)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    assert_error(log_in(client, username, "wrong"), 401)
    wrong_password, calls[:] = list(calls), []
    assert_error(log_in(client, a_name(), "wrong"), 401)
    assert calls == wrong_password
    assert len(calls) == 1


# A new password for one's own account needs the current one.


@pytest.fixture
def account(app):
    """(client, username, password, headers of one session, headers of another)."""
    client = client_of(app)
    username, password = signed_up(client)
    return client, username, password, token(client, username, password), token(
        client, username, password)


@pytest.mark.parametrize("current", [None, "", "wrong-password"], ids=["none", "empty", "wrong"])
def test_a_new_password_without_the_right_current_one_is_refused_and_changes_nothing(
        account, current):
    client, username, password, headers, other = account
    body = {"password": "taken-over", "firstName": "Mallory"}
    if current is not None:
        body[PASSWORD_HINT] = current
    refused = assert_error(client.put(f"/v2/user/{username}", json=body, headers=headers), 403)
    assert PASSWORD_HINT in refused["message"]
    assert stored(username).first_name is None
    for session in (headers, other):
        assert client.get(f"/v2/user/{username}", headers=session).status_code == 200
    assert log_in(client, username, password).status_code == 200
    assert_error(log_in(client, username, "taken-over"), 401)


def test_a_new_password_with_the_right_current_one_is_set(account):
    client, username, password, headers, other = account
    response = client.put(f"/v2/user/{username}", headers=headers, json={
        "password": "brand-new", PASSWORD_HINT: password, "firstName": "Ann"})
    assert response.status_code == 200, response.json
    assert PASSWORD_HINT not in response.json and "password" not in response.json
    assert stored(username).first_name == "Ann"
    assert_error(log_in(client, username, password), 401)
    assert log_in(client, username, "brand-new").status_code == 200
    assert_error(client.get(f"/v2/user/{username}", headers=other), 401)


def test_other_changes_need_no_current_password(account):
    client, username, _, headers, _ = account
    response = client.put(f"/v2/user/{username}", json={"phone": "555"}, headers=headers)
    assert response.status_code == 200
    assert response.json["phone"] == "555"


def test_the_owner_resets_a_customers_password_without_theirs(owner, account):
    client, username, password, headers, _ = account
    response = client.put(f"/v2/user/{username}", json={"password": "reset"}, headers=owner)
    assert response.status_code == 200, response.json
    assert log_in(client, username, "reset").status_code == 200
    assert_error(log_in(client, username, password), 401)
    assert_error(client.get(f"/v2/user/{username}", headers=headers), 401)


def test_the_owner_too_needs_their_current_password_for_their_own(app, owner):
    owner_name = get_settings().owner[0]
    client = client_of(app)
    url = f"/v2/user/{owner_name}"
    assert_error(client.put(url, json={"password": "mine-now"}, headers=owner), 403)
    assert client.get(url, headers=owner).status_code == 200


def test_wrong_current_passwords_count_as_failed_logins():
    from web import create_app

    app = create_app({"TESTING": True, "LOGIN_ATTEMPTS_PER_HOUR": 2})
    guesser = client_of(app)
    username, password = signed_up(guesser)
    headers = token(guesser, username, password)
    url = f"/v2/user/{username}"
    for guess in ("guess-1", "guess-2"):
        assert_error(guesser.put(url, json={"password": "x", PASSWORD_HINT: guess},
                                 headers=headers), 403)
    assert_too_many(guesser.put(url, json={"password": "x", PASSWORD_HINT: password},
                                headers=headers))
    assert_too_many(log_in(guesser, username, password))
    assert log_in(client_of(app), username, password).status_code == 200


# Usernames are unique without regard to case.


def case_variants(name: str) -> list[str]:
    return [variant for variant in {name.upper(), name.capitalize(), name.swapcase(),
                                    name[:-1] + name[-1].upper()} if variant != name]


def test_the_owners_name_in_another_case_is_taken(app):
    client = client_of(app)
    owner_name = get_settings().owner[0]
    for variant in case_variants(owner_name):
        body = assert_error(client.post("/v2/user", json={"username": variant,
                                                          "password": "mine"}), 409)
        assert variant in body["message"]
        assert stored(variant) is None


def test_a_name_in_another_case_is_taken_at_sign_up_in_bulk_and_on_rename(app, owner):
    client = client_of(app)
    name, _ = signed_up(client)
    other, other_password = signed_up(client)
    other_headers = token(client, other, other_password)
    for variant in case_variants(name):
        assert_error(client.post("/v2/user", json={"username": variant, "password": "p"}), 409)
        assert_error(client.post("/v2/user/createWithArray", headers=owner,
                                 json=[{"username": variant, "password": "p"}]), 409)
        assert_error(client.put(f"/v2/user/{other}", json={"username": variant},
                                headers=other_headers), 409)
        assert stored(variant) is None
    fresh = a_name()
    assert_error(client.post("/v2/user/createWithList", headers=owner, json=[
        {"username": fresh, "password": "p"}, {"username": fresh.upper(), "password": "p"}]),
        409)
    assert stored(fresh) is None


def test_renaming_oneself_to_another_case_of_ones_own_name_is_fine(app):
    client = client_of(app)
    name, password = signed_up(client)
    response = client.put(f"/v2/user/{name}", json={"username": name.upper()},
                          headers=token(client, name, password))
    assert response.status_code == 200
    assert response.json["username"] == name.upper()


def test_lookups_are_exact(app):
    """With one spelling per account, another case names no one."""
    client = client_of(app)
    name, password = signed_up(client)
    assert_error(log_in(client, name.upper(), password), 401)


def test_a_case_variant_inserted_meanwhile_is_username_taken_not_an_error():
    """The database's index refuses what a concurrent sign-up's check could not see."""
    name = a_name()
    outcome: list[Exception | None] = []

    def sign_up_variant() -> None:
        try:
            with unit_of_work() as session:
                create_users(session, [{"username": name.upper(), "password": "p"}])
        except Exception as exc:  # the test reads what was raised
            outcome.append(exc)
        else:
            outcome.append(None)

    with unit_of_work() as first:
        first.add(User(username=name, password_hash="x"))
        first.flush()
        pid = first.scalar(text("SELECT pg_backend_pid()"))
        variant = threading.Thread(target=sign_up_variant)
        variant.start()
        _wait_until_blocked_by(pid)
    variant.join()
    assert len(outcome) == 1 and isinstance(outcome[0], UsernameTaken), outcome
    assert stored(name.upper()) is None


def _wait_until_blocked_by(pid: int) -> None:
    """Until another transaction waits for `pid`'s, as the variant's insert does."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    for _ in range(1000):
        with unit_of_work() as session:
            if session.scalar(query, {"pid": pid}):
                return
        time.sleep(0.01)
    raise AssertionError("the concurrent insert never waited for the first one")


# Sign-up is limited per address.


def test_sign_ups_beyond_the_hourly_limit_get_429():
    from web import create_app

    limited = create_app({"TESTING": True, "SIGNUPS_PER_HOUR": 2})
    client = client_of(limited)
    taken, _ = signed_up(client)
    # A refused attempt counts too: each one may cost a scrypt hash.
    assert_error(client.post("/v2/user", json={"username": taken, "password": "p"}), 409)
    name = a_name()
    assert_too_many(client.post("/v2/user", json={"username": name, "password": "p"}))
    assert stored(name) is None
    elsewhere = client_of(limited).post("/v2/user", json={"username": name, "password": "p"})
    assert elsewhere.status_code == 200


# Logging out needs the token in a header.


def test_a_cookie_alone_does_not_log_out(app):
    client = client_of(app)
    username, password = signed_up(client)
    headers = token(client, username, password)  # the login also set the cookie
    assert client.get_cookie(COOKIE) is not None
    assert_error(client.get("/v2/user/logout"), 401)
    assert client.get(f"/v2/user/{username}", headers=headers).status_code == 200
    assert client.get(f"/v2/user/{username}").status_code == 200  # the cookie still reads


def test_logging_out_with_the_header_ends_the_token(app):
    client = client_of(app)
    username, password = signed_up(client)
    headers = token(client, username, password)
    assert client.get("/v2/user/logout", headers=headers).status_code == 204
    assert_error(client.get(f"/v2/user/{username}", headers=headers), 401)


# Answers about accounts stay out of caches.


def test_login_and_account_answers_are_not_stored_by_caches(app):
    client = client_of(app)
    username, password = signed_up(client)
    answers = [log_in(client, username, password), log_in(client, username, "wrong")]
    answers.append(client.get(f"/v2/user/{username}", headers={"api_key": answers[0].json}))
    assert [answer.status_code for answer in answers] == [200, 401, 200]
    for answer in answers:
        assert "no-store" in answer.headers["Cache-Control"]
