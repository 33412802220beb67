"""The photo service: a record of every photo of a pet, linked or uploaded."""

from models.photo.images import (
    MAX_PIXELS,
    CleanImage,
    NotAnImage,
    TooManyPixels,
    clean_image,
    new_file_name,
    stored_file,
    stored_media_type,
)
from models.photo.operations import create_photos, forget_pet_photos, photos_of
from models.photo.tables import Photo

__all__ = ["MAX_PIXELS", "CleanImage", "NotAnImage", "Photo", "TooManyPixels", "clean_image",
           "create_photos", "forget_pet_photos", "new_file_name", "photos_of", "stored_file",
           "stored_media_type"]
