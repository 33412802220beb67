"""The pet service: pets, their categories and tags, and the rules of their status."""

from models.pet.operations import (
    PetHeld,
    PetNotAvailable,
    PetNotFound,
    PetNotHeld,
    add_pet,
    add_photo_url,
    delete_pet,
    find_by_status,
    find_by_tags,
    get_pet,
    release_pet,
    replace_pet,
    reserve_pet,
    sell_pet,
    unsell_pet,
    update_pet_fields,
)
from models.pet.tables import STATUSES, Category, Pet, Tag

__all__ = [
    "STATUSES",
    "Category",
    "Pet",
    "PetHeld",
    "PetNotAvailable",
    "PetNotFound",
    "PetNotHeld",
    "Tag",
    "add_pet",
    "add_photo_url",
    "delete_pet",
    "find_by_status",
    "find_by_tags",
    "get_pet",
    "release_pet",
    "replace_pet",
    "reserve_pet",
    "sell_pet",
    "unsell_pet",
    "update_pet_fields",
]
