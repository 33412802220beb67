"""A deploy never strands sagas in flight: a changed definition fails this check until its
old version is kept (in sagas/retired.py) and its new version recorded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sagas import check, registry
from sagas.definition import SagaDefinition, Step
from workers.celery_app import app

HOLD = Step("hold_room", action="hotels.hold", compensation="hotels.release")
PAY = Step("pay", action="cards.charge", compensation="cards.refund")
TRIP = SagaDefinition("trip", (HOLD, PAY))
MAIL = Step("mail", action="mail.send")
DEPLOYED = SagaDefinition("trip", (HOLD, MAIL, PAY))  # the next deploy inserts a step


def test_this_deployment_keeps_every_version_it_recorded_and_records_its_own():
    problems = check.unkept(registry.DEFINITIONS.values(), registry.registered(),
                            check.recorded())
    assert problems == []


def test_every_task_a_registered_definition_sends_is_defined_by_a_worker():
    app.loader.import_default_modules()
    assert check.untasked(registry.registered(), app.tasks) == []


def test_a_step_inserted_without_keeping_the_old_definition_fails_the_check():
    recorded = {"trip": [TRIP.version]}
    problems = check.unkept([DEPLOYED], [DEPLOYED], recorded)
    assert len(problems) == 2
    assert f"trip {DEPLOYED.version} is not recorded" in problems[0]
    assert f"trip {TRIP.version} is recorded but no definition of it is registered" in (
        problems[1])


def test_a_change_that_keeps_the_old_definition_and_records_the_new_passes(tmp_path: Path):
    path = tmp_path / "versions.json"
    check.record([TRIP], path)
    versions = check.record([DEPLOYED], path)
    assert versions == {"trip": [TRIP.version, DEPLOYED.version]}
    assert check.unkept([DEPLOYED], [TRIP, DEPLOYED], check.recorded(path)) == []


def test_a_renamed_step_is_a_change_the_check_catches():
    renamed = SagaDefinition("trip", (replace(HOLD, name="book_room"), PAY))
    assert check.unkept([renamed], [renamed], {"trip": [TRIP.version]}) != []


def test_a_definition_that_sends_a_task_no_worker_defines_is_named():
    assert check.untasked([DEPLOYED], {"hotels.hold", "hotels.release", "cards.charge",
                                       "cards.refund"}) == [
        f"trip {DEPLOYED.version} sends mail.send, which no worker defines"]
