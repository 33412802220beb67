"""What the user service does: sign-up, profile changes, logging in and out."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.db import IdTaken, new_id, utcnow
from models.user.passwords import hash_password, verify_password
from models.user.tables import CUSTOMER, OWNER, LoginToken, User

PROFILE_FIELDS = ("username", "first_name", "last_name", "email", "phone", "user_status")
# Either refuses a name that differs from a taken one only in case, or repeats it.
USERNAME_CONSTRAINTS = {"uq_users_username", "uq_users_username_lower"}


class UserNotFound(LookupError):
    def __init__(self, username: str) -> None:
        super().__init__(f"User {username!r} not found")


class UsernameTaken(ValueError):
    def __init__(self, username: str) -> None:
        super().__init__(f"Username {username!r} is taken")
        self.username = username


class IncompleteAccount(ValueError):
    """A new account without a username or a password."""


class IdFixed(ValueError):
    """An update that would change an account's id."""


class BadCredentials(ValueError):
    def __init__(self) -> None:
        super().__init__("Invalid username or password")


class CurrentPasswordNeeded(PermissionError):
    """A new password for one's own account without the right current one; `given` says
    whether a wrong one was tried (a guess) or none at all."""

    def __init__(self, given: bool) -> None:
        super().__init__("Give your current password in currentPassword to set a new one")
        self.given = given


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _taken(session: Session, username: str, but_not: int | None = None) -> bool:
    query = select(User.id).where(func.lower(User.username) == func.lower(username))
    if but_not is not None:
        query = query.where(User.id != but_not)
    return session.scalar(query) is not None


def create_users(session: Session, profiles: Sequence[dict[str, Any]],
                 role: str = CUSTOMER) -> list[User]:
    """Create every account or none: a taken or repeated username or id refuses the lot.
    Each gets the id its profile chose (when free) or one the store assigns."""
    seen: set[str] = set()
    chosen: set[int] = set()
    users = []
    for profile in profiles:
        if not (profile.get("username") and profile.get("password")):
            raise IncompleteAccount("A new account needs a username and a password")
        name, user_id = profile["username"], profile.get("id") or None
        if name.lower() in seen or _taken(session, name):
            raise UsernameTaken(name)
        if user_id and user_id in chosen:
            raise IdTaken("User", user_id)
        seen.add(name.lower())
        chosen.add(user_id)
        fields = {k: profile.get(k) for k in PROFILE_FIELDS}
        users.append(User(id=new_id(session, User.id, user_id, what="User"), **fields,
                          password_hash=hash_password(profile["password"]), role=role))
    session.add_all(users)
    _flush_names(session, ", ".join(u.username for u in users),
                 ", ".join(str(u.id) for u in users))
    return users


def ensure_owner(session: Session, username: str, password: str) -> User:
    """Create the store owner, or make an existing account the owner with this password."""
    user = session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None:
        return create_users(session, [{"username": username, "password": password}], OWNER)[0]
    if not verify_password(password, user.password_hash):
        user.password_hash = hash_password(password)
    user.role = OWNER
    return user


def _flush_names(session: Session, names: str, ids: str = "") -> None:
    """Write pending accounts; a name or id taken meanwhile by a concurrent request is
    refused."""
    try:
        session.flush()
    except IntegrityError as exc:
        constraint = getattr(exc.orig.diag, "constraint_name", None)
        if constraint in USERNAME_CONSTRAINTS:
            raise UsernameTaken(names) from exc
        if constraint == "pk_users":  # a client chose one of these ids meanwhile
            raise IdTaken("User", ids) from exc
        raise


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserNotFound(username)
    return user


def update_user(session: Session, username: str, changes: dict[str, Any], *,
                own_account: bool = False, current_password: str | None = None) -> User:
    """Change an account. A new password for one's `own_account` needs the current one, so
    that a stolen token alone cannot take the account for good; the store owner resetting
    another user's password needs none."""
    user = get_user(session, username)
    if own_account and changes.get("password"):
        _check_current(user, current_password)
    if changes.get("id") not in (None, 0, user.id):
        raise IdFixed(f"User {username!r} has id {user.id}: an account's id cannot change")
    new_name = changes.get("username")
    if new_name and new_name != username and _taken(session, new_name, but_not=user.id):
        raise UsernameTaken(new_name)
    for field in PROFILE_FIELDS:
        if field in changes:
            setattr(user, field, changes[field])
    if changes.get("password"):
        user.password_hash = hash_password(changes["password"])
        _revoke_all(session, user.id)
    _flush_names(session, user.username)
    return user


def _check_current(user: User, password: str | None) -> None:
    if not password:
        raise CurrentPasswordNeeded(given=False)
    if not verify_password(password, user.password_hash):
        raise CurrentPasswordNeeded(given=True)


def delete_user(session: Session, username: str) -> None:
    if session.execute(delete(User).where(User.username == username)).rowcount == 0:
        raise UserNotFound(username)


def log_in(session: Session, username: str, password: str,
           ttl: timedelta) -> tuple[str, datetime]:
    """A new token for these credentials and the moment it expires."""
    user = session.scalar(select(User).where(User.username == username))
    # An unknown name costs the same scrypt work as a wrong password: no timing oracle.
    if not verify_password(password, user.password_hash if user else None):
        raise BadCredentials()
    token = secrets.token_urlsafe(32)
    expires_at = utcnow() + ttl
    session.add(LoginToken(token_hash=_token_hash(token), user_id=user.id, expires_at=expires_at))
    return token, expires_at


def authenticate(session: Session, token: str) -> User | None:
    """The user a live token belongs to; None for unknown, expired or revoked tokens."""
    return session.scalar(
        select(User)
        .join(LoginToken, LoginToken.user_id == User.id)
        .where(
            LoginToken.token_hash == _token_hash(token),
            LoginToken.revoked_at.is_(None),
            LoginToken.expires_at > utcnow(),
        )
    )


def log_out(session: Session, token: str) -> None:
    session.execute(
        update(LoginToken)
        .where(LoginToken.token_hash == _token_hash(token), LoginToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _revoke_all(session: Session, user_id: int) -> None:
    session.execute(
        update(LoginToken)
        .where(LoginToken.user_id == user_id, LoginToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
