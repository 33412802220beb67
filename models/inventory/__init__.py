"""The inventory service: counts of pets by status, a read model kept by pet events."""

from models.inventory.operations import apply_pet_status, counts
from models.inventory.tables import InventoryPet

__all__ = ["InventoryPet", "apply_pet_status", "counts"]
