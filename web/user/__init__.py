"""The user service's part of the gateway: accounts and logging in."""

from web.user.views import blp

__all__ = ["blp"]
