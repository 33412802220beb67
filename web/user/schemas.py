"""Request and response shapes of the user operations, as in the Petstore spec."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from web.fields import ContractSchema, FullMatch, NewId, Text

USERNAME_PATTERN = r"^[a-zA-Z0-9]+[a-zA-Z0-9\.\-_]*[a-zA-Z0-9]+$"
Username = FullMatch(USERNAME_PATTERN, error="Letters, digits, '.', '-' and '_' only, "
                                                   "starting and ending with a letter or digit.")


class UserSchema(ContractSchema):
    """A user; the password is write-only and never returned. A new account needs a
    username and a password, and gets the `id` the client chose when no account has it."""

    id = NewId()
    username = Text(max_length=100, validate=[Username])
    firstName = Text(attribute="first_name")
    lastName = Text(attribute="last_name")
    email = Text(max_length=320)
    password = Text(load_only=True, max_length=200, validate=[validate.Length(min=1)])
    phone = Text(max_length=50)
    userStatus = fields.Integer(attribute="user_status", strict=True,
                                validate=validate.Range(-(2**31), 2**31 - 1))


class LoginQuerySchema(Schema):
    username = Text(required=True, max_length=100, validate=[Username])
    password = Text(required=True, max_length=200)
