"""Request and response shapes of the pet operations, as in the Petstore spec."""

from __future__ import annotations

from typing import Any

from flask_smorest.fields import Upload
from marshmallow import Schema, fields, post_load, validate
from webargs.fields import DelimitedList

from models.pet import STATUSES
from web.fields import FullMatch, Id, Text

# The spec's pattern for category names.
NAME_PATTERN = r"^[a-zA-Z0-9]+[a-zA-Z0-9\.\-_]*[a-zA-Z0-9]+$"
Status = validate.OneOf(STATUSES)


class CategorySchema(Schema):
    id = fields.Integer(dump_only=True)
    name = Text(required=True, max_length=100, validate=[FullMatch(NAME_PATTERN)])


class TagSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = Text(required=True, max_length=100, validate=[validate.Length(min=1)])


class PetSchema(Schema):
    """A pet; `id` is assigned by the store on create and names the pet on update."""

    id = Id()
    category = fields.Nested(CategorySchema, allow_none=True)
    name = Text(required=True, validate=[validate.Length(min=1)],
                metadata={"example": "doggie"})
    photoUrls = fields.List(Text(max_length=2000), required=True, attribute="photo_urls",
                            validate=validate.Length(max=50))
    tags = fields.List(fields.Nested(TagSchema), load_default=list,
                       validate=validate.Length(max=50))
    status = fields.String(validate=Status, load_default="available",
                           metadata={"description": "pet status in the store"})

    @post_load
    def names_only(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Categories and tags are named; the store keeps one row per name."""
        data["category"] = (data.get("category") or {}).get("name")
        data["tags"] = [tag["name"] for tag in data["tags"]]
        return data


class PetUpdateSchema(PetSchema):
    """On update the id names the pet to replace."""

    id = Id(required=True)


class PetFormSchema(Schema):
    name = Text(validate=[validate.Length(min=1)], metadata={"description": "Updated name"})
    status = fields.String(validate=Status, metadata={"description": "Updated status"})


class StatusQuerySchema(Schema):
    status = DelimitedList(fields.String(validate=Status), required=True,
                           metadata={"description": "Comma separated statuses"})


class TagsQuerySchema(Schema):
    tags = DelimitedList(Text(max_length=100), required=True,
                         validate=validate.Length(max=50),
                         metadata={"description": "Comma separated tag names"})


class UploadSchema(Schema):
    additionalMetadata = Text(max_length=1000, attribute="metadata",
                              metadata={"description": "Additional data to pass to server"})
    file = Upload(required=True, metadata={"description": "file to upload"})


class ApiResponseSchema(Schema):
    code = fields.Integer()
    type = fields.String()
    message = fields.String()
