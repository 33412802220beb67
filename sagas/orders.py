"""The order sagas: each reads as the story of its flow.

A step names the participant's tasks (`service.action`), never its code; replies merge
into the saga's data, which the later steps and the compensations read. A last step has no
compensation: once it answers the saga is complete, and nothing turns a complete saga back.

The inventory counts a pet's moves in an order through the saga's own last step, not
through the pet's events; a saga that does not complete has the pet service announce the
pet again, so that the count follows whatever the saga left behind.

A placed order that the owner has not approved within its hold expires: the order
service's sweep (`orders.expire_holds`) starts `cancel_order` for it, with no `started_by`
and `reason: hold_lapsed` in its data, to tell it from a customer's cancellation.
"""

from models.order import (
    OrderIdTaken,
    OrderNotApproved,
    OrderNotFound,
    OrderNotPlaced,
    TooManyOpenOrders,
)
from models.pet import PetNotAvailable, PetNotFound, PetNotHeld
from sagas.definition import Retry, SagaDefinition, Step

# Steps that cannot fail for a business reason still get patient retries.
PATIENT = Retry(attempts=10)
# The `reason` in a cancel-order saga's data when the store cancels an order unapproved.
HOLD_LAPSED = "hold_lapsed"

create_order = SagaDefinition("create_order", steps=(
    Step("reserve_pet", action="pets.reserve_pet", compensation="pets.release_pet",
         business_errors=(PetNotAvailable, PetNotFound)),
    Step("place_order", action="orders.place_order", compensation="orders.cancel_order",
         business_errors=(OrderIdTaken, TooManyOpenOrders)),
    Step("count_reservation", action="inventory.reserve_stock", retry=Retry(attempts=5)),
), if_not_completed="pets.announce_pet")

approve_order = SagaDefinition("approve_order", steps=(
    Step("approve_order", action="orders.approve_order", compensation="orders.unapprove_order",
         business_errors=(OrderNotPlaced, OrderNotFound)),
    Step("sell_pet", action="pets.sell_pet", compensation="pets.unsell_pet",
         business_errors=(PetNotHeld,)),
    Step("count_sale", action="inventory.count_sale", retry=PATIENT),
), if_not_completed="pets.announce_pet")

deliver_order = SagaDefinition("deliver_order", steps=(
    Step("deliver_order", action="orders.deliver_order",
         business_errors=(OrderNotApproved, OrderNotFound)),
))

cancel_order = SagaDefinition("cancel_order", steps=(
    Step("cancel_order", action="orders.cancel_order", compensation="orders.reopen_order",
         business_errors=(OrderNotPlaced,)),
    Step("release_pet", action="pets.release_pet", compensation="pets.reserve_pet",
         retry=PATIENT),
    Step("count_release", action="inventory.count_release", retry=PATIENT),
), if_not_completed="pets.announce_pet")
