"""The request schemas, loaded directly: what they accept and what they refuse."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from models.db import INT64_MAX
from web.pet.schemas import (
    CategorySchema,
    PetFormSchema,
    PetSchema,
    StatusQuerySchema,
    TagSchema,
)
from web.user.schemas import LoginQuerySchema, UserSchema


def refused(schema, data) -> dict:
    with pytest.raises(ValidationError) as error:
        schema.load(data)
    return error.value.messages


def a_pet(**overrides):
    return {"name": "rex", "photoUrls": ["http://img/1.png"], **overrides}


def a_user(**overrides):
    return {"username": "alice", "password": "s3cret", **overrides}


# Pets


def test_a_minimal_pet_loads_with_defaults():
    assert PetSchema().load(a_pet()) == {
        "name": "rex", "photo_urls": ["http://img/1.png"], "tags": [], "status": "available",
    }


def test_categories_and_tags_load_as_the_spec_has_them_with_or_without_ids():
    pet = PetSchema().load(a_pet(category={"id": 1, "name": "dogs"},
                                 tags=[{"name": "good"}, {"id": 3}]))
    assert pet["category"] == {"id": 1, "name": "dogs"}
    assert pet["tags"] == [{"name": "good"}, {"id": 3}]


def test_fields_the_spec_does_not_know_are_ignored():
    assert "colour" not in PetSchema().load(a_pet(colour="brown"))
    assert "role" not in UserSchema().load(a_user(role="owner"))


def test_absent_values_are_left_out_of_answers_not_sent_as_null():
    dumped = PetSchema().dump({"id": 1, "name": "rex", "photo_urls": [], "category": None,
                               "tags": [], "status": "available"})
    assert "category" not in dumped
    assert "firstName" not in UserSchema().dump({"id": 1, "username": "al", "first_name": None})


@pytest.mark.parametrize("status", ["available", "pending", "sold"])
def test_each_known_status_is_accepted(status):
    assert PetSchema().load(a_pet(status=status))["status"] == status


@pytest.mark.parametrize("status", ["lost", "AVAILABLE", "", "available "])
def test_an_unknown_status_is_refused_everywhere(status):
    assert "status" in refused(PetSchema(), a_pet(status=status))
    assert "status" in refused(PetFormSchema(), {"status": status})
    assert "status" in refused(StatusQuerySchema(), {"status": f"available,{status}"})


@pytest.mark.parametrize("pet_id", [0, 1, 42, INT64_MAX])
def test_pet_ids_within_int64_are_accepted(pet_id):
    assert PetSchema().load(a_pet(id=pet_id))["id"] == pet_id


@pytest.mark.parametrize("pet_id", [INT64_MAX + 1, 2**64, 10**30, -1, -(2**63)])
def test_pet_ids_outside_positive_int64_are_refused(pet_id):
    assert "id" in refused(PetSchema(), a_pet(id=pet_id))


@pytest.mark.parametrize("pet_id", ["7", 7.5, True, None])
def test_pet_ids_must_be_json_integers(pet_id):
    assert "id" in refused(PetSchema(), a_pet(id=pet_id))


def test_a_nul_byte_in_a_pet_name_is_refused():
    assert "name" in refused(PetSchema(), a_pet(name="re\x00x"))


def test_nul_bytes_are_refused_in_nested_text():
    assert "photoUrls" in refused(PetSchema(), a_pet(photoUrls=["http://img/\x00.png"]))
    assert "tags" in refused(PetSchema(), a_pet(tags=[{"name": "go\x00od"}]))
    assert "category" in refused(PetSchema(), a_pet(category={"name": "do\x00gs"}))


def test_a_lone_surrogate_in_pet_text_is_refused():
    assert "name" in refused(PetSchema(), a_pet(name="rex\ud800"))
    assert "tags" in refused(PetSchema(), a_pet(tags=[{"name": "\udfff"}]))


def test_a_pet_needs_a_name_and_photo_urls():
    messages = refused(PetSchema(), {})
    assert {"name", "photoUrls"} <= set(messages)
    assert "name" in refused(PetSchema(), a_pet(name=""))


@pytest.mark.parametrize("name", ["dogs", "big-dogs", "big_dogs", "v1.2", "ab", "D0gs"])
def test_category_names_following_the_spec_pattern_are_accepted(name):
    assert CategorySchema().load({"name": name}) == {"name": name}


@pytest.mark.parametrize("name", ["", "d", "big dogs", "-dogs", "dogs-", ".dogs", "dogs.",
                                  "dögs", "dogs/cats", "x" * 101])
def test_category_names_outside_the_spec_pattern_are_refused(name):
    assert "name" in refused(CategorySchema(), {"name": name})


def test_a_category_name_with_a_trailing_newline_is_refused():
    assert "name" in refused(CategorySchema(), {"name": "dogs\n"})


def test_tag_names_must_not_be_empty_or_too_long():
    assert "name" in refused(TagSchema(), {"name": ""})
    assert "name" in refused(TagSchema(), {"name": "t" * 101})
    assert TagSchema().load({"name": "very good dog"}) == {"name": "very good dog"}


def test_a_pet_may_not_have_more_than_fifty_photos_or_tags():
    assert "photoUrls" in refused(PetSchema(), a_pet(photoUrls=["u"] * 51))
    assert "tags" in refused(PetSchema(), a_pet(tags=[{"name": f"t{i}"} for i in range(51)]))


# Users


def test_a_user_loads_with_profile_fields_renamed():
    loaded = UserSchema().load(a_user(firstName="Alice", lastName="Liddell",
                                      email="alice@example.com", phone="123",
                                      userStatus=1))
    assert loaded == {"username": "alice", "password": "s3cret", "first_name": "Alice",
                      "last_name": "Liddell", "email": "alice@example.com", "phone": "123",
                      "user_status": 1}


def test_the_password_is_never_dumped():
    dumped = UserSchema().dump({"id": 1, "username": "alice", "password": "s3cret"})
    assert "password" not in dumped
    assert dumped["username"] == "alice"


def test_a_password_may_not_be_empty():
    assert "password" in refused(UserSchema(), a_user(password=""))


@pytest.mark.parametrize("username", ["al ice", " alice", "alice ", "al\x00ice", "a", "",
                                      "-alice", "alice.", "al/ice", "élise", "x" * 101])
def test_usernames_outside_the_pattern_are_refused(username):
    assert "username" in refused(UserSchema(), a_user(username=username))
    assert "username" in refused(LoginQuerySchema(), a_user(username=username))


def test_a_username_with_a_trailing_newline_is_refused():
    assert "username" in refused(UserSchema(), a_user(username="alice\n"))


def test_nul_bytes_are_refused_in_every_user_text_field():
    for field in ("firstName", "lastName", "phone", "password"):
        assert field in refused(UserSchema(), a_user(**{field: "x\x00y"})), field


def test_lone_surrogates_are_refused_in_user_text():
    assert "username" in refused(UserSchema(), a_user(username="al\ud800ice"))
    assert "firstName" in refused(UserSchema(), a_user(firstName="\udc80"))
    assert "password" in refused(UserSchema(), a_user(password="pw\ud800"))


@pytest.mark.parametrize("status", ["1", 1.5, True, 2**31, -(2**31) - 1])
def test_user_status_must_be_an_int32(status):
    assert "userStatus" in refused(UserSchema(), a_user(userStatus=status))


def test_user_status_accepts_the_int32_range():
    for status in (-(2**31), 0, 2**31 - 1):
        assert UserSchema().load(a_user(userStatus=status))["user_status"] == status


def test_an_overlong_email_is_refused():
    assert "email" in refused(UserSchema(), a_user(email="a" * 310 + "@example.com"))


def test_a_user_may_carry_the_id_a_client_chose():
    assert UserSchema().load(a_user(id=7))["id"] == 7


def test_a_profile_may_leave_every_field_out_but_may_not_empty_the_password():
    assert UserSchema().load({}) == {}
    assert UserSchema().load({"firstName": "Al"}) == {"first_name": "Al"}
    assert "password" in refused(UserSchema(), {"password": ""})
    assert "username" in refused(UserSchema(), {"username": "bad name"})
