"""The photo service's part of the gateway: serving uploaded images."""

from web.photo.views import blp

__all__ = ["blp"]
