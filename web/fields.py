"""Marshmallow fields that refuse what PostgreSQL would choke on, with a clear message."""

from __future__ import annotations

from typing import Any

from flask_smorest import abort
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_dump, validate
from webargs.fields import DelimitedList

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


def NewId(**kwargs: Any) -> fields.Integer:
    """The id a client may choose for something new: taken when free; 0 or none, and the
    store assigns one."""
    return fields.Integer(strict=True, validate=validate.Range(0, INT64_MAX), **kwargs)


class ContractSchema(Schema):
    """One of petstore.yaml's schemas, which clients are generated from: a field the spec
    does not know is ignored, as the spec allows any, and an absent value is left out of
    an answer rather than sent as `null`, which the spec's types do not allow."""

    class Meta:
        unknown = EXCLUDE

    @post_dump
    def leave_out_absent(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items() if value is not None}


class CommaList(DelimitedList):
    """A query list as the spec has it (`status=a,b`), or as the parameter repeated
    (`status=a&status=b`), which many generated clients send whatever the spec says.

    At most `max_values` values, each checked by the inner field (which bounds its
    length): a longer list is refused before any is checked, as its query would pass
    PostgreSQL's limit on bind parameters."""

    is_multiple = True

    def __init__(self, cls_or_instance: Any, *, max_values: int = 100, **kwargs: Any) -> None:
        super().__init__(cls_or_instance, **kwargs)
        self.max_values = max_values

    def _deserialize(self, value, attr, data, **kwargs):
        repeated = value if isinstance(value, list) else [value]
        if not all(isinstance(each, str) for each in repeated):
            raise self.make_error("invalid")
        values = [part for each in repeated for part in (each.split(",") if each else [])]
        if len(values) > self.max_values:
            abort(400, message=f"At most {self.max_values} values for "
                               f"{self.data_key or attr}; got {len(values)}")
        return fields.List._deserialize(self, values, attr, data, **kwargs)
