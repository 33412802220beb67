"""User operations: sign-up is open; the rest needs a login token."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import abort

from models.db import unit_of_work
from models.user import create_users, delete_user, get_user, log_in, log_out, update_user
from web import ratelimit
from web.api import Blueprint
from web.auth import COOKIE, login_required, may_manage, request_token
from web.user.schemas import USERNAME_PATTERN, LoginQuerySchema, UserSchema

blp = Blueprint("user", __name__, url_prefix="/user", description="Operations about user")
LOGIN_HEADERS = {
    "Set-Cookie": {"description": "Cookie with the token", "schema": {"type": "string"}},
    "X-Rate-Limit": {"description": "calls per hour allowed by the user",
                     "schema": {"type": "integer", "format": "int32"}},
    "X-Expires-After": {"description": "date in UTC when token expires",
                        "schema": {"type": "string", "format": "date-time"}},
}


@blp.route("", methods=["POST"])
@blp.arguments(UserSchema)
@blp.response(200, UserSchema)
@blp.alt_response(400, response="BAD_REQUEST", description="No username or no password")
@blp.alt_response(409, response="CONFLICT", description="The username or the id is taken")
def create_user(profile: dict[str, Any]):
    """Create user

    Signing up is open to anyone and makes a customer account.
    """
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

    The token goes in the `api_key` header or as `Authorization: Bearer <token>`.
    """
    limit = current_app.config["LOGIN_ATTEMPTS_PER_HOUR"]
    allowed, retry_after = ratelimit.hit(
        f"login:{credentials['username']}:{request.remote_addr}", limit)
    if not allowed:
        abort(429, message="Too many login attempts; try again later",
              headers={"Retry-After": str(retry_after)})
    ttl = timedelta(seconds=current_app.config["TOKEN_TTL_SECONDS"])
    with unit_of_work() as session:
        token, expires_at = log_in(session, credentials["username"], credentials["password"], ttl)
    response = jsonify(token)
    response.headers["X-Rate-Limit"] = str(limit)
    response.headers["X-Expires-After"] = expires_at.isoformat()
    response.set_cookie(COOKIE, token, expires=expires_at, httponly=True, samesite="Strict",
                        path="/")
    return response


@blp.route("/logout")
@login_required(blp)
@blp.response(204)
def logout():
    """Logs out current logged in user session

    The token stops working at once.
    """
    with unit_of_work() as session:
        log_out(session, request_token())


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
    def put(self, changes: dict[str, Any], username: str):
        """Updated user

        Users change their own account; a new password logs out every session.
        """
        may_manage(username)
        with unit_of_work() as session:
            return update_user(session, _known_shape(username), changes)

    @login_required(blp, may_forbid=True)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, username: str):
        """Delete user"""
        may_manage(username)
        with unit_of_work() as session:
            delete_user(session, _known_shape(username))
