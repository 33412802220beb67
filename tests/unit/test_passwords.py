"""Password hashing: scrypt, salted, and never the password itself."""

from __future__ import annotations

import base64
import hashlib

import pytest

from models.user.passwords import dummy_hash, hash_password, verify_password


def test_a_hash_names_scrypt_and_its_parameters():
    stored = hash_password("correct horse")
    algorithm, n, r, p, salt, digest = stored.split("$")
    assert (algorithm, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert base64.b64decode(digest)


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


@pytest.mark.parametrize("stored", [
    "",
    "nonsense",
    "scrypt$16384$8$1$not base64!$also not",
    "scrypt$16384$8$1$onlyfive",
    "a$b$c$d$e$f$g",
])
def test_a_malformed_stored_hash_verifies_nothing(stored):
    assert verify_password("anything", stored) is False


def test_a_password_that_is_not_valid_unicode_verifies_nothing():
    assert verify_password("bad\ud800", hash_password("bad")) is False


def test_a_hash_made_with_other_scrypt_parameters_still_verifies():
    salt = b"0123456789abcdef"
    n, r, p = 2**10, 8, 1
    digest = hashlib.scrypt(b"old-password", salt=salt, n=n, r=r, p=p)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    stored = "$".join(("scrypt", str(n), str(r), str(p), *encoded))
    assert verify_password("old-password", stored)


def test_no_stored_hash_verifies_nothing():
    assert verify_password("anything", None) is False
    assert verify_password("", None) is False


def test_no_stored_hash_costs_the_same_scrypt_work_as_a_real_one(monkeypatch):
    """An unknown username must not answer faster than a wrong password."""
    stored = hash_password("s3cret")
    dummy_hash()  # made once; only the checks are compared
    calls = []
    real = hashlib.scrypt

    def counting(password, **params):
        calls.append((params["n"], params["r"], params["p"]))
        return real(password, **params)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    assert not verify_password("guess", stored)
    wrong_password, calls[:] = list(calls), []
    assert not verify_password("guess", None)
    assert calls == wrong_password == [(2**14, 8, 1)]


def test_the_dummy_hash_is_made_once_with_the_current_parameters():
    assert dummy_hash() is dummy_hash()
    assert dummy_hash().split("$")[:4] == hash_password("x").split("$")[:4]
