"""User operations: sign-up is open; the rest needs a login token."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, NoReturn

from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import abort

from models.db import unit_of_work
from models.user import (
    BadCredentials,
    CurrentPasswordNeeded,
    create_users,
    delete_user,
    dummy_hash,
    get_user,
    log_in,
    log_out,
    update_user,
)
from web import ratelimit
from web.api import Blueprint
from web.auth import COOKIE, header_token, login_required, may_manage
from web.user.schemas import USERNAME_PATTERN, LoginQuerySchema, UserSchema

blp = Blueprint("user", __name__, url_prefix="/user", description="Operations about user")
LOGIN_HEADERS = {
    "Set-Cookie": {"description": "Cookie with the token", "schema": {"type": "string"}},
    "X-Rate-Limit": {"description": "calls per hour allowed by the user",
                     "schema": {"type": "integer", "format": "int32"}},
    "X-Expires-After": {"description": "date in UTC when token expires",
                        "schema": {"type": "string", "format": "date-time"}},
}
# Made as the app starts, so that no login of an unknown name pays for making it.
blp.record_once(lambda _state: dummy_hash())


@blp.after_request
def no_store(response: Response) -> Response:
    """Tokens and accounts must stay out of browser and proxy caches."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _too_many(what: str) -> NoReturn:
    abort(429, message=f"Too many {what} from this address; try again later",
          headers={"Retry-After": str(ratelimit.retry_after())})


def _guess_limits(username: str) -> dict[str, int]:
    """Failed password checks are counted per (address, username) and per address over
    every name. Only failures, and per address, so that no one can lock an account out
    for its user, who logs in from elsewhere."""
    address, config = request.remote_addr, current_app.config
    return {f"password-failures:user:{username.lower()}:{address}":
            config["LOGIN_ATTEMPTS_PER_HOUR"],
            f"password-failures:address:{address}": config["LOGIN_FAILURES_PER_ADDRESS"]}


def _refuse_guessers(limits: dict[str, int]) -> None:
    """Checked before the password, so that a refused attempt costs no scrypt."""
    if ratelimit.exceeded(limits):
        _too_many("failed logins")


@blp.route("", methods=["POST"])
@blp.arguments(UserSchema)
@blp.response(200, UserSchema)
@blp.alt_response(400, response="BAD_REQUEST", description="No username or no password")
@blp.alt_response(409, response="CONFLICT", description="The username or the id is taken")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def create_user(profile: dict[str, Any]):
    """Create user

    Signing up is open to anyone and makes a customer account. Each address may try a
    limited number of sign-ups an hour.
    """
    # Every attempt counts, successes too: each one costs a scrypt hash.
    limit = current_app.config["SIGNUPS_PER_HOUR"]
    if not ratelimit.hit(f"signups:{request.remote_addr}", limit):
        _too_many("sign-ups")
    with unit_of_work() as session:
        return create_users(session, [profile])[0]


def _create_many(profiles: list[dict[str, Any]]):
    with unit_of_work() as session:
        return create_users(session, profiles)


for _path, _name in (("/createWithArray", "create_users_with_array"),
                     ("/createWithList", "create_users_with_list")):
    @blp.route(_path, methods=["POST"], endpoint=_name)
    @login_required(blp, owner=True)
    @blp.arguments(UserSchema(many=True))
    @blp.response(200, UserSchema(many=True))
    @blp.alt_response(400, response="BAD_REQUEST", description="No username or no password")
    @blp.alt_response(409, response="CONFLICT",
                      description="A username or an id is taken or repeated")
    def create_many(profiles: list[dict[str, Any]]):
        """Creates list of users with given input array

        The store owner's: every account is created, or none.
        """
        return _create_many(profiles)


@blp.route("/login")
@blp.arguments(LoginQuerySchema, location="query")
@blp.response(200, {"type": "string"}, headers=LOGIN_HEADERS)
@blp.alt_response(401, response="UNAUTHORIZED", description="Invalid username/password")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def login(credentials: dict[str, str]):
    """Logs user into the system

    The token goes in the `api_key` header or as `Authorization: Bearer <token>`. Failed
    logins are limited per hour, per address and username and per address.
    """
    limits = _guess_limits(credentials["username"])
    _refuse_guessers(limits)
    ttl = timedelta(seconds=current_app.config["TOKEN_TTL_SECONDS"])
    try:
        with unit_of_work() as session:
            token, expires_at = log_in(session, credentials["username"],
                                       credentials["password"], ttl)
    except BadCredentials:
        ratelimit.count(*limits)
        raise
    response = jsonify(token)
    response.headers["X-Rate-Limit"] = str(current_app.config["LOGIN_ATTEMPTS_PER_HOUR"])
    response.headers["X-Expires-After"] = expires_at.isoformat()
    response.set_cookie(COOKIE, token, expires=expires_at, httponly=True, samesite="Strict",
                        path="/")
    return response


@blp.route("/logout")
@login_required(blp)
@blp.response(204)
def logout():
    """Logs out current logged in user session

    The token stops working at once. It must come in a header: the cookie alone does not
    log out.
    """
    token = header_token()
    if token is None:  # a cookie alone: another page could have made the browser ask
        abort(401, message="Log out with the token in the api_key header or as "
                           "'Authorization: Bearer <token>'")
    with unit_of_work() as session:
        log_out(session, token)


def _known_shape(username: str) -> str:
    """A path username that could exist; anything else is simply not found."""
    if not re.fullmatch(USERNAME_PATTERN, username) or len(username) > 100:
        abort(404, message=f"User {username!r} not found")
    return username


@blp.route("/<username>")
class UserByName(MethodView):
    @login_required(blp, may_forbid=True)
    @blp.response(200, UserSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, username: str):
        """Get user by user name

        Users see their own account; the store owner sees every account.
        """
        may_manage(username)
        with unit_of_work() as session:
            return get_user(session, _known_shape(username))

    @login_required(blp, may_forbid=True)
    @blp.arguments(UserSchema)
    @blp.response(200, UserSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT",
                      description="The new username is taken, or the id is not the account's")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    def put(self, changes: dict[str, Any], username: str):
        """Updated user

        Users change their own account; a new password for one's own account needs the
        current one in `currentPassword` (403 without it), and logs out every session.
        """
        own = may_manage(username).username == username
        current = changes.pop("current_password", None)
        limits = _guess_limits(username)
        if own and changes.get("password"):
            _refuse_guessers(limits)
        try:
            with unit_of_work() as session:
                return update_user(session, _known_shape(username), changes,
                                   own_account=own, current_password=current)
        except CurrentPasswordNeeded as exc:
            if exc.given:  # a wrong guess counts as a failed login
                ratelimit.count(*limits)
            abort(403, message=str(exc))

    @login_required(blp, may_forbid=True)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, username: str):
        """Delete user"""
        may_manage(username)
        with unit_of_work() as session:
            delete_user(session, _known_shape(username))
