"""The saga engine against PostgreSQL: what each delivery, sweep and operator's command
commits, and what rolls back. No broker and no Celery: the test plays the participants,
calling `engine.run_step` as a step's task does.

The rules themselves (which step runs next, when to give up) are the state machine's,
specified without any server in tests/unit/test_saga_machine.py.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from common.settings import get_settings
from models.db import unit_of_work, utcnow
from models.outbox import COMMAND, OutboxMessage
from models.saga import (
    ACTION,
    COMPENSATED,
    COMPENSATING,
    COMPENSATION,
    COMPLETED,
    FAILED,
    RUNNING,
    Saga,
    SagaStep,
)
from sagas import engine, faults, registry
from sagas.definition import Retry, SagaDefinition, Step
from sagas.engine import Delivery
from sagas.faults import InjectedFailure
from tests.support import effects


class NoRooms(Exception):
    """The hotel refuses: a business error of book_hotel."""


class NoSeats(Exception):
    """The airline refuses: a business error of book_flight."""


class CardDeclined(Exception):
    """The bank refuses: a business error of charge_card."""


class Glitch(RuntimeError):
    """A transient error: not a refusal of any step."""


KIND = "test_trip"
PARTICIPANT = "test_saga_engine.participant:"  # the participants' own writes' prefix

HOTEL = Step("book_hotel", action="hotels.book", compensation="hotels.cancel",
             business_errors=(NoRooms,), compensation_retry=Retry(attempts=3))
FLIGHT = Step("book_flight", action="flights.book", compensation="flights.cancel",
              business_errors=(NoSeats,), retry=Retry(attempts=4, backoff=0.5))
NOTIFY = Step("tell_traveller", action="mail.send_itinerary")  # nothing to undo
CARD = Step("charge_card", action="cards.charge", compensation="cards.refund",
            business_errors=(CardDeclined,), retry=Retry(attempts=2))
TRIP = SagaDefinition(KIND, (HOTEL, FLIGHT, NOTIFY, CARD))
MAIL = Step("mail_hotel", action="mail.send_booking")  # a step a deploy inserts
STEPS = {step.name: step for step in (*TRIP.steps, MAIL)}


@dataclass(frozen=True)
class Command:
    """A task the engine asked a participant to run, as written to the outbox."""

    task: str
    step: str
    phase: str = ACTION


def command(step: Step, phase: str = ACTION) -> Command:
    return Command(step.action if phase == ACTION else step.compensation, step.name, phase)


def text() -> str:
    return uuid.uuid4().hex[:12]


def bounds(policy: Retry, attempt: int) -> tuple[float, float]:
    """What the engine may answer after failed attempt `attempt`: the policy's equal-jitter
    window, scaled by the deployment's retry scale where there is one."""
    scale = getattr(get_settings(), "retry_scale", 1.0)
    ceiling = min(policy.max_backoff, policy.backoff * 2 ** (attempt - 1)) * scale
    return ceiling / 2, ceiling


def around(moment: datetime | None, seconds: float, slack: float = 5.0) -> bool:
    """`moment` is `seconds` from now, give or take the test's own running time."""
    assert moment is not None
    expected = utcnow() + timedelta(seconds=seconds)
    return expected - timedelta(seconds=slack) <= moment <= expected + timedelta(seconds=1)


class Crash(BaseException):
    """The worker dies mid-step: nothing after it in the delivery runs or commits."""


Work = Callable[[Any, dict[str, Any]], dict[str, Any] | None]


def replying(**reply: Any) -> Work:
    return lambda session, payload: dict(reply)


def raising(error: BaseException) -> Work:
    def work(session: Any, payload: dict[str, Any]) -> Any:
        raise error

    return work


def never(session: Any, payload: dict[str, Any]) -> Any:
    raise AssertionError("the engine ran a step it should have ignored")


class Script:
    """One saga, started for real; its participants are played by the test."""

    def __init__(self, definition: SagaDefinition, payload: dict[str, Any]) -> None:
        self.definition, self.payload = definition, payload
        with unit_of_work() as session:
            self.id = str(engine.start(session, definition, payload).id)
        self.expected = 0

    # What the engine did.

    @property
    def saga(self) -> Saga:
        with unit_of_work() as session:
            saga = session.get(Saga, uuid.UUID(self.id))
            assert saga is not None
            return saga

    def state(self) -> tuple:
        saga = self.saga
        return (saga.status, saga.current_step, saga.phase, saga.attempt, saga.sweeps,
                saga.version, saga.payload, saga.error, saga.error_code, saga.deadline_at,
                saga.ended_at)

    def command_rows(self) -> list[OutboxMessage]:
        with unit_of_work() as session:
            return list(session.scalars(
                select(OutboxMessage).where(OutboxMessage.payload["saga_id"].astext == self.id,
                                            OutboxMessage.kind == COMMAND)
                .order_by(OutboxMessage.id)))

    def commands(self) -> list[Command]:
        rows = self.command_rows()
        assert all(set(row.payload) == {"saga_id", "step", "phase"} for row in rows)
        return [Command(row.name, row.payload["step"], row.payload["phase"]) for row in rows]

    def told_when_not_completed(self) -> list[tuple[str, dict[str, Any]]]:
        """The tasks sent because the saga ended without completing: (name, its data)."""
        with unit_of_work() as session:
            rows = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.payload["saga_id"].astext == self.id,
                       OutboxMessage.payload.has_key("data"))
            ).all()
        return [(row.name, row.payload["data"]) for row in rows]

    def expect(self, *commands: Command) -> None:
        """Exactly these commands, in this order, were dispatched since the last look."""
        sent = self.commands()
        assert sent[self.expected:] == list(commands)
        self.expected = len(sent)

    def attempts(self) -> list[SagaStep]:
        with unit_of_work() as session:
            return list(session.scalars(select(SagaStep).where(
                SagaStep.saga_id == uuid.UUID(self.id)).order_by(SagaStep.id)))

    def log(self) -> list[tuple[str, str, int, str]]:
        return [(row.step, row.phase, row.attempt, row.status) for row in self.attempts()]

    # What the participants do: deliveries as a step's task makes them.

    def run(self, step: str, work: Work, phase: str = ACTION, *, redelivered: bool = False,
            attempt: int | None = None, task_id: str | None = None,
            worker: str | None = None) -> float | None:
        task = STEPS[step].action if phase == ACTION else STEPS[step].compensation
        delivery = Delivery(self.id, step, phase, task_id or text(), attempt, utcnow(),
                            redelivered, worker)
        return engine.run_step(task, work, delivery)

    def reply(self, step: str, phase: str = ACTION, **reply: Any) -> None:
        self.run(step, replying(**reply), phase)

    def refuse(self, step: str, error: Exception) -> None:
        with pytest.raises(engine.StepRefused):
            self.run(step, raising(error))

    def crash(self, step: str, phase: str = ACTION) -> None:
        """A delivery the broker redelivered: counted, then its worker dies again."""
        with pytest.raises(Crash):
            self.run(step, raising(Crash()), phase, redelivered=True)

    def overdue(self) -> None:
        with unit_of_work() as session:
            session.execute(update(Saga).where(Saga.id == uuid.UUID(self.id))
                            .values(deadline_at=utcnow() - timedelta(seconds=1)))

    def sweep(self) -> None:
        with unit_of_work() as session:
            engine.sweep(session)

    def through(self, last: str) -> None:
        """Every step up to and including `last` succeeds."""
        for step in self.definition.steps:
            self.expect(command(step))
            self.reply(step.name, **{f"{step.name}_ref": text()})
            if step.name == last:
                return


@pytest.fixture
def given(monkeypatch) -> Iterator[Callable[..., Script]]:
    """Start a trip saga (or another definition of the same kind) with random data."""
    scripts: list[Script] = []

    def start(definition: SagaDefinition = TRIP, **payload: Any) -> Script:
        monkeypatch.setitem(registry.DEFINITIONS, definition.kind, definition)
        payload = {"traveller": f"traveller-{text()}", "nights": random.randint(1, 14),
                   "amount_cents": random.randint(1_000, 500_000), **payload}
        script = Script(definition, payload)
        scripts.append(script)
        return script

    yield start
    effects.forget(PARTICIPANT)
    # Leave no saga of an unknown kind behind for another process's sweeper to trip on.
    ids = [uuid.UUID(script.id) for script in scripts]
    with unit_of_work() as session:
        session.execute(delete(OutboxMessage).where(
            OutboxMessage.payload["saga_id"].astext.in_([str(i) for i in ids])))
        session.execute(delete(SagaStep).where(SagaStep.saga_id.in_(ids)))
        session.execute(delete(Saga).where(Saga.id.in_(ids)))


def participant_does(session, key: str) -> None:
    effects.write(session, PARTICIPANT + key)


def participant_did(key: str) -> bool:
    return effects.written(PARTICIPANT + key) == [PARTICIPANT + key]


def booking(key: str, **reply: Any) -> Work:
    """A participant that writes its own row, then replies."""
    def work(session: Any, payload: dict[str, Any]) -> dict[str, Any]:
        participant_does(session, key)
        return reply

    return work


def failing(key: str, error: BaseException) -> Work:
    """A participant that writes its own row, then raises."""
    def work(session: Any, payload: dict[str, Any]) -> None:
        participant_does(session, key)
        raise error

    return work


# Starting.


def test_starting_a_saga_stores_it_with_its_first_command_only(given):
    trip = given()
    trip.expect(command(HOTEL))
    saga = trip.saga
    assert (saga.kind, saga.status, saga.current_step, saga.phase) == (KIND, RUNNING, 0, ACTION)
    assert (saga.attempt, saga.sweeps, saga.version) == (0, 0, 1)
    assert (saga.payload, saga.definition_version) == (trip.payload, TRIP.version)
    assert around(saga.deadline_at, HOTEL.timeout)
    assert saga.error is None and saga.error_code is None and saga.ended_at is None
    assert trip.log() == []


# A step: its work, its answer and the confirmation of its command commit together.


def test_a_step_commits_its_work_with_the_saga_moving_on_and_its_command_confirmed(given):
    trip = given()
    key, seen = text(), []
    [hotel] = trip.command_rows()
    assert hotel.sent_at is None  # published, not yet taken

    def book(session: Any, payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return booking(key, room=key)(session, payload)

    assert trip.run(HOTEL.name, book, task_id=str(hotel.message_id)) is None
    assert seen == [trip.payload] and participant_did(key)
    saga = trip.saga
    assert saga.payload == {**trip.payload, "room": key} and saga.version == 2
    hotel, flight = trip.command_rows()
    assert hotel.sent_at is not None and flight.sent_at is None
    trip.expect(command(HOTEL), command(FLIGHT))
    [row] = trip.attempts()
    assert (row.step, row.attempt, row.status, row.task_id) == (
        HOTEL.name, 1, "succeeded", str(hotel.message_id))
    assert row.started_at <= row.ended_at


def test_a_refusal_rolls_back_the_participants_work_and_turns_the_saga_back(given):
    trip = given()
    trip.through(HOTEL.name)
    key, reason = text(), text()
    [_, flight] = trip.command_rows()
    with pytest.raises(engine.StepRefused, match=reason):
        trip.run(FLIGHT.name, failing(key, NoSeats(reason)), task_id=str(flight.message_id))
    assert not participant_did(key)
    saga = trip.saga
    assert (saga.status, saga.error_code) == (COMPENSATING, NoSeats.__name__)
    assert saga.error == f"{FLIGHT.name} refused: {reason}"
    assert trip.command_rows()[1].sent_at is not None  # taken, though its work rolled back
    trip.expect(command(FLIGHT), command(HOTEL, COMPENSATION))
    assert trip.log()[-1] == (FLIGHT.name, ACTION, 1, "refused")


def test_a_transient_failure_rolls_back_the_work_and_says_when_to_retry(given):
    trip = given()
    key, message = text(), text()
    delay = trip.run(HOTEL.name, failing(key, Glitch(message)))
    low, high = bounds(HOTEL.retry, 1)
    assert delay is not None and low <= delay <= high
    assert not participant_did(key)
    [row] = trip.attempts()
    assert (row.status, row.error) == ("failed", f"Glitch: {message}")
    assert around(trip.saga.deadline_at, delay + HOTEL.timeout)
    for _ in range(HOTEL.retry.attempts - 2):
        assert trip.run(HOTEL.name, failing(key, Glitch(message))) is not None
    with pytest.raises(engine.StepFailed, match=message):
        trip.run(HOTEL.name, failing(key, Glitch(message)))
    assert trip.saga.status == COMPENSATED and not participant_did(key)


def test_a_command_the_saga_no_longer_waits_for_is_confirmed_and_changes_nothing(given):
    trip = given()
    [hotel] = trip.command_rows()
    trip.reply(HOTEL.name, room=12)
    before = trip.state()
    assert trip.run(HOTEL.name, never, task_id=str(hotel.message_id)) is None
    assert trip.run(HOTEL.name, never, COMPENSATION) is None
    assert trip.state() == before
    assert trip.command_rows()[0].sent_at is not None


def test_a_steps_outcome_is_its_idempotency_key_recorded_once(given):
    trip = given()
    trip.reply(HOTEL.name)
    with pytest.raises(IntegrityError), unit_of_work() as session:
        session.add(SagaStep(saga_id=uuid.UUID(trip.id), step=HOTEL.name, step_index=0,
                             phase=ACTION, attempt=2, status="succeeded",
                             task_name=HOTEL.action))


# Crashes: a delivery that may follow one is counted in a transaction of its own.


def test_a_redelivered_message_is_counted_on_its_own_before_its_work_runs(given):
    trip = given()
    seen = []
    trip.run(HOTEL.name, lambda session, payload: seen.append(trip.log()), redelivered=True)
    assert seen == [[(HOTEL.name, ACTION, 1, "running")]]  # committed before the work
    assert trip.log() == [(HOTEL.name, ACTION, 1, "succeeded")]


def test_a_retry_is_counted_on_its_own_before_its_work_runs(given):
    trip = given()
    assert trip.run(HOTEL.name, raising(Glitch(text())))
    seen = []
    trip.run(HOTEL.name, lambda session, payload: seen.append(trip.log()))
    assert seen == [[(HOTEL.name, ACTION, 1, "failed"), (HOTEL.name, ACTION, 2, "running")]]
    assert trip.log()[-1] == (HOTEL.name, ACTION, 2, "succeeded")
    trip.expect(command(HOTEL), command(FLIGHT))


def test_a_first_delivery_whose_worker_dies_leaves_nothing_behind(given):
    trip = given()
    before = trip.state()
    with pytest.raises(Crash):
        trip.run(HOTEL.name, failing(text(), Crash()))
    assert trip.state() == before and trip.log() == []


def test_a_step_that_keeps_killing_its_worker_uses_up_its_attempts(given):
    trip = given()
    trip.through(HOTEL.name)
    for _ in range(FLIGHT.retry.attempts):
        trip.crash(FLIGHT.name)
    assert trip.saga.status == RUNNING
    trip.run(FLIGHT.name, never, redelivered=True)  # counted: none left, so it gives up
    saga = trip.saga
    assert saga.status == COMPENSATING
    assert f"no answer after {FLIGHT.retry.attempts} attempts" in saga.error
    assert [row[3] for row in trip.log() if row[0] == FLIGHT.name] == [
        "lost"] * FLIGHT.retry.attempts
    trip.expect(command(FLIGHT), command(HOTEL, COMPENSATION))


def test_the_step_log_records_every_attempt_with_its_outcome(given):
    trip = given()
    ids = [text() for _ in range(5)]
    trip.run(HOTEL.name, replying(), task_id=ids[0])
    with pytest.raises(Crash):
        trip.run(FLIGHT.name, raising(Crash()), redelivered=True, task_id=ids[1])
    error = text()
    trip.run(FLIGHT.name, raising(Glitch(error)), redelivered=True, task_id=ids[2])
    refusal = text()
    with pytest.raises(engine.StepRefused):
        trip.run(FLIGHT.name, raising(NoSeats(refusal)), task_id=ids[3])
    trip.run(HOTEL.name, replying(), COMPENSATION, task_id=ids[4])
    rows = trip.attempts()
    assert [(row.step, row.step_index, row.phase, row.attempt, row.status, row.task_name,
             row.task_id) for row in rows] == [
        (HOTEL.name, 0, ACTION, 1, "succeeded", "hotels.book", ids[0]),
        (FLIGHT.name, 1, ACTION, 1, "lost", "flights.book", ids[1]),
        (FLIGHT.name, 1, ACTION, 2, "failed", "flights.book", ids[2]),
        (FLIGHT.name, 1, ACTION, 3, "refused", "flights.book", ids[3]),
        (HOTEL.name, 0, COMPENSATION, 1, "succeeded", "hotels.cancel", ids[4]),
    ]
    assert [row.error for row in rows] == [
        None, "the worker stopped before answering", f"Glitch: {error}",
        f"NoSeats: {refusal}", None]
    assert all(row.started_at <= row.ended_at for row in rows)
    assert trip.saga.status == COMPENSATED


def test_the_step_log_records_the_worker_each_attempt_ran_on(given):
    trip = given()
    hosts = [f"{name}@{text()}" for name in ("hotels", "flights", "flights", "flights")]
    trip.run(HOTEL.name, replying(), worker=hosts[0])
    assert trip.run(FLIGHT.name, raising(Glitch(text())), worker=hosts[1])  # a retry is due
    with pytest.raises(Crash):  # counted on its own, then its worker dies
        trip.run(FLIGHT.name, raising(Crash()), worker=hosts[2])
    trip.run(FLIGHT.name, replying(), worker=hosts[3])
    assert [(row.step, row.attempt, row.status, row.worker) for row in trip.attempts()] == [
        (HOTEL.name, 1, "succeeded", hosts[0]),
        (FLIGHT.name, 1, "failed", hosts[1]),
        (FLIGHT.name, 2, "lost", hosts[2]),
        (FLIGHT.name, 3, "succeeded", hosts[3]),
    ]


def test_an_answer_closes_the_other_running_attempts_of_its_step(given):
    trip = given()
    with pytest.raises(Crash):
        trip.run(HOTEL.name, raising(Crash()), redelivered=True)  # slow, not dead
    trip.run(HOTEL.name, replying(), redelivered=True)  # the same message, again
    assert trip.log() == [(HOTEL.name, ACTION, 1, "lost"), (HOTEL.name, ACTION, 2, "succeeded")]
    trip.run(HOTEL.name, never, attempt=1)  # the slow one, at last: ignored
    assert "running" not in [row[3] for row in trip.log()]


# Versions of the saga's row.


def test_each_saved_change_is_a_new_version_and_an_ignored_message_is_not(given):
    trip = given()
    versions = [trip.saga.version]

    def step(expect_change: bool) -> None:
        versions.append(trip.saga.version)
        assert (versions[-1] > versions[-2]) is expect_change, versions

    trip.reply(HOTEL.name)
    step(True)
    trip.run(HOTEL.name, never)
    step(False)
    trip.run(FLIGHT.name, raising(Glitch(text())))
    step(True)
    trip.overdue()
    trip.sweep()
    step(True)


# The sweeper.


def test_the_sweeper_dispatches_an_overdue_step_again_superseding_its_commands(given):
    trip = given()
    trip.overdue()
    trip.sweep()
    lost, again = trip.command_rows()
    assert lost.sent_at is not None and "superseded" in lost.last_error
    assert (again.payload["step"], again.sent_at) == (HOTEL.name, None)
    assert trip.saga.sweeps == 1 and around(trip.saga.deadline_at, HOTEL.timeout)
    trip.run(HOTEL.name, replying(), task_id=str(again.message_id))
    assert trip.command_rows()[1].sent_at is not None


def test_the_sweeper_leaves_a_step_alone_before_its_deadline(given):
    trip = given()
    before = trip.state()
    trip.sweep()
    assert trip.state() == before
    trip.expect(command(HOTEL))


def test_the_sweeper_leaves_sagas_of_definitions_this_deployment_does_not_run(given):
    trip = given()
    trip.overdue()
    with unit_of_work() as session:
        session.execute(update(Saga).where(Saga.id == uuid.UUID(trip.id))
                        .values(definition_version="0ld0ld0ld0ld"))
    before = trip.state()
    trip.sweep()
    assert trip.state() == before
    with pytest.raises(registry.UnknownDefinition, match="0ld0ld0ld0ld"):
        trip.run(HOTEL.name, never)
    assert trip.state() == before


# What a saga sends when it ends.


def test_a_saga_that_completes_sends_nothing_more(given):
    trip = given()
    trip.through(CARD.name)
    assert trip.saga.status == COMPLETED and trip.saga.ended_at is not None
    assert trip.told_when_not_completed() == []


def test_a_compensated_saga_sends_its_follow_up_once_with_its_final_data(given):
    told = SagaDefinition(KIND, TRIP.steps, if_not_completed="hotels.tell")
    trip = given(told)
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    trip.reply(HOTEL.name, COMPENSATION, cancelled=True)
    saga = trip.saga
    assert saga.status == COMPENSATED
    assert trip.told_when_not_completed() == [("hotels.tell", saga.payload)]
    assert saga.payload["cancelled"] is True


# Operators.


def test_an_operator_retries_a_failed_saga_and_it_goes_on(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    for _ in range(HOTEL.compensation_retry.attempts - 1):
        trip.run(HOTEL.name, raising(Glitch(text())), COMPENSATION)
    with pytest.raises(engine.StepFailed):
        trip.run(HOTEL.name, raising(Glitch(text())), COMPENSATION)
    assert trip.saga.status == FAILED
    with unit_of_work() as session:
        assert engine.retry(session, trip.id).status == COMPENSATING
    trip.reply(HOTEL.name, COMPENSATION)
    assert trip.saga.status == COMPENSATED
    assert [row[2:] for row in trip.log() if row[1] == COMPENSATION][-1] == (1, "succeeded")


def test_an_operator_compensates_a_running_saga_and_aborts_another(given):
    trip = given()
    trip.through(HOTEL.name)
    with unit_of_work() as session:
        assert engine.compensate(session, trip.id).status == COMPENSATING
    trip.expect(command(FLIGHT), command(HOTEL, COMPENSATION))
    other = given()
    other.through(HOTEL.name)
    with unit_of_work() as session:
        aborted = engine.abort(session, other.id)
    assert aborted.status == FAILED and aborted.error == "aborted by an operator"


@pytest.mark.parametrize(("saga_id", "message"), [
    ("not-a-uuid", "is not a saga id"), (str(uuid.uuid4()), "no saga"),
])
def test_an_operators_command_names_what_is_wrong(given, saga_id, message):
    with pytest.raises(engine.SagaStateError, match=message), unit_of_work() as session:
        engine.retry(session, saga_id)


def test_an_operator_cannot_retry_a_saga_that_has_not_failed(given):
    trip = given()
    before = trip.state()
    with (pytest.raises(engine.SagaStateError, match="retry needs a saga that is failed"),
          unit_of_work() as session):
        engine.retry(session, trip.id)
    assert trip.state() == before


# Fault injection wraps a participant from the outside.


def test_an_injected_failure_is_a_refusal_of_any_step(given, monkeypatch):
    trip = given()
    trip.through(FLIGHT.name)
    monkeypatch.setattr(faults, "configured", lambda: {NOTIFY.action: faults.Fault("fail", 1)})
    with pytest.raises(engine.StepRefused, match="injected business failure"):
        trip.run(NOTIFY.name, faults.injected(NOTIFY.action, replying(sent=True)))
    saga = trip.saga
    assert saga.status == COMPENSATING and saga.error_code == InjectedFailure.__name__
    assert "sent" not in saga.payload


def test_an_injected_error_is_transient_and_rolls_back_the_work(given, monkeypatch):
    trip = given()
    key = text()
    monkeypatch.setattr(faults, "configured", lambda: {HOTEL.action: faults.Fault("error", 1)})
    assert trip.run(HOTEL.name, faults.injected(HOTEL.action, booking(key))) is not None
    assert not participant_did(key)
    assert trip.log() == [(HOTEL.name, ACTION, 1, "failed")]


# Definitions that change while sagas run.


def test_sagas_in_flight_finish_on_the_definition_they_started_with(given, monkeypatch):
    old = given()
    old.through(HOTEL.name)
    # A deploy inserts a step; the old definition stays registered, retired.
    deployed = SagaDefinition(KIND, (HOTEL, MAIL, FLIGHT, NOTIFY, CARD))
    monkeypatch.setattr(registry, "RETIRED", (TRIP,))
    new = given(deployed)
    assert new.saga.definition_version == deployed.version != TRIP.version
    for step in (FLIGHT, NOTIFY, CARD):
        old.reply(step.name)
    old.expect(command(FLIGHT), command(NOTIFY), command(CARD))
    assert old.saga.status == COMPLETED
    new.through(CARD.name)
    assert [c.step for c in new.commands()] == [s.name for s in deployed.steps]
    assert new.saga.status == COMPLETED
