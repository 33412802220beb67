"""The create-order saga: reserve the pet, place the order, count it in the inventory."""

from sagas.definition import Retry, SagaDefinition, Step

create_order = SagaDefinition("create_order", steps=(
    Step("reserve_pet", action="pets.reserve_pet", compensation="pets.release_pet",
         business_errors=frozenset({"PetNotAvailable", "PetNotFound"})),
    Step("place_order", action="orders.place_order", compensation="orders.cancel_order"),
    Step("count_reservation", action="inventory.reserve_stock",
         compensation="inventory.release_stock", retry=Retry(attempts=5)),
))
