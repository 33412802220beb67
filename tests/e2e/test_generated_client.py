"""A client generated from the contract, used as it comes, against the real system.

openapi-python-client generates a Petstore client from docs/petstore.yaml at test time;
nothing in it is patched. Given only the API's base URL and credentials, it runs the
lifecycle a real user's client would: sign up, log in, stock pets with a category and
tags (and ids, as clients send them), find them, change them, upload an image, order a
pet, look at the order and the inventory, cancel the order, delete a pet, log out.
Every answer must have the expected status and be parsed by the client into its model.

The app is served over HTTP by werkzeug, with a real Celery worker for the order sagas.
"""

from __future__ import annotations

import json
import random
import uuid
from io import BytesIO
from typing import Any

import httpx
import pytest

from common.settings import get_settings
from tests.support.generated_client import generated_client, served, tiny_png
from tests.support.waiting import eventually

TIMEOUT = httpx.Timeout(150.0)  # an order change answers when its saga ends (test wait 120 s)
SAGA_SETTLES = 60.0


def new_id() -> int:
    """An id a client picks: large and random, so that reruns never collide."""
    return random.randint(10**9, 2**62)


@pytest.fixture(scope="module")
def petstore(tmp_path_factory):
    """The generated client package, importable as `petstore_client`."""
    with generated_client(tmp_path_factory.mktemp("generated-client")) as package:
        yield package


@pytest.fixture(scope="module")
def base_url(app, worker):
    """The API root of the app served over HTTP; the owner exists, a worker runs sagas."""
    with served(app) as url:
        yield url


def said(response: Any) -> str:
    """An answer as a failure shows it: status and body."""
    return f"{int(response.status_code)} {response.content.decode(errors='replace')}"


def assert_success(response: Any) -> None:
    assert 200 <= response.status_code < 300, said(response)


def assert_ok(response: Any) -> Any:
    """The parsed body of a 200 answer."""
    assert response.status_code == 200, said(response)
    assert response.parsed is not None, said(response)
    return response.parsed


# --- Users -------------------------------------------------------------------------

def sign_up(base_url: str, user: Any) -> None:
    from petstore_client import Client
    from petstore_client.api.user import create_user

    # Signing up is open to anyone: the client has no token yet.
    with Client(base_url, timeout=TIMEOUT) as anonymous:
        assert_success(create_user.sync_detailed(client=anonymous, body=user))


def log_in(base_url: str, username: str, password: str) -> Any:
    """An AuthenticatedClient that sends the login's token in the `api_key` header."""
    from petstore_client import AuthenticatedClient, Client
    from petstore_client.api.user import login_user

    # A client of its own for each login, so that no cookie from it is shared.
    with Client(base_url, timeout=TIMEOUT) as anonymous:
        token = assert_ok(login_user.sync_detailed(client=anonymous, username=username,
                                                   password=password))
    assert isinstance(token, str) and token
    return AuthenticatedClient(base_url, token=token, prefix="", auth_header_name="api_key",
                               timeout=TIMEOUT)


# --- Pets --------------------------------------------------------------------------

def assert_pet(parsed: Any, sent: Any) -> None:
    """The store's pet is the one sent: its id, category and tags, parsed into models."""
    from petstore_client.models import APet, PetCategory, PetTag

    assert isinstance(parsed, APet)
    assert parsed.id == sent.id
    assert (parsed.name, parsed.status) == (sent.name, sent.status)
    assert isinstance(parsed.category, PetCategory)
    assert (parsed.category.id, parsed.category.name) == (sent.category.id, sent.category.name)
    assert all(isinstance(tag, PetTag) for tag in parsed.tags)
    assert {(tag.id, tag.name) for tag in parsed.tags} == {(tag.id, tag.name)
                                                           for tag in sent.tags}


def add_pet(owner: Any, pet: Any) -> Any:
    from petstore_client.api.pet import add_pet as operation

    added = assert_ok(operation.sync_detailed(client=owner, body=pet))
    assert_pet(added, pet)
    return added


def get_pet(client: Any, pet_id: int) -> Any:
    from petstore_client.api.pet import get_pet_by_id
    from petstore_client.models import APet

    pet = assert_ok(get_pet_by_id.sync_detailed(pet_id, client=client))
    assert isinstance(pet, APet) and pet.id == pet_id
    return pet


def pet_ids(parsed: Any) -> set[int]:
    """The ids of a parsed list of pets, each a Pet with its category and tags parsed."""
    from petstore_client.models import APet, PetCategory, PetTag
    from petstore_client.types import Unset

    assert isinstance(parsed, list)
    for pet in parsed:
        assert isinstance(pet, APet)
        assert isinstance(pet.category, PetCategory | Unset)
        assert all(isinstance(tag, PetTag) for tag in pet.tags or [])
    return {pet.id for pet in parsed}


# --- Orders ------------------------------------------------------------------------

def assert_placed(parsed: Any, sent: Any) -> None:
    from petstore_client.models import PetOrder, PetOrderStatus

    assert isinstance(parsed, PetOrder)
    assert (parsed.id, parsed.pet_id, parsed.quantity) == (sent.id, sent.pet_id, 1)
    assert parsed.status == PetOrderStatus.PLACED
    assert parsed.complete is False


def order_once_it_exists(client: Any, order_id: int) -> Any:
    """getOrderById's answer once the order's saga has made it (a 202 did not wait)."""
    from petstore_client.api.store import get_order_by_id

    def answer() -> Any:
        response = get_order_by_id.sync_detailed(order_id, client=client)
        return response if response.status_code != 404 else None

    return assert_ok(eventually(answer, timeout=SAGA_SETTLES))


# --- The lifecycle -----------------------------------------------------------------

def test_a_generated_client_runs_the_whole_lifecycle_of_a_customer_and_the_owner(
        petstore, base_url):
    from petstore_client.api.pet import add_pet as add_pet_operation
    from petstore_client.api.pet import (
        delete_pet,
        find_pets_by_status,
        find_pets_by_tags,
        get_pet_by_id,
        update_pet,
        update_pet_with_form,
        upload_file,
    )
    from petstore_client.api.store import delete_order, get_inventory, get_order_by_id, place_order
    from petstore_client.api.user import logout_user
    from petstore_client.models import (
        AnUploadedResponse,
        APet,
        APetStatus,
        AUser,
        FindPetsByStatusStatusItem,
        GetInventoryResponse200,
        PetCategory,
        PetOrder,
        PetOrderStatus,
        PetTag,
        UpdatePetWithFormBody,
        UploadFileBody,
    )
    from petstore_client.types import File, Unset

    run = uuid.uuid4().hex[:8]

    # A customer signs up (with an id, as clients send one); the customer and the
    # store owner log in.
    password = uuid.uuid4().hex
    customer_name = f"customer{run}"
    sign_up(base_url, AUser(id=new_id(), username=customer_name, first_name="Alice",
                            last_name="Liddell", email=f"{customer_name}@example.com",
                            password=password, phone="555-0100", user_status=1))
    customer = log_in(base_url, customer_name, password)
    owner = log_in(base_url, *get_settings().owner)

    # The owner stocks two pets with ids of their own, in a new category with new tags:
    # the first pet creates the category and the tag, the second finds them.
    dogs = PetCategory(id=new_id(), name=f"dogs-{run}")
    friendly = PetTag(id=new_id(), name=f"friendly-{run}")
    puppy = PetTag(id=new_id(), name=f"puppy-{run}")
    rex = add_pet(owner, APet(id=new_id(), name="Rex", photo_urls=[], category=dogs,
                              tags=[friendly], status=APetStatus.AVAILABLE))
    fido = add_pet(owner, APet(id=new_id(), name="Fido", photo_urls=[],
                               category=PetCategory(id=dogs.id, name=dogs.name),
                               tags=[PetTag(id=friendly.id, name=friendly.name), puppy],
                               status=APetStatus.AVAILABLE))
    # A pet with only the fields the spec requires comes back without the others.
    plain = assert_ok(add_pet_operation.sync_detailed(
        client=owner, body=APet(id=new_id(), name="Plain", photo_urls=[])))
    assert isinstance(plain, APet)
    assert plain.status == APetStatus.AVAILABLE
    assert isinstance(plain.category, Unset) and not plain.tags

    # A pet read by id is the one stocked, and PUT takes back the very body GET gave.
    fetched = get_pet(owner, rex.id)
    assert_pet(fetched, rex)
    replaced = assert_ok(update_pet.sync_detailed(client=owner, body=fetched))
    assert_pet(replaced, rex)
    assert replaced.to_dict() == fetched.to_dict()

    # They are found by status, and by their tags. (The client sends a list as one
    # query parameter per item, `tags=a&tags=b`, whatever the spec's `explode: false`.)
    for statuses in ([FindPetsByStatusStatusItem.AVAILABLE],
                     [FindPetsByStatusStatusItem.SOLD, FindPetsByStatusStatusItem.AVAILABLE]):
        found = assert_ok(find_pets_by_status.sync_detailed(client=owner, status=statuses))
        assert {rex.id, fido.id, plain.id} <= pet_ids(found), statuses
    assert pet_ids(assert_ok(find_pets_by_tags.sync_detailed(
        client=owner, tags=[puppy.name]))) == {fido.id}
    assert pet_ids(assert_ok(find_pets_by_tags.sync_detailed(
        client=owner, tags=[friendly.name]))) == {rex.id, fido.id}
    assert pet_ids(assert_ok(find_pets_by_tags.sync_detailed(
        client=owner, tags=[puppy.name, f"unknown-{run}", friendly.name]))) == {rex.id, fido.id}

    # The owner renames a pet with a form, and uploads a photo of the other.
    renaming = update_pet_with_form.sync_detailed(
        fido.id, client=owner, body=UpdatePetWithFormBody(name="Fido the Second"))
    assert renaming.status_code == 200, said(renaming)  # the spec gives it no body
    assert get_pet(owner, fido.id).name == "Fido the Second"
    photo = File(payload=BytesIO(tiny_png()), file_name="rex.png", mime_type="image/png")
    uploaded = assert_ok(upload_file.sync_detailed(
        rex.id, client=owner,
        body=UploadFileBody(additional_metadata="Rex at the beach", file=photo)))
    assert isinstance(uploaded, AnUploadedResponse)
    assert "Rex at the beach" in uploaded.message
    assert len(get_pet(owner, rex.id).photo_urls) == 1

    # The customer orders Rex: the answer, once its saga has ended, is the placed order.
    # (No ship date: the store's answers leave it out.)
    order = PetOrder(id=new_id(), pet_id=rex.id, quantity=1, status=PetOrderStatus.PLACED,
                     complete=False)
    placing = place_order.sync_detailed(client=customer, body=order)
    assert placing.status_code == 200, said(placing)
    assert_placed(placing.parsed, order)
    assert_placed(order_once_it_exists(customer, order.id), order)
    assert get_pet(customer, rex.id).status == APetStatus.PENDING

    # The inventory counts pets by status.
    inventory = assert_ok(get_inventory.sync_detailed(client=customer))
    assert isinstance(inventory, GetInventoryResponse200)
    counts = inventory.to_dict()
    assert {"available", "pending", "sold"} <= counts.keys()
    assert all(type(count) is int and count >= 0 for count in counts.values()), counts

    # Deleting the order cancels it: Rex is for sale again.
    cancelling = delete_order.sync_detailed(str(order.id), client=customer)
    assert cancelling.status_code == 200, said(cancelling)
    eventually(lambda: get_pet(owner, rex.id).status == APetStatus.AVAILABLE,
               timeout=SAGA_SETTLES)

    # The owner deletes a pet that no order holds; it is gone.
    assert_success(delete_pet.sync_detailed(plain.id, client=owner))
    gone = get_pet_by_id.sync_detailed(plain.id, client=owner)
    assert gone.status_code == 404, said(gone)

    # Both log out, and the customer's token no longer opens the order.
    assert_success(logout_user.sync_detailed(client=customer))
    assert_success(logout_user.sync_detailed(client=owner))
    refused = get_order_by_id.sync_detailed(order.id, client=customer)
    assert refused.status_code == 401, said(refused)


def test_a_pet_id_that_is_not_an_int64_is_answered_400_with_a_json_body(petstore, base_url):
    from petstore_client import Client
    from petstore_client.api.pet import get_pet_by_id

    with Client(base_url, timeout=TIMEOUT) as anonymous:
        for pet_id in (2**63, "abc"):
            # getPetById is typed for the owner's client; reading a pet is open to all.
            response = get_pet_by_id.sync_detailed(pet_id, client=anonymous)
            assert response.status_code == 400, (pet_id, said(response))
            assert isinstance(json.loads(response.content), dict)
