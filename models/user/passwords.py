"""Password hashing with scrypt from the standard library; plain passwords never persist."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

# n=2**14, r=8, p=1: the parameters RFC 7914 and OWASP suggest for interactive logins.
N, R, P = 2**14, 8, 1


def _scrypt(password: str, salt: bytes, n: int = N, r: int = R, p: int = P) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt)
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return "$".join(("scrypt", str(N), str(R), str(P), *encoded))


@cache
def dummy_hash() -> str:
    """A hash of no one's password, made once with the current parameters: checking a
    password against it costs what checking a real account's costs."""
    return hash_password(secrets.token_urlsafe(32))


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` is the one `stored` was made from. With no stored hash (no such
    account) the same scrypt work is done against `dummy_hash()`, and nothing verifies:
    an answer's timing does not say whether a username exists."""
    if stored is None:
        _verify(password, dummy_hash())
        return False
    return _verify(password, stored)


def _verify(password: str, stored: str) -> bool:
    try:
        # Each hash carries its own cost, so raising N, R or P keeps old passwords working.
        _, n, r, p, salt, digest = stored.split("$")
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(actual, base64.b64decode(digest))
    except ValueError:
        return False
