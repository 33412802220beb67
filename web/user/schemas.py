"""Request and response shapes of the user operations, as in the Petstore spec."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from web.fields import ContractSchema, FullMatch, NewId, Text

USERNAME_PATTERN = r"^[a-zA-Z0-9]+[a-zA-Z0-9\.\-_]*[a-zA-Z0-9]+$"
Username = FullMatch(USERNAME_PATTERN, error="Letters, digits, '.', '-' and '_' only, "
                                                   "starting and ending with a letter or digit.")


class UserSchema(ContractSchema):
    """A user; the passwords are write-only and never returned. A new account needs a
    username and a password, and gets the `id` the client chose when no account has it."""

    id = NewId()
    username = Text(max_length=100, validate=[Username])
    firstName = Text(attribute="first_name")
    lastName = Text(attribute="last_name")
    email = Text(max_length=320)
    password = Text(load_only=True, max_length=200, validate=[validate.Length(min=1)])
    # Not in the spec: an optional addition, so that a stolen token alone cannot set a new
    # password for good.
    currentPassword = Text(
        attribute="current_password", load_only=True, max_length=200,
        metadata={"description": "Your current password: needed to set a new `password` "
                                 "for your own account. Never returned."})
    phone = Text(max_length=50)
    userStatus = fields.Integer(attribute="user_status", strict=True,
                                validate=validate.Range(-(2**31), 2**31 - 1))


class LoginQuerySchema(Schema):
    username = Text(required=True, max_length=100, validate=[Username])
    password = Text(required=True, max_length=200)
