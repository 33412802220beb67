"""Password hashing with scrypt from the standard library; plain passwords never persist."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# n=2**14, r=8, p=1: the parameters RFC 7914 and OWASP suggest for interactive logins.
N, R, P = 2**14, 8, 1


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=64 * 1024 * 1024)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt)
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return "$".join(("scrypt", str(N), str(R), str(P), *encoded))


def verify_password(password: str, stored: str) -> bool:
    try:
        _, _, _, _, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        return hmac.compare_digest(_scrypt(password, base64.b64decode(salt)), expected)
    except ValueError:
        return False
