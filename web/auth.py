"""The gateway's authentication: login tokens in `api_key`, a Bearer header or the cookie."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request
from flask_smorest import Blueprint, abort

from models.db import unit_of_work
from models.user import User, authenticate

COOKIE = "AUTH_KEY"
SECURITY = [{"api_key": []}, {"bearer": []}]
SECURITY_SCHEMES = {
    "api_key": {"type": "apiKey", "in": "header", "name": "api_key"},
    "bearer": {"type": "http", "scheme": "bearer"},
}


def header_token() -> str | None:
    """The token a client sent on purpose: in `api_key` or as a Bearer token."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("api_key") or None


def request_token() -> str | None:
    if token := header_token():
        return token
    # The cookie counts only for reads, so another site cannot make a browser write.
    if request.method in ("GET", "HEAD"):
        return request.cookies.get(COOKIE)
    return None


def current_user() -> User | None:
    if "user" not in g:
        token = request_token()
        if not token:
            g.user = None
        else:
            with unit_of_work() as session:
                g.user = authenticate(session, token)
    return g.user


def login_required(blp: Blueprint, *, owner: bool = False, may_forbid: bool = False
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """401 without a live token; 403 when `owner` is asked and the user is a customer.

    The view's OpenAPI entry gains the security schemes and those answers.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                abort(401, message="Log in first: send the token from GET /v2/user/login in "
                                   "the api_key header or as 'Authorization: Bearer <token>'")
            if owner and not user.is_owner:
                abort(403, message="Only the store owner may do this")
            return view(*args, **kwargs)

        documented = blp.doc(security=SECURITY)(wrapper)
        documented = blp.alt_response(401, response="UNAUTHORIZED")(documented)
        if owner or may_forbid:
            documented = blp.alt_response(403, response="FORBIDDEN")(documented)
        return documented

    return decorator


def may_manage(username: str) -> User:
    """The logged-in user, if they may act on `username`'s account; else 403."""
    user = current_user()
    assert user is not None
    if not user.may_manage(username):
        abort(403, message="You may only act on your own account")
    return user
