"""Password hashing: salted, never the password itself, and hashes made at an older cost
keep working."""

from __future__ import annotations

import base64
import hashlib

import pytest

from models.user.passwords import hash_password, verify_password

# "old-password", as this store kept it when it hashed at a lower cost (scrypt n=2**10).
STORED_AT_AN_OLDER_COST = ("scrypt$1024$8$1$MDEyMzQ1Njc4OWFiY2RlZg==$JaL7YX/ECaPhB9JrruZt+WKd"
                           "oJZbG04zDXP0GTAf3hgK2CmCcqDVz+k7/4LA94vJvy3KGgvHkp5G8DfVuxHoag==")


def test_a_hash_does_not_contain_the_password():
    password = "correct-horse-battery-staple"
    stored = hash_password(password)
    assert password not in stored
    assert base64.b64encode(password.encode()).decode() not in stored


def test_the_same_password_hashes_differently_each_time():
    assert hash_password("same") != hash_password("same")


def test_the_right_password_verifies():
    assert verify_password("s3cret", hash_password("s3cret"))


def test_a_wrong_password_does_not_verify():
    stored = hash_password("s3cret")
    assert not verify_password("s3cret ", stored)
    assert not verify_password("S3cret", stored)
    assert not verify_password("", stored)


def test_non_ascii_passwords_round_trip():
    stored = hash_password("pässwörd-🐶")
    assert verify_password("pässwörd-🐶", stored)
    assert not verify_password("passwort-🐶", stored)


def test_a_hash_stored_at_an_older_cost_still_verifies():
    assert verify_password("old-password", STORED_AT_AN_OLDER_COST)
    assert not verify_password("new-password", STORED_AT_AN_OLDER_COST)


REAL = hash_password("anything")


@pytest.mark.parametrize("stored", [
    pytest.param("", id="empty"),
    pytest.param("nonsense", id="nonsense"),
    pytest.param(REAL[: len(REAL) // 2], id="cut-in-half"),
    pytest.param(REAL[:-4] + "!!!!", id="tampered-end"),
    pytest.param(REAL + "$extra", id="with-more-after"),
    pytest.param(REAL[::-1], id="reversed"),
])
def test_a_malformed_stored_hash_verifies_nothing(stored):
    assert verify_password("anything", stored) is False


def test_a_password_that_is_not_valid_unicode_verifies_nothing():
    assert verify_password("bad\ud800", hash_password("bad")) is False


def test_no_stored_hash_verifies_nothing():
    assert verify_password("anything", None) is False
    assert verify_password("", None) is False


def test_no_stored_hash_costs_the_same_scrypt_work_as_a_real_one(monkeypatch):
    """An unknown username must not answer faster than a wrong password: the same key
    derivations, with the same parameters."""
    stored = hash_password("s3cret")
    calls = []
    real = hashlib.scrypt

    def counting(password, **params):
        calls.append({name: value for name, value in params.items() if name != "salt"})
        return real(password, **params)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    assert not verify_password("guess", None)  # the first may prepare what it compares to
    calls.clear()
    assert not verify_password("guess", stored)
    wrong_password, calls[:] = list(calls), []
    assert not verify_password("guess", None)
    assert calls == wrong_password
    assert calls
