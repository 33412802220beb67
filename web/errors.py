"""The HTTP status of each domain error: one table for the API's answers and its sagas'.

A view that meets one of these errors answers with its status (`web.api.error_maps`); an
order change whose saga a participant refused answers with the status of that refusal's
type, which the saga definition itself imports (`sagas.orders`).
"""

from __future__ import annotations

from models.db import IdTaken
from models.order import InvalidOrder, OrderInWrongState, OrderNotFound, TooManyOpenOrders
from models.pet import (
    LabelConflict,
    PetHeld,
    PetNotAvailable,
    PetNotFound,
    PetNotHeld,
    UnknownLabel,
)
from models.user import BadCredentials, IdFixed, IncompleteAccount, UsernameTaken, UserNotFound

DOMAIN_ERRORS: dict[type[Exception], int] = {
    PetNotFound: 404,
    OrderNotFound: 404,
    UserNotFound: 404,
    PetHeld: 409,
    PetNotAvailable: 409,
    PetNotHeld: 409,
    OrderInWrongState: 409,
    TooManyOpenOrders: 409,
    UsernameTaken: 409,
    IdTaken: 409,
    IdFixed: 409,
    LabelConflict: 409,
    UnknownLabel: 400,
    InvalidOrder: 400,
    IncompleteAccount: 400,
    BadCredentials: 401,
}


def status_of(error: type[Exception]) -> int | None:
    """The status of `error`, or of the nearest of its bases the table names."""
    return next((DOMAIN_ERRORS[base] for base in error.__mro__ if base in DOMAIN_ERRORS), None)
