"""The pet service's part of the gateway."""

from web.pet.views import blp

__all__ = ["blp"]
