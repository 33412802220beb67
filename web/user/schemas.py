"""Request and response shapes of the user operations, as in the Petstore spec."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from web.fields import FullMatch, Text

USERNAME_PATTERN = r"^[a-zA-Z0-9]+[a-zA-Z0-9\.\-_]*[a-zA-Z0-9]+$"
Username = FullMatch(USERNAME_PATTERN, error="Letters, digits, '.', '-' and '_' only, "
                                                   "starting and ending with a letter or digit.")


class UserSchema(Schema):
    """A user; the password is write-only and never returned."""

    id = fields.Integer(dump_only=True)
    username = Text(required=True, max_length=100, validate=[Username])
    firstName = Text(attribute="first_name", allow_none=True)
    lastName = Text(attribute="last_name", allow_none=True)
    email = Text(max_length=320, allow_none=True)
    password = Text(load_only=True, required=True, max_length=200,
                    validate=[validate.Length(min=1)])
    phone = Text(max_length=50, allow_none=True)
    userStatus = fields.Integer(attribute="user_status", allow_none=True, strict=True,
                                validate=validate.Range(-(2**31), 2**31 - 1))


class UserUpdateSchema(UserSchema):
    """On update every field may be left out; a new password revokes existing tokens."""

    def __init__(self, **kwargs) -> None:
        super().__init__(partial=True, **kwargs)


class LoginQuerySchema(Schema):
    username = Text(required=True, max_length=100, validate=[Username])
    password = Text(required=True, max_length=200)
