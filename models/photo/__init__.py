"""The photo service: a record of every photo of a pet, linked or uploaded."""

from models.photo.images import image_kind, new_file_name, stored_file
from models.photo.operations import create_photos, forget_pet_photos, photos_of
from models.photo.tables import Photo

__all__ = ["Photo", "create_photos", "forget_pet_photos", "image_kind", "new_file_name",
           "photos_of", "stored_file"]
