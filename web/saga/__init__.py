"""The saga log, for the store owner."""

from web.saga.views import blp

__all__ = ["blp"]
