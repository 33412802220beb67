"""Marshmallow fields that refuse what PostgreSQL would choke on, with a clear message."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from models.db import INT64_MAX


class Text(fields.String):
    """A string without NUL bytes or lone surrogates, at most `max_length` characters."""

    def __init__(self, *, max_length: int = 200, **kwargs: Any) -> None:
        validators = [validate.Length(max=max_length), *kwargs.pop("validate", [])]
        super().__init__(validate=validators, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError("Must be valid Unicode text.") from exc
        return text


class FullMatch(validate.Regexp):
    """A pattern the whole value must match: `$` alone would let a final newline through."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def Id(**kwargs: Any) -> fields.Integer:
    """A positive int64 identifier, as the spec's `format: int64` ids."""
    return fields.Integer(strict=True, validate=validate.Range(1, INT64_MAX), **kwargs)
