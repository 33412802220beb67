"""The store's part of the gateway: the inventory (and, with the sagas, orders)."""

from web.store.views import blp

__all__ = ["blp"]
