"""Pet operations: writes are one local transaction each; events follow via the outbox."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort

from models.db import one_statement, unit_of_work
from models.pet import (
    add_pet,
    add_photo_url,
    delete_pet,
    find_by_status,
    find_by_tags,
    get_pet,
    read_pet,
    replace_pet,
    update_pet_fields,
)
from models.photo import (
    MAX_PIXELS,
    CleanImage,
    NotAnImage,
    TooManyPixels,
    clean_image,
    new_file_name,
)
from web.api import Blueprint
from web.auth import login_required
from web.pet.schemas import (
    ApiResponseSchema,
    PetFormSchema,
    PetSchema,
    StatusQuerySchema,
    TagsQuerySchema,
    UploadSchema,
)
from web.photo.views import image_url

blp = Blueprint("pet", __name__, url_prefix="/pet", description="Everything about your Pets")
PET_ID = "<id:pet_id>"


@blp.route("")
class Pets(MethodView):
    @login_required(blp, owner=True)
    @blp.arguments(PetSchema)
    @blp.response(200, PetSchema)
    @blp.alt_response(400, response="BAD_REQUEST",
                      description="A category or tag given by an id that does not exist")
    @blp.alt_response(409, response="CONFLICT",
                      description="The id is taken, or a category's or tag's id and name "
                                  "disagree")
    def post(self, pet: dict[str, Any]):
        """Add a new pet to the store

        The pet gets the `id` the client chose when no pet has it; without one (or 0)
        the store assigns it. A category or tag is named by its id, its name, or both.
        """
        pet_id = pet.pop("id", None)
        with unit_of_work() as session:
            return add_pet(session, pet_id=pet_id, **pet)

    @login_required(blp, owner=True)
    @blp.arguments(PetSchema)
    @blp.response(200, PetSchema)
    @blp.alt_response(400, response="BAD_REQUEST",
                      description="No pet id, or a category or tag given by an id that does "
                                  "not exist")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT",
                      description="A category's or tag's id and name disagree, or an order "
                                  "holds the pet and the status would change")
    def put(self, pet: dict[str, Any]):
        """Update an existing pet

        The body's `id` names the pet to replace.
        """
        pet_id = pet.pop("id", None)
        if not pet_id:
            abort(400, message="Say which pet to update: the body needs the pet's id")
        with unit_of_work() as session:
            return replace_pet(session, pet_id, **pet)


@blp.route("/findByStatus")
@blp.arguments(StatusQuerySchema, location="query")
@blp.response(200, PetSchema(many=True))
def find_pets_by_status(query: dict[str, Any]):
    """Finds Pets by status

    Multiple status values can be provided with comma separated strings.
    """
    with unit_of_work() as session:
        return find_by_status(session, query["status"])


@blp.route("/findByTags")
@blp.arguments(TagsQuerySchema, location="query")
@blp.response(200, PetSchema(many=True))
def find_pets_by_tags(query: dict[str, Any]):
    """Finds Pets by tags

    Multiple tags can be provided with comma separated strings.
    """
    with unit_of_work() as session:
        return find_by_tags(session, query["tags"])


@blp.route(f"/{PET_ID}")
class PetById(MethodView):
    @blp.response(200, PetSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, pet_id: int):
        """Find pet by ID"""
        with one_statement() as connection:
            return read_pet(connection, pet_id)

    @login_required(blp, owner=True)
    @blp.arguments(PetFormSchema, location="form", required=False)
    @blp.response(200, PetSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, form: dict[str, Any], pet_id: int):
        """Updates a pet in the store with form data"""
        with unit_of_work() as session:
            return update_pet_fields(session, pet_id, **form)

    @login_required(blp, owner=True)
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="The pet is pending or sold")
    def delete(self, pet_id: int):
        """Deletes a pet

        Refused while the pet is reserved by (pending) or sold to an order.
        """
        with unit_of_work() as session:
            delete_pet(session, pet_id)


@blp.route(f"/{PET_ID}/uploadImage", methods=["POST"])
@login_required(blp, owner=True)
@blp.arguments(UploadSchema, location="multipart")
@blp.response(200, ApiResponseSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE",
                  description="The file is too large, or decodes to too many pixels")
@blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE",
                  description="Not a PNG, JPEG, GIF or WebP image that decodes")
def upload_image(upload: dict[str, Any], pet_id: int):
    """uploads an image

    PNG, JPEG, GIF or WebP, stored as re-encoded from its pixels (no comments or
    metadata); the image's URL joins the pet's `photoUrls`.
    """
    with unit_of_work() as session:
        get_pet(session, pet_id)  # 404 before any work on the file
    image = _decoded(upload["file"].read())
    name = new_file_name(image.extension)
    path = current_app.config["UPLOAD_DIR"] / name
    path.write_bytes(image.content)
    # On the configured public URL: a request's Host header is the client's to forge.
    url = image_url(name)
    size = len(image.content)
    photo = {"url": url, "file_name": name, "content_type": image.media_type, "size": size,
             "metadata_text": upload.get("metadata")}
    try:
        with unit_of_work() as session:
            add_photo_url(session, pet_id, photo)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return {"code": 200, "type": image.media_type,
            "message": f"additionalMetadata: {upload.get('metadata')}\n"
                       f"File uploaded to {url}, {size} bytes"}


def _decoded(content: bytes) -> CleanImage:
    """The upload as Pillow re-encodes it (see models.photo.images); refused otherwise."""
    try:
        return clean_image(content)
    except TooManyPixels:
        abort(413, message=f"The image has more than {MAX_PIXELS} pixels")
    except NotAnImage:
        abort(415, message="The file is not a PNG, JPEG, GIF or WebP image that decodes")
