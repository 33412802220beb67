"""Request and response shapes of the pet operations, as in the Petstore spec."""

from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, fields, validate

from models.pet import STATUSES
from web.fields import CommaList, ContractSchema, FullMatch, NewId, Text

# The spec's pattern for category names.
NAME_PATTERN = r"^[a-zA-Z0-9]+[a-zA-Z0-9\.\-_]*[a-zA-Z0-9]+$"
Status = validate.OneOf(STATUSES)


class CategorySchema(ContractSchema):
    """A category by its id, its name, or both (a new id with a name creates it)."""

    id = NewId()
    name = Text(max_length=100, validate=[FullMatch(NAME_PATTERN)])


class TagSchema(ContractSchema):
    """A tag by its id, its name, or both (a new id with a name creates it)."""

    id = NewId()
    name = Text(max_length=100, validate=[validate.Length(min=1)])


class PetSchema(ContractSchema):
    """A pet. On create, an `id` the client chose is the pet's when free; without one (or
    0) the store assigns it. On update the id names the pet to replace."""

    id = NewId()
    category = fields.Nested(CategorySchema)
    name = Text(required=True, validate=[validate.Length(min=1)],
                metadata={"example": "doggie"})
    photoUrls = fields.List(Text(max_length=2000), required=True, attribute="photo_urls",
                            validate=validate.Length(max=50))
    tags = fields.List(fields.Nested(TagSchema), load_default=list,
                       validate=validate.Length(max=50))
    status = fields.String(validate=Status, load_default="available",
                           metadata={"description": "pet status in the store"})


class PetFormSchema(Schema):
    name = Text(validate=[validate.Length(min=1)], metadata={"description": "Updated name"})
    status = fields.String(validate=Status, metadata={"description": "Updated status"})


class StatusQuerySchema(Schema):
    status = CommaList(fields.String(validate=Status), required=True,
                           metadata={"description": "Comma separated statuses"})


class TagsQuerySchema(Schema):
    tags = CommaList(Text(max_length=100), required=True,
                         validate=validate.Length(max=50),
                         metadata={"description": "Comma separated tag names"})


class UploadSchema(Schema):
    additionalMetadata = Text(max_length=1000, attribute="metadata",
                              metadata={"description": "Additional data to pass to server"})
    file = Upload(required=True, metadata={"description": "file to upload"})


class ApiResponseSchema(ContractSchema):
    code = fields.Integer()
    type = fields.String()
    message = fields.String()
