"""What the pet service does, each function one step of a caller's unit of work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from models.db import added, new_id
from models.events import (
    PetChanged,
    PetCreated,
    PetDeleted,
    PetReleased,
    PetReserved,
    PetSold,
    PetUpdated,
)
from models.outbox import publish, send_task
from models.pet.tables import AVAILABLE, HELD, PENDING, SOLD, Category, Pet, Tag, pet_tags


class PetNotFound(LookupError):
    def __init__(self, pet_id: int) -> None:
        super().__init__(f"Pet {pet_id} not found")
        self.pet_id = pet_id


class PetNotAvailable(Exception):
    """The pet is pending or sold: another order has it."""

    def __init__(self, pet_id: int, status: str) -> None:
        super().__init__(f"Pet {pet_id} is not available: it is {status}")
        self.pet_id = pet_id
        self.status = status


class PetNotHeld(Exception):
    """The pet is not reserved by this order, so the order cannot have it."""

    def __init__(self, pet_id: int, order_id: int) -> None:
        super().__init__(f"Pet {pet_id} is not reserved by order {order_id}")


class PetHeld(Exception):
    """The pet is pending or sold, so it may not be removed, nor its status changed by hand
    while an order holds it."""

    def __init__(self, pet_id: int, status: str, order_id: int | None, change: str) -> None:
        holder = f"order {order_id} holds it" if order_id else f"a {status} pet is kept"
        super().__init__(f"Pet {pet_id} is {status} and {holder}, so it cannot be {change}")
        self.pet_id = pet_id
        self.status = status


class UnknownLabel(LookupError):
    """A category or tag named by an id alone that does not exist: nothing to create it from."""

    def __init__(self, what: str, label_id: int) -> None:
        super().__init__(f"{what} {label_id} does not exist: send its name too, to create it")


class LabelConflict(Exception):
    """A category's or tag's id and name that name two different ones."""


# A category or tag as a client refers to it: {"id": ..., "name": ...}, either optional.
Label = Mapping[str, Any]


def _label(session: Session, model: type[Category] | type[Tag], label: Label
           ) -> Category | Tag | None:
    """The category or tag a client means: by id (created with that id when it is new and
    named), else by name (created when missing); an id and a name must agree."""
    what = model.__name__
    label_id, name = label.get("id") or None, label.get("name")
    if label_id is None:
        return _by_name(session, model, name) if name is not None else None
    row = session.get(model, label_id)
    if row is None and name is not None:
        session.execute(insert(model).values(id=label_id, name=name).on_conflict_do_nothing())
        row = session.get(model, label_id)
        if row is None:
            other = session.scalar(select(model.id).where(model.name == name))
            raise LabelConflict(f"{what} {name!r} has id {other}, not {label_id}")
    if row is None:
        raise UnknownLabel(what, label_id)
    if name is not None and row.name != name:
        raise LabelConflict(f"{what} {label_id} is {row.name!r}, not {name!r}")
    return row


def _by_name(session: Session, model: type[Category] | type[Tag], name: str
             ) -> Category | Tag:
    """The row of this name, created when missing (safe under concurrent inserts)."""
    while (row := session.scalar(select(model).where(model.name == name))) is None:
        label_id = new_id(session, model.id, None, what=model.__name__)
        session.execute(insert(model).values(id=label_id, name=name).on_conflict_do_nothing())
    return row


def _set_status(pet: Pet, status: str) -> None:
    """Only an order's saga moves a pet that an order holds."""
    if pet.order_id is not None and status != pet.status:
        raise PetHeld(pet.id, pet.status, pet.order_id, f"made {status} by hand")
    pet.status = status


def _apply(session: Session, pet: Pet, *, name: str, photo_urls: Sequence[str],
           category: Label | None, tags: Sequence[Label], status: str) -> None:
    pet.name = name
    _set_status(pet, status)
    pet.photo_urls = list(dict.fromkeys(photo_urls))
    pet.category = _label(session, Category, category) if category else None
    found = (_label(session, Tag, tag) for tag in tags)
    pet.tags = list({tag.id: tag for tag in found if tag is not None}.values())


def _announce(session: Session, pet: Pet, event: type[PetChanged],
              new_photos: Sequence[dict]) -> None:
    publish(session, event(pet_id=pet.id, status=pet.status, version=pet.version))
    if new_photos:
        send_task(session, "photos.create_photos", pet_id=pet.id, photos=list(new_photos))


def announce_pet(session: Session, pet_id: int) -> bool:
    """Publish the pet's status as of its version (PET_UPDATED): newer news than any the
    subscribers missed, never older; False when the pet is gone (PET_DELETED told them)."""
    pet = session.get(Pet, pet_id)
    if pet is None:
        return False
    _announce(session, pet, PetUpdated, ())
    return True


def _locked(session: Session, pet_id: int) -> Pet:
    pet = session.get(Pet, pet_id, with_for_update={"of": Pet}, populate_existing=True)
    if pet is None:
        raise PetNotFound(pet_id)
    return pet


def add_pet(session: Session, *, name: str, photo_urls: Sequence[str] = (),
            category: Label | None = None, tags: Sequence[Label] = (),
            status: str = AVAILABLE, pet_id: int | None = None) -> Pet:
    """A new pet, with the id the client chose (when free) or one the store assigns."""
    pet = Pet(id=new_id(session, Pet.id, pet_id, what="Pet"), version=1)
    _apply(session, pet, name=name, photo_urls=photo_urls, category=category, tags=tags,
           status=status)
    added(session, pet, what="Pet")
    _announce(session, pet, PetCreated, [{"url": u} for u in pet.photo_urls])
    return pet


def replace_pet(session: Session, pet_id: int, *, name: str, photo_urls: Sequence[str] = (),
                category: Label | None = None, tags: Sequence[Label] = (),
                status: str = AVAILABLE) -> Pet:
    pet = _locked(session, pet_id)
    known = set(pet.photo_urls)
    _apply(session, pet, name=name, photo_urls=photo_urls, category=category, tags=tags,
           status=status)
    pet.version += 1
    session.flush()
    _announce(session, pet, PetUpdated, [{"url": u} for u in pet.photo_urls if u not in known])
    return pet


def update_pet_fields(session: Session, pet_id: int, *, name: str | None = None,
                      status: str | None = None) -> Pet:
    pet = _locked(session, pet_id)
    if name is not None:
        pet.name = name
    if status is not None:
        _set_status(pet, status)
    pet.version += 1
    session.flush()
    _announce(session, pet, PetUpdated, [])
    return pet


def add_photo_url(session: Session, pet_id: int, photo: dict) -> Pet:
    """List an uploaded image on the pet and have the photo service record it."""
    pet = _locked(session, pet_id)
    pet.photo_urls = [*pet.photo_urls, photo["url"]]
    pet.version += 1
    session.flush()
    _announce(session, pet, PetUpdated, [photo])
    return pet


def delete_pet(session: Session, pet_id: int) -> None:
    """Delete unless held by an order: the check and the delete are one statement."""
    deleted = session.execute(
        delete(Pet).where(Pet.id == pet_id, Pet.status.not_in(HELD)).returning(Pet.version)
    ).first()
    if deleted is None:
        held = session.execute(select(Pet.status, Pet.order_id).where(Pet.id == pet_id)).first()
        if held is None:
            raise PetNotFound(pet_id)
        raise PetHeld(pet_id, held.status, held.order_id, "deleted")
    publish(session, PetDeleted(pet_id=pet_id, status=None, version=deleted.version + 1))


# Built once, and sent on the transaction's connection: every order's saga runs it.
RESERVE = (update(Pet.__table__).where(Pet.id == bindparam("pet"), Pet.status == AVAILABLE)
           .values(status=PENDING, order_id=bindparam("order"), version=Pet.version + 1)
           .returning(Pet.version))


def reserve_pet(session: Session, pet_id: int, order_id: int) -> int:
    """available -> pending for this order, in one statement: of many racing orders
    exactly one wins. Returns the pet's new version."""
    reserved = session.connection().execute(RESERVE, {"pet": pet_id, "order": order_id}).first()
    if reserved is None:
        raise PetNotAvailable(pet_id, _status(session, pet_id))
    publish(session, PetReserved(pet_id=pet_id, status=PENDING, version=reserved.version))
    return reserved.version


def release_pet(session: Session, pet_id: int, order_id: int) -> int | None:
    """pending -> available, only if this order holds the pet; else nothing happens.
    Returns the pet's new version when it was released."""
    version = _move_held(session, pet_id, order_id, PENDING, AVAILABLE, order_id=None)
    if version is not None:
        publish(session, PetReleased(pet_id=pet_id, status=AVAILABLE, version=version))
    return version


def _status(session: Session, pet_id: int) -> str:
    """The pet's status, for a refusal's message; PetNotFound if there is no such pet."""
    status = session.scalar(select(Pet.status).where(Pet.id == pet_id))
    if status is None:
        raise PetNotFound(pet_id)
    return status


def _move_held(session: Session, pet_id: int, order_id: int, source: str, target: str, /,
               **values: object) -> int | None:
    """source -> target for the pet this order holds, in one statement; its new version."""
    return session.scalar(
        update(Pet).where(Pet.id == pet_id, Pet.order_id == order_id, Pet.status == source)
        .values(status=target, version=Pet.version + 1, **values).returning(Pet.version)
    )


def sell_pet(session: Session, pet_id: int, order_id: int) -> int:
    """pending -> sold to the order that reserved it; refused for any other order.
    Returns the pet's version as sold."""
    version = _move_held(session, pet_id, order_id, PENDING, SOLD)
    if version is not None:
        publish(session, PetSold(pet_id=pet_id, status=SOLD, version=version))
        return version
    sold = session.scalar(select(Pet.version).where(
        Pet.id == pet_id, Pet.order_id == order_id, Pet.status == SOLD))
    if sold is None:
        raise PetNotHeld(pet_id, order_id)
    return sold


def unsell_pet(session: Session, pet_id: int, order_id: int) -> int | None:
    """Undo a sale: sold -> pending for the same order."""
    version = _move_held(session, pet_id, order_id, SOLD, PENDING)
    if version is not None:
        publish(session, PetReserved(pet_id=pet_id, status=PENDING, version=version))
    return version


def get_pet(session: Session, pet_id: int) -> Pet:
    pet = session.get(Pet, pet_id)
    if pet is None:
        raise PetNotFound(pet_id)
    return pet


def _pet_record() -> Select:
    tag = func.json_build_object("id", Tag.id, "name", Tag.name)
    tags = (select(func.coalesce(func.json_agg(aggregate_order_by(tag, Tag.id)),
                                 text("'[]'::json")))
            .select_from(pet_tags.join(Tag)).where(pet_tags.c.pet_id == Pet.id)
            .scalar_subquery())
    return (select(Pet.id, Pet.name, Pet.status, Pet.photo_urls,
                   Category.id.label("category_id"), Category.name.label("category_name"),
                   tags.label("tags"))
            .outerjoin(Category, Pet.category).where(Pet.id == bindparam("pet_id")))


# Built once: building a statement of this size costs more than running it.
PET_RECORD = _pet_record()


def read_pet(connection: Connection | Session, pet_id: int) -> dict[str, Any]:
    """The pet as a plain record, read in one statement: a read needs none of the
    identity map and change tracking that loading ORM objects costs."""
    row = connection.execute(PET_RECORD, {"pet_id": pet_id}).first()
    if row is None:
        raise PetNotFound(pet_id)
    category = {"id": row.category_id, "name": row.category_name} if row.category_id else None
    return {"id": row.id, "name": row.name, "status": row.status, "photo_urls": row.photo_urls,
            "category": category, "tags": row.tags}


def find_by_status(session: Session, statuses: Sequence[str]) -> Sequence[Pet]:
    return session.scalars(
        select(Pet).where(Pet.status.in_(statuses)).order_by(Pet.id)).unique().all()


def find_by_tags(session: Session, tags: Sequence[str]) -> Sequence[Pet]:
    tagged = (
        select(pet_tags.c.pet_id).join(Tag, Tag.id == pet_tags.c.tag_id).where(Tag.name.in_(tags))
    )
    return session.scalars(select(Pet).where(Pet.id.in_(tagged)).order_by(Pet.id)).unique().all()
