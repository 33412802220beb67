"""The saga engine's state machine, scripted: no broker, no Celery, only the database.

In the style of Eventuate Tram's saga unit tests: given a saga, when a participant answers
(with the calls `sagas.runner.run_step` makes: `begin_attempt` unless it is a first
delivery, then `finish_attempt`, then `refuse_attempt` or `fail_attempt`), expect exactly
these commands in the outbox and this state in the saga row and its step log.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

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
    SENT,
    Saga,
    SagaStep,
)
from petstore.settings import get_settings
from sagas import engine, faults, registry, runner
from sagas.definition import Retry, SagaDefinition, Step
from sagas.engine import Delivery
from sagas.faults import Fault, InjectedFailure
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
STEPS = {step.name: step for step in TRIP.steps}


@dataclass(frozen=True)
class Command:
    """A task the engine asked a participant to run, as written to the outbox."""

    task: str
    step: str
    phase: str = ACTION


def command(step: Step, phase: str = ACTION) -> Command:
    return Command(step.action if phase == ACTION else step.compensation, step.name, phase)


def raising(error: BaseException) -> Callable[[dict[str, Any]], Any]:
    def action(payload: dict[str, Any]) -> Any:
        raise error

    return action


def never(payload: dict[str, Any]) -> Any:
    raise AssertionError("the engine ran an action it should have ignored")


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

    def commands(self) -> list[Command]:
        with unit_of_work() as session:
            rows = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.payload["saga_id"].astext == self.id,
                       OutboxMessage.payload.has_key("step"))
                .order_by(OutboxMessage.id)
            ).all()
        assert all(row.kind == "command" for row in rows)
        assert all(set(row.payload) == {"saga_id", "step", "phase", "sent"} for row in rows)
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

    def expect_nothing_new(self) -> None:
        self.expect()

    def attempts(self) -> list[SagaStep]:
        with unit_of_work() as session:
            return list(session.scalars(select(SagaStep).where(
                SagaStep.saga_id == uuid.UUID(self.id)).order_by(SagaStep.id)))

    def log(self) -> list[tuple[str, str, int, str]]:
        return [(row.step, row.phase, row.attempt, row.status) for row in self.attempts()]

    # What the participants do.

    def delivery(self, step: str, phase: str, attempt: int | None = None,
                 task_id: str | None = None) -> Delivery:
        return Delivery(self.id, step, phase, task_id or text(), attempt)

    def begin(self, step: str, phase: str = ACTION, task_id: str | None = None) -> int | None:
        with unit_of_work() as session:
            return engine.begin_attempt(session, self.delivery(step, phase, task_id=task_id))

    def finish(self, step: str, attempt: int | None, action: engine.Action,
               phase: str = ACTION) -> bool:
        """`attempt` None: a first delivery, counted with its work."""
        delivery = self.delivery(step, phase, attempt)
        try:
            with unit_of_work() as session:
                return engine.finish_attempt(session, delivery, action)
        except engine.Refused as refusal:
            with unit_of_work() as session:
                return engine.refuse_attempt(session, delivery, refusal)

    def fail(self, step: str, attempt: int | None, error: str | None = None,
             phase: str = ACTION) -> float | None:
        with unit_of_work() as session:
            return engine.fail_attempt(session, self.delivery(step, phase, attempt),
                                       error or f"Glitch: {text()}")

    def deliver(self, step: str, action: engine.Action, phase: str = ACTION) -> int:
        attempt = self.begin(step, phase)
        assert attempt is not None, f"{step} {phase} was not expected"
        self.finish(step, attempt, action, phase)
        return attempt

    def reply(self, step: str, phase: str = ACTION, **reply: Any) -> int:
        return self.deliver(step, lambda payload: dict(reply), phase)

    def refuse(self, step: str, error: Exception) -> int:
        return self.deliver(step, raising(error))

    def glitch(self, step: str, phase: str = ACTION) -> tuple[int, float | None]:
        """A delivery whose action raises a transient error: (attempt, seconds to wait)."""
        attempt = self.begin(step, phase)
        assert attempt is not None
        error = Glitch(f"timeout talking to {text()}")
        with pytest.raises(Glitch):
            self.finish(step, attempt, raising(error), phase)
        return attempt, self.fail(step, attempt, f"Glitch: {error}", phase)

    def overdue(self) -> None:
        with unit_of_work() as session:
            session.execute(update(Saga).where(Saga.id == uuid.UUID(self.id))
                            .values(deadline_at=utcnow() - timedelta(seconds=1)))

    def sweep(self) -> None:
        with unit_of_work() as session:
            engine.sweep(session)

    def run(self, step: str, function: runner.StepFunction, phase: str = ACTION, *,
            redelivered: bool = False) -> float | None:
        return runner.run_step(STEPS[step].action if phase == ACTION else
                               STEPS[step].compensation, function,
                               self.delivery(step, phase), redelivered=redelivered)

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
    monkeypatch.setattr(faults, "configured", dict)  # no PETSTORE_FAULTS here
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


# Starting.


def test_starting_a_saga_dispatches_its_first_step_only(given):
    trip = given()
    trip.expect(command(HOTEL))
    saga = trip.saga
    assert (saga.kind, saga.status, saga.current_step, saga.phase) == (KIND, RUNNING, 0, ACTION)
    assert (saga.attempt, saga.sweeps, saga.version) == (0, 0, 1)
    assert saga.payload == trip.payload
    assert around(saga.deadline_at, HOTEL.timeout)
    assert saga.error is None and saga.error_code is None and saga.ended_at is None
    assert trip.log() == []


# Commands in the outbox: the receiver confirms the one it takes.


def command_rows(trip: Script) -> list[OutboxMessage]:
    with unit_of_work() as session:
        return list(session.scalars(
            select(OutboxMessage).where(OutboxMessage.payload["saga_id"].astext == trip.id,
                                        OutboxMessage.kind == COMMAND)
            .order_by(OutboxMessage.id)))


def taken(trip: Script, row: OutboxMessage, action: engine.Action) -> bool:
    """The command in `row` delivered once, as the relay sends it (its id is the task's)."""
    delivery = Delivery(trip.id, row.payload["step"], row.payload["phase"], str(row.message_id))
    with unit_of_work() as session:
        return engine.finish_attempt(session, delivery, action)


def test_a_step_confirms_the_command_it_took_in_the_transaction_that_answers_it(given):
    trip = given()
    [hotel] = command_rows(trip)
    assert hotel.sent_at is None  # published, not yet taken
    assert taken(trip, hotel, lambda payload: {"room": 12})
    hotel, flight = command_rows(trip)
    assert hotel.sent_at is not None
    assert (flight.payload["step"], flight.sent_at) == ("book_flight", None)


def test_a_step_that_fails_rolls_back_its_confirmation_with_its_work(given):
    trip = given()
    [hotel] = command_rows(trip)
    with pytest.raises(Glitch):
        taken(trip, hotel, raising(Glitch("the hotel's line is busy")))
    assert command_rows(trip)[0].sent_at is None


def test_a_command_the_saga_no_longer_waits_for_is_confirmed_and_changes_nothing(given):
    trip = given()
    [hotel] = command_rows(trip)
    trip.reply("book_hotel", room=12)
    before = trip.state()
    assert not taken(trip, hotel, never)  # a late copy of the answered command
    assert trip.state() == before
    assert command_rows(trip)[0].sent_at is not None


def test_the_sweeper_supersedes_the_commands_of_a_step_it_dispatches_again(given):
    trip = given()
    trip.overdue()
    trip.sweep()
    lost, again = command_rows(trip)
    assert lost.sent_at is not None and "superseded" in lost.last_error
    assert (again.payload["step"], again.sent_at) == ("book_hotel", None)
    assert taken(trip, again, lambda payload: {})  # the step's new command is the one taken


# Commands that carry the saga's state: a first delivery need not lock the saga.


def as_sent(trip: Script, row: OutboxMessage) -> Delivery:
    return Delivery(trip.id, row.payload["step"], row.payload["phase"], str(row.message_id),
                    sent=row.payload["sent"])


def taken_as_sent(trip: Script, row: OutboxMessage, action: engine.Action) -> None:
    """The command in `row` delivered as the runner first tries it: on the state it carries."""
    with unit_of_work() as session:
        engine.finish_sent(session, as_sent(trip, row), action)


def test_each_command_carries_the_saga_state_it_was_saved_with(given):
    trip = given()
    for step in (HOTEL, FLIGHT):
        newest = command_rows(trip)[-1]
        saga = trip.saga
        assert newest.payload["sent"] == {name: getattr(saga, name) for name in SENT}
        trip.reply(step.name, **{step.name: text()})
    trip.overdue()
    trip.sweep()
    saga = trip.saga
    assert command_rows(trip)[-1].payload["sent"] == {name: getattr(saga, name) for name in SENT}


def test_a_first_delivery_on_the_state_its_command_carries_moves_the_saga_as_a_locked_one(
        given):
    trip, twin = given(), given()
    [hotel] = command_rows(trip)
    taken_as_sent(trip, hotel, lambda payload: {"room": 12})
    twin.finish(HOTEL.name, None, lambda payload: {"room": 12})  # the same, locked
    assert trip.state()[:6] == twin.state()[:6]
    assert trip.saga.payload == {**trip.payload, "room": 12}
    assert trip.log() == twin.log() == [(HOTEL.name, ACTION, 1, "succeeded")]
    assert command_rows(trip)[0].sent_at is not None
    trip.expect(command(HOTEL), command(FLIGHT))


def test_a_command_whose_saga_moved_on_is_left_to_the_lock_with_its_work_undone(given):
    trip = given()
    [hotel] = command_rows(trip)
    trip.reply(HOTEL.name, room=7)  # another delivery of it answered first
    before, key = trip.state(), text()
    with pytest.raises(engine.Moved), unit_of_work() as session:
        engine.finish_sent(session, as_sent(trip, hotel),
                           lambda payload: participant_does(session, key))
    assert trip.state() == before and not participant_did(key)


def test_a_command_the_database_lost_is_left_to_the_lock(given):
    trip = given()
    [hotel] = command_rows(trip)
    # As if a crash lost the commit that sent it, and the saga got back to the same version.
    with unit_of_work() as session:
        session.execute(delete(OutboxMessage).where(OutboxMessage.id == hotel.id))
    before = trip.state()
    with pytest.raises(engine.Moved):
        taken_as_sent(trip, hotel, lambda payload: {"room": 1})
    assert trip.state() == before and trip.log() == []


def test_a_command_of_a_step_that_failed_before_is_left_to_the_lock(given):
    trip = given()
    [hotel] = command_rows(trip)
    trip.glitch(HOTEL.name)  # Celery retries this very message: its state is old
    with pytest.raises(engine.Moved):
        taken_as_sent(trip, hotel, never)
    assert trip.log() == [(HOTEL.name, ACTION, 1, "failed")]


def test_a_step_that_raises_on_its_commands_state_is_left_to_the_lock(given):
    trip = given()
    [hotel] = command_rows(trip)
    with pytest.raises(engine.Moved, match="no rooms"):
        taken_as_sent(trip, hotel, raising(NoRooms("no rooms")))
    assert trip.log() == [] and command_rows(trip)[0].sent_at is None


def test_the_runner_runs_a_command_on_its_state_once(given):
    trip = given()
    calls = []

    def book(session, payload):
        calls.append(payload)
        return {"room": 3}

    [hotel] = command_rows(trip)
    assert runner.run_step(HOTEL.action, book, as_sent(trip, hotel)) is None
    assert calls == [trip.payload]
    assert trip.saga.payload["room"] == 3
    trip.expect(command(HOTEL), command(FLIGHT))


def test_the_runner_runs_a_command_whose_saga_moved_on_again_locked_and_ignores_it(given):
    trip = given()
    [hotel] = command_rows(trip)
    trip.reply(HOTEL.name, room=7)
    calls = []
    before = trip.state()
    assert runner.run_step(HOTEL.action, lambda session, payload: calls.append(1),
                           as_sent(trip, hotel)) is None
    assert calls == [1]  # on the state it carried; rolled back; then ignored, locked
    assert trip.state() == before


def test_a_refusal_injected_into_a_first_delivery_compensates_with_the_work_undone(
        given, monkeypatch):
    trip = given()
    monkeypatch.setattr(faults, "configured", lambda: {HOTEL.action: Fault("fail", 1.0)})
    [hotel] = command_rows(trip)
    key = text()
    with pytest.raises(runner.StepRefused, match="injected business failure"):
        runner.run_step(HOTEL.action, lambda session, payload: participant_does(session, key),
                        as_sent(trip, hotel))
    assert not participant_did(key)
    assert trip.saga.status == COMPENSATED and trip.saga.error_code == "InjectedFailure"
    assert trip.log() == [(HOTEL.name, ACTION, 1, "refused")]


def test_a_delivery_meets_the_same_injected_fault_however_often_its_step_runs(monkeypatch):
    monkeypatch.setattr(faults, "configured", lambda: {HOTEL.action: Fault("fail", 0.5)})
    met = set()
    for _ in range(64):  # deliveries
        fault = faults.drawn(HOTEL.action)
        runs = set()
        for _ in range(3):  # the step run again within the delivery
            try:
                fault()
                runs.add(False)
            except InjectedFailure:
                runs.add(True)
        assert len(runs) == 1
        met |= runs
    assert met == {True, False}  # a fault of probability 0.5 meets some deliveries only


# The happy path.


def test_the_happy_path_dispatches_each_step_in_order_and_completes_with_the_replies_merged(
        given):
    trip = given()
    replies = {step.name: {f"{step.name}_ref": text(), "seen_by": step.name}
               for step in TRIP.steps}
    seen: dict[str, dict] = {}
    for step in TRIP.steps:
        trip.expect(command(step))

        def act(payload, step=step):
            seen[step.name] = dict(payload)
            return replies[step.name]

        trip.deliver(step.name, act)
    trip.expect_nothing_new()
    saga = trip.saga
    merged = dict(trip.payload)
    for step in TRIP.steps:
        assert seen[step.name] == merged  # each step sees the replies of the steps before
        merged.update(replies[step.name])
    assert saga.status == COMPLETED
    assert saga.payload == merged and saga.payload["seen_by"] == CARD.name
    assert saga.error is None and saga.error_code is None
    assert saga.deadline_at is None and saga.ended_at is not None
    assert trip.log() == [(step.name, ACTION, 1, "succeeded") for step in TRIP.steps]


def test_a_step_that_replies_nothing_leaves_the_payload_as_it_was(given):
    trip = given()
    trip.deliver(HOTEL.name, lambda payload: None)
    trip.expect(command(HOTEL), command(FLIGHT))
    assert trip.saga.payload == trip.payload


def test_each_dispatch_gives_the_step_its_own_deadline(given):
    slow = replace(FLIGHT, timeout=random.randint(60, 600))
    trip = given(replace(TRIP, steps=(HOTEL, slow, NOTIFY, CARD)))
    trip.reply(HOTEL.name)
    assert around(trip.saga.deadline_at, slow.timeout)


# Business refusals.


def test_a_refusal_in_the_second_step_compensates_only_the_first_and_ends_compensated(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.expect(command(FLIGHT))
    flight = f"AF{random.randint(100, 999)}"
    trip.refuse(FLIGHT.name, NoSeats(f"{flight} is full"))
    saga = trip.saga
    assert (saga.status, saga.current_step, saga.phase) == (COMPENSATING, 0, COMPENSATION)
    assert saga.error_code == "NoSeats"
    assert flight in saga.error and FLIGHT.name in saga.error
    trip.expect(command(HOTEL, COMPENSATION))
    trip.reply(HOTEL.name, phase=COMPENSATION)
    trip.expect_nothing_new()
    saga = trip.saga
    assert saga.status == COMPENSATED and saga.error_code == "NoSeats"
    assert saga.deadline_at is None and saga.ended_at is not None
    assert trip.log() == [(HOTEL.name, ACTION, 1, "succeeded"),
                          (FLIGHT.name, ACTION, 1, "refused"),
                          (HOTEL.name, COMPENSATION, 1, "succeeded")]


def test_a_refusal_in_the_first_step_ends_compensated_with_nothing_to_compensate(given):
    trip = given()
    trip.expect(command(HOTEL))
    trip.refuse(HOTEL.name, NoRooms(f"no room for {trip.payload['nights']} nights"))
    trip.expect_nothing_new()
    saga = trip.saga
    assert saga.status == COMPENSATED and saga.error_code == "NoRooms"
    assert f"{trip.payload['nights']} nights" in saga.error
    assert saga.deadline_at is None and saga.ended_at is not None
    assert saga.payload == trip.payload
    assert trip.log() == [(HOTEL.name, ACTION, 1, "refused")]


@pytest.mark.parametrize(("refusing", "error"), [
    (HOTEL, NoRooms), (FLIGHT, NoSeats), (CARD, CardDeclined)])
def test_a_refusal_compensates_every_earlier_step_last_first_skipping_those_without_one(
        given, refusing, error):
    trip = given()
    index = TRIP.index(refusing.name)
    if index:
        trip.through(TRIP.steps[index - 1].name)
    trip.expect(command(refusing))
    trip.refuse(refusing.name, error(text()))
    undo = [step for step in reversed(TRIP.steps[:index]) if step.compensation]
    for step in undo:
        trip.expect(command(step, COMPENSATION))
        assert trip.saga.status == COMPENSATING
        trip.reply(step.name, phase=COMPENSATION)
    trip.expect_nothing_new()
    assert trip.saga.status == COMPENSATED
    assert trip.saga.error_code == error.__name__
    assert [row for row in trip.log() if row[1] == COMPENSATION] == [
        (step.name, COMPENSATION, 1, "succeeded") for step in undo]


def test_the_refusing_step_is_neither_retried_nor_compensated(given):
    trip = given()
    trip.through(NOTIFY.name)
    trip.refuse(CARD.name, CardDeclined(text()))
    assert trip.begin(CARD.name) is None
    assert command(CARD, COMPENSATION) not in trip.commands()
    assert trip.commands().count(command(CARD)) == 1


def test_a_refusal_rolls_back_what_the_participant_wrote_before_refusing(given):
    trip = given()
    key = text()

    def book(session, payload):
        participant_does(session, key)
        raise NoRooms("sold out")

    with pytest.raises(runner.StepRefused, match="sold out"):
        trip.run(HOTEL.name, book)
    assert trip.saga.status == COMPENSATED
    assert not participant_did(key)
    assert trip.log() == [(HOTEL.name, ACTION, 1, "refused")]


def test_an_error_named_after_another_steps_refusal_is_not_a_refusal_here(given):
    trip = given()
    trip.through(NOTIFY.name)
    attempt = trip.begin(CARD.name)
    with pytest.raises(NoSeats):
        trip.finish(CARD.name, attempt, raising(NoSeats(text())))
    assert trip.saga.status == RUNNING and trip.saga.error_code is None


def test_a_refusal_during_compensation_is_an_error_to_retry_not_a_refusal(given):
    trip = given()
    trip.through(NOTIFY.name)
    trip.refuse(CARD.name, CardDeclined(text()))
    trip.expect(command(CARD), command(FLIGHT, COMPENSATION))
    attempt = trip.begin(FLIGHT.name, COMPENSATION)
    with pytest.raises(NoSeats):
        trip.finish(FLIGHT.name, attempt, raising(NoSeats(text())), COMPENSATION)
    saga = trip.saga
    assert (saga.status, saga.phase, saga.current_step) == (COMPENSATING, COMPENSATION, 1)


# Transient failures.


def test_an_error_that_is_no_refusal_propagates_and_rolls_back_the_whole_delivery(given):
    trip = given()
    trip.expect(command(HOTEL))
    attempt = trip.begin(HOTEL.name)
    before = trip.state()
    with pytest.raises(Glitch):
        trip.finish(HOTEL.name, attempt, raising(Glitch(text())))
    assert trip.state() == before
    trip.expect_nothing_new()
    assert trip.log() == [(HOTEL.name, ACTION, 1, "running")]
    # The claim against duplicates was rolled back too: the retry goes through.
    assert trip.fail(HOTEL.name, attempt) is not None
    trip.reply(HOTEL.name)
    trip.expect(command(FLIGHT))
    assert trip.log() == [(HOTEL.name, ACTION, 1, "failed"), (HOTEL.name, ACTION, 2, "succeeded")]


def test_transient_failures_wait_longer_each_time_then_the_saga_compensates(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.expect(command(FLIGHT))
    policy = FLIGHT.retry
    delays = []
    for n in range(1, policy.attempts):
        attempt, delay = trip.glitch(FLIGHT.name)
        assert attempt == n and delay is not None
        low, high = bounds(policy, n)
        assert low <= delay <= high
        delays.append(delay)
        assert trip.saga.status == RUNNING
        trip.expect_nothing_new()  # a retry is the same message delivered again
    assert delays == sorted(delays)
    attempt, delay = trip.glitch(FLIGHT.name)
    assert (attempt, delay) == (policy.attempts, None)
    saga = trip.saga
    assert saga.status == COMPENSATING and saga.error_code is None
    assert f"failed {policy.attempts} times" in saga.error and "Glitch" in saga.error
    trip.expect(command(HOTEL, COMPENSATION))
    assert [row[3] for row in trip.log() if row[0] == FLIGHT.name] == (
        ["failed"] * policy.attempts)


def test_a_step_allowed_two_attempts_gives_up_at_the_second_failure(given):
    trip = given()
    trip.through(NOTIFY.name)
    assert trip.glitch(CARD.name)[1] is not None
    assert trip.glitch(CARD.name) == (2, None)
    trip.expect(command(CARD), command(FLIGHT, COMPENSATION))


def test_after_a_transient_failure_the_sweeper_waits_for_the_delay_and_the_timeout(given):
    trip = given()
    _, delay = trip.glitch(HOTEL.name)
    assert around(trip.saga.deadline_at, delay + HOTEL.timeout)


def test_a_transient_failure_in_the_first_step_that_never_ends_compensates_nothing(given):
    trip = given()
    for _ in range(HOTEL.retry.attempts):
        trip.glitch(HOTEL.name)
    trip.expect(command(HOTEL))
    assert trip.saga.status == COMPENSATED and trip.saga.ended_at is not None


def test_a_compensation_that_keeps_failing_ends_failed_with_its_error(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    trip.expect(command(FLIGHT), command(HOTEL, COMPENSATION))
    policy = HOTEL.compensation_retry
    for n in range(1, policy.attempts):
        attempt, delay = trip.glitch(HOTEL.name, COMPENSATION)
        assert attempt == n and bounds(policy, n)[0] <= delay <= bounds(policy, n)[1]
        assert trip.saga.status == COMPENSATING
    attempt = trip.begin(HOTEL.name, COMPENSATION)
    last = f"Glitch: hotel {text()} unreachable"
    assert trip.fail(HOTEL.name, attempt, last, COMPENSATION) is None
    trip.expect_nothing_new()
    saga = trip.saga
    assert saga.status == FAILED
    assert last in saga.error and HOTEL.name in saga.error and COMPENSATION in saga.error
    assert saga.deadline_at is None and saga.ended_at is not None
    assert trip.begin(HOTEL.name, COMPENSATION) is None


def test_a_compensation_that_fails_once_then_succeeds_carries_on_with_the_earlier_steps(given):
    trip = given()
    trip.through(NOTIFY.name)
    trip.refuse(CARD.name, CardDeclined(text()))
    trip.glitch(FLIGHT.name, COMPENSATION)
    trip.reply(FLIGHT.name, phase=COMPENSATION)
    trip.expect(command(CARD), command(FLIGHT, COMPENSATION), command(HOTEL, COMPENSATION))
    trip.reply(HOTEL.name, phase=COMPENSATION)
    assert trip.saga.status == COMPENSATED


# Ending without completing.

TOLD_TRIP = replace(TRIP, if_not_completed="hotels.announce_rooms")


def test_a_saga_that_completes_sends_nothing_more(given):
    trip = given(TOLD_TRIP)
    trip.through(CARD.name)
    assert trip.saga.status == COMPLETED
    assert trip.told_when_not_completed() == []


def test_a_compensated_saga_sends_its_follow_up_once_with_its_final_data(given):
    trip = given(TOLD_TRIP)
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    assert trip.told_when_not_completed() == []  # not before it ends
    trip.reply(HOTEL.name, phase=COMPENSATION)
    saga = trip.saga
    assert saga.status == COMPENSATED
    assert trip.told_when_not_completed() == [("hotels.announce_rooms", saga.payload)]
    assert "book_hotel_ref" in saga.payload


def test_a_saga_that_fails_and_then_is_retried_to_its_end_sends_its_follow_up_each_time(
        given):
    trip = given(TOLD_TRIP)
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    for _ in range(HOTEL.compensation_retry.attempts):
        trip.glitch(HOTEL.name, COMPENSATION)
    assert trip.saga.status == FAILED
    assert [name for name, _ in trip.told_when_not_completed()] == ["hotels.announce_rooms"]
    with unit_of_work() as session:
        engine.retry(session, trip.id)
    trip.reply(HOTEL.name, phase=COMPENSATION)
    assert trip.saga.status == COMPENSATED
    assert [name for name, _ in trip.told_when_not_completed()] == ["hotels.announce_rooms"] * 2


def test_a_step_retried_by_an_operator_numbers_its_attempts_afresh_in_the_log(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    budget = HOTEL.compensation_retry.attempts
    for _ in range(budget):
        trip.glitch(HOTEL.name, COMPENSATION)
    with unit_of_work() as session:
        engine.retry(session, trip.id)
    trip.glitch(HOTEL.name, COMPENSATION)
    trip.reply(HOTEL.name, phase=COMPENSATION)
    assert trip.saga.status == COMPENSATED
    compensations = [(n, status) for step, phase, n, status in trip.log()
                     if (step, phase) == (HOTEL.name, COMPENSATION)]
    assert compensations == ([(n, "failed") for n in range(1, budget + 1)]
                             + [(1, "failed"), (2, "succeeded")])


def test_a_saga_aborted_by_an_operator_sends_its_follow_up(given):
    trip = given(TOLD_TRIP)
    trip.through(FLIGHT.name)
    with unit_of_work() as session:
        engine.abort(session, trip.id)
    assert trip.saga.status == FAILED
    assert [name for name, _ in trip.told_when_not_completed()] == ["hotels.announce_rooms"]


def test_a_saga_refused_at_its_first_step_changed_nothing_and_sends_no_follow_up(given):
    trip = given(TOLD_TRIP)
    trip.refuse(HOTEL.name, NoRooms(text()))
    assert trip.saga.status == COMPENSATED
    assert trip.told_when_not_completed() == []


def test_a_saga_aborted_before_its_first_step_answered_sends_no_follow_up(given):
    trip = given(TOLD_TRIP)
    with unit_of_work() as session:
        engine.abort(session, trip.id)
    assert trip.saga.status == FAILED
    assert trip.told_when_not_completed() == []


def test_a_saga_without_a_follow_up_sends_none_when_compensated(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    trip.reply(HOTEL.name, phase=COMPENSATION)
    assert trip.saga.status == COMPENSATED
    assert trip.told_when_not_completed() == []


# Duplicates and late replies.


def test_a_duplicated_delivery_of_a_finished_step_changes_nothing_and_dispatches_nothing(
        given):
    trip = given()
    trip.through(FLIGHT.name)
    trip.expect(command(NOTIFY))
    before, log = trip.state(), trip.log()
    for step in (HOTEL, FLIGHT):
        assert trip.begin(step.name) is None
        trip.finish(step.name, 1, never)
        assert trip.fail(step.name, 1) is None
    trip.expect_nothing_new()
    assert trip.state() == before and trip.log() == log


def test_a_duplicated_delivery_after_the_saga_ended_changes_nothing(given):
    trip = given()
    trip.through(CARD.name)
    before, log = trip.state(), trip.log()
    assert trip.begin(CARD.name) is None
    trip.finish(CARD.name, 1, never)
    assert trip.run(CARD.name, lambda session, payload: never(payload)) is None
    trip.expect_nothing_new()
    assert trip.state() == before and trip.log() == log


def test_a_duplicated_compensation_after_it_finished_changes_nothing(given):
    trip = given()
    trip.through(NOTIFY.name)
    trip.refuse(CARD.name, CardDeclined(text()))
    trip.reply(FLIGHT.name, phase=COMPENSATION)
    before, log = trip.state(), trip.log()
    assert trip.begin(FLIGHT.name, COMPENSATION) is None
    trip.finish(FLIGHT.name, 1, never, COMPENSATION)
    assert trip.state() == before and trip.log() == log
    trip.expect(command(CARD), command(FLIGHT, COMPENSATION), command(HOTEL, COMPENSATION))


def test_a_late_reply_of_an_earlier_attempt_of_a_finished_step_is_ignored(given):
    trip = given()
    trip.expect(command(HOTEL))
    first = trip.begin(HOTEL.name)  # a slow worker
    second = trip.begin(HOTEL.name)  # the same message, delivered again
    trip.finish(HOTEL.name, second, lambda payload: {"room": "from the second"})
    trip.expect(command(FLIGHT))
    before = trip.state()
    trip.finish(HOTEL.name, first, never)
    assert trip.fail(HOTEL.name, first) is None
    assert trip.state() == before and trip.saga.payload["room"] == "from the second"
    trip.expect_nothing_new()


def test_a_late_delivery_of_a_step_the_saga_gave_up_on_does_not_run(given):
    trip = given()
    trip.through(HOTEL.name)
    for _ in range(FLIGHT.retry.attempts):
        trip.glitch(FLIGHT.name)
    before = trip.state()
    assert trip.begin(FLIGHT.name) is None
    trip.finish(FLIGHT.name, FLIGHT.retry.attempts, never)
    assert trip.state() == before
    trip.expect(command(FLIGHT), command(HOTEL, COMPENSATION))


def test_a_message_for_the_current_step_in_the_other_phase_is_ignored(given):
    trip = given()
    trip.through(HOTEL.name)
    before = trip.state()
    assert trip.begin(FLIGHT.name, COMPENSATION) is None
    trip.finish(FLIGHT.name, 1, never, COMPENSATION)
    assert trip.fail(FLIGHT.name, 1, phase=COMPENSATION) is None
    assert trip.state() == before


def test_a_message_for_a_later_step_is_ignored(given):
    trip = given()
    before = trip.state()
    assert trip.begin(CARD.name) is None
    trip.finish(CARD.name, 1, never)
    assert trip.state() == before and trip.log() == []


# First deliveries: counted in the transaction that does their work.


def test_a_first_delivery_is_counted_with_its_work_in_one_transaction(given):
    trip = given()
    task_id = text()
    delivery = Delivery(trip.id, HOTEL.name, ACTION, task_id)
    with unit_of_work() as session:
        assert engine.finish_attempt(session, delivery, lambda payload: {"room": "12"})
    trip.expect(command(HOTEL), command(FLIGHT))
    [row] = trip.attempts()
    assert (row.step, row.attempt, row.status, row.task_id) == (HOTEL.name, 1, "succeeded",
                                                                 task_id)
    assert delivery.started_at == row.started_at <= row.ended_at


def test_a_first_delivery_of_a_step_already_counted_is_sent_to_be_counted_first(given):
    trip = given()
    trip.begin(HOTEL.name)  # an earlier delivery, perhaps crashed
    before = trip.state()
    with pytest.raises(engine.CountFirst):
        trip.finish(HOTEL.name, None, never)
    assert trip.state() == before


def test_a_first_delivery_that_fails_is_counted_when_its_failure_is_recorded(given):
    trip = given()
    before = trip.state()
    with pytest.raises(Glitch):
        trip.finish(HOTEL.name, None, raising(Glitch(text())))
    assert trip.state() == before and trip.log() == []  # the count rolled back too
    low, high = bounds(HOTEL.retry, 1)
    assert low <= trip.fail(HOTEL.name, None) <= high
    assert trip.saga.attempt == 1
    assert trip.log() == [(HOTEL.name, ACTION, 1, "failed")]


def test_a_first_delivery_overtaken_by_a_counted_one_leaves_the_decision_to_it(given):
    trip = given()
    with pytest.raises(Glitch):
        trip.finish(HOTEL.name, None, raising(Glitch(text())))
    trip.begin(HOTEL.name)  # the same message, redelivered meanwhile
    assert trip.fail(HOTEL.name, None) is None
    late_refusal = engine.Refused(NoRooms.__name__, text())  # another one's, as late
    with unit_of_work() as session:
        assert not engine.refuse_attempt(session, trip.delivery(HOTEL.name, ACTION),
                                         late_refusal)
    assert trip.log() == [(HOTEL.name, ACTION, 1, "running")]
    assert trip.saga.status == RUNNING


def test_a_steps_outcome_is_its_idempotency_key_recorded_once(given):
    trip = given()
    trip.reply(HOTEL.name)
    with pytest.raises(IntegrityError), unit_of_work() as session:
        session.add(SagaStep(saga_id=uuid.UUID(trip.id), step=HOTEL.name, step_index=0,
                             phase=ACTION, attempt=2, status="succeeded",
                             task_name=HOTEL.action))


# Crashes: every delivery counts.


def test_every_delivery_counts_so_a_step_that_keeps_crashing_gives_up(given):
    trip = given()
    trip.through(HOTEL.name)
    attempts = FLIGHT.retry.attempts
    for n in range(1, attempts + 1):
        assert trip.begin(FLIGHT.name) == n  # and the worker dies before answering
    assert trip.begin(FLIGHT.name) is None
    saga = trip.saga
    assert saga.status == COMPENSATING and saga.error_code is None
    assert f"no answer after {attempts} attempts" in saga.error
    trip.expect(command(FLIGHT), command(HOTEL, COMPENSATION))
    assert [row[2:] for row in trip.log() if row[0] == FLIGHT.name] == [
        (n, "lost") for n in range(1, attempts + 1)]


def test_a_compensation_whose_worker_keeps_crashing_ends_failed(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    attempts = HOTEL.compensation_retry.attempts
    for n in range(1, attempts + 1):
        assert trip.begin(HOTEL.name, COMPENSATION) == n
    assert trip.begin(HOTEL.name, COMPENSATION) is None
    saga = trip.saga
    assert saga.status == FAILED and f"no answer after {attempts} attempts" in saga.error
    assert [row[3] for row in trip.log() if row[1] == COMPENSATION] == ["lost"] * attempts


def test_a_crashed_attempt_is_recorded_lost_when_the_next_delivery_begins(given):
    trip = given()
    trip.begin(HOTEL.name)
    assert trip.log() == [(HOTEL.name, ACTION, 1, "running")]
    trip.reply(HOTEL.name)
    assert trip.log() == [(HOTEL.name, ACTION, 1, "lost"), (HOTEL.name, ACTION, 2, "succeeded")]
    assert trip.attempts()[0].error == "the worker stopped before answering"


def test_crashes_and_transient_failures_share_the_same_budget(given):
    trip = given()
    trip.through(NOTIFY.name)
    trip.begin(CARD.name)  # crash
    assert trip.glitch(CARD.name) == (2, None)
    assert trip.saga.status == COMPENSATING


# The sweeper.


def test_the_sweeper_dispatches_an_overdue_step_again(given):
    trip = given()
    trip.expect(command(HOTEL))
    version = trip.saga.version
    trip.overdue()
    trip.sweep()
    trip.expect(command(HOTEL))
    saga = trip.saga
    assert (saga.status, saga.current_step, saga.sweeps, saga.attempt) == (RUNNING, 0, 1, 0)
    assert saga.version > version
    assert around(saga.deadline_at, HOTEL.timeout)
    trip.reply(HOTEL.name)  # the message sent again can still do the work
    trip.expect(command(FLIGHT))
    assert trip.saga.sweeps == 0


def test_the_sweeper_leaves_a_step_alone_before_its_deadline(given):
    trip = given()
    trip.begin(HOTEL.name)
    before = trip.state()
    trip.sweep()
    trip.expect(command(HOTEL))
    assert trip.state() == before


def test_the_sweeper_gives_up_after_the_policys_attempts_and_compensates(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.expect(command(FLIGHT))
    for n in range(1, FLIGHT.retry.attempts + 1):
        trip.overdue()
        trip.sweep()
        trip.expect(command(FLIGHT))
        assert trip.saga.sweeps == n and trip.saga.status == RUNNING
    trip.overdue()
    trip.sweep()
    trip.expect(command(HOTEL, COMPENSATION))
    saga = trip.saga
    assert (saga.status, saga.current_step, saga.phase) == (COMPENSATING, 0, COMPENSATION)
    assert f"timed out {FLIGHT.retry.attempts} times" in saga.error
    assert saga.sweeps == 0 and around(saga.deadline_at, HOTEL.timeout)


def test_the_sweeper_gives_up_on_an_overdue_compensation_and_the_saga_fails(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    trip.expect(command(FLIGHT), command(HOTEL, COMPENSATION))
    for _ in range(HOTEL.compensation_retry.attempts):
        trip.overdue()
        trip.sweep()
        trip.expect(command(HOTEL, COMPENSATION))
    trip.overdue()
    trip.sweep()
    trip.expect_nothing_new()
    saga = trip.saga
    assert saga.status == FAILED and "timed out" in saga.error
    assert saga.deadline_at is None and saga.ended_at is not None


@pytest.mark.parametrize("ending", [COMPLETED, COMPENSATED])
def test_the_sweeper_ignores_a_saga_that_ended_even_with_a_deadline(given, ending):
    trip = given()
    if ending == COMPLETED:
        trip.through(CARD.name)
    else:
        trip.expect(command(HOTEL))
        trip.refuse(HOTEL.name, NoRooms(text()))
    trip.overdue()
    before = trip.state()
    trip.sweep()
    trip.expect_nothing_new()
    assert trip.state() == before and trip.saga.status == ending


# Versions.


def test_each_transition_bumps_the_version_and_ignored_messages_do_not(given):
    trip = given()
    versions = [trip.saga.version]

    def bumped() -> None:
        versions.append(trip.saga.version)
        assert versions[-1] > versions[-2], versions

    def unchanged() -> None:
        assert trip.saga.version == versions[-1]

    attempt = trip.begin(HOTEL.name)
    bumped()
    trip.finish(HOTEL.name, attempt, lambda payload: {"room": text()})  # dispatches FLIGHT
    bumped()
    assert trip.begin(HOTEL.name) is None
    unchanged()
    attempt = trip.begin(FLIGHT.name)
    bumped()
    with pytest.raises(Glitch):
        trip.finish(FLIGHT.name, attempt, raising(Glitch(text())))
    unchanged()
    trip.fail(FLIGHT.name, attempt)
    bumped()
    trip.overdue()
    trip.sweep()
    bumped()
    trip.refuse(FLIGHT.name, NoSeats(text()))  # begin, then turn back
    versions.append(trip.saga.version)
    assert versions[-1] >= versions[-2] + 2
    trip.reply(HOTEL.name, phase=COMPENSATION)  # begin, then the end
    versions.append(trip.saga.version)
    assert versions[-1] >= versions[-2] + 2
    assert trip.saga.status == COMPENSATED


# The step log.


def test_the_step_log_records_every_attempt_with_its_outcome(given):
    trip = given()
    ids = [text() for _ in range(5)]
    attempt = trip.begin(HOTEL.name, task_id=ids[0])
    trip.finish(HOTEL.name, attempt, lambda payload: {})
    trip.begin(FLIGHT.name, task_id=ids[1])  # crashes
    attempt = trip.begin(FLIGHT.name, task_id=ids[2])
    error = f"Glitch: {text()}"
    trip.fail(FLIGHT.name, attempt, error)
    attempt = trip.begin(FLIGHT.name, task_id=ids[3])
    refusal = text()
    trip.finish(FLIGHT.name, attempt, raising(NoSeats(refusal)))
    attempt = trip.begin(HOTEL.name, COMPENSATION, task_id=ids[4])
    trip.finish(HOTEL.name, attempt, lambda payload: None, COMPENSATION)
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
        None, "the worker stopped before answering", error, f"NoSeats: {refusal}", None]
    assert all(row.started_at <= row.ended_at for row in rows)


# Retry.delay.


@pytest.mark.parametrize("attempt", range(1, 9))
def test_a_retry_waits_between_half_and_all_of_a_doubling_backoff(attempt):
    policy = Retry(backoff=random.uniform(0.01, 2.0), max_backoff=1e9)
    ceiling = policy.backoff * 2 ** (attempt - 1)
    for _ in range(50):
        assert ceiling / 2 <= policy.delay(attempt) <= ceiling


def test_a_retry_never_waits_longer_than_the_maximum_backoff():
    policy = Retry(backoff=random.uniform(0.1, 1.0), max_backoff=random.uniform(2.0, 5.0))
    for attempt in range(1, 40):
        ceiling = min(policy.max_backoff, policy.backoff * 2 ** (attempt - 1))
        assert ceiling / 2 <= policy.delay(attempt) <= ceiling <= policy.max_backoff
    assert all(policy.max_backoff / 2 <= policy.delay(30) <= policy.max_backoff
               for _ in range(50))


def test_retry_delays_grow_with_each_attempt():
    policy = Retry(backoff=random.uniform(0.05, 1.0), max_backoff=1e9)
    for attempt in range(1, 10):
        assert max(policy.delay(attempt) for _ in range(20)) <= min(
            policy.delay(attempt + 1) for _ in range(20))


def test_retry_delays_are_jittered_across_the_whole_window():
    policy = Retry(backoff=random.uniform(0.1, 1.0))
    ceiling = policy.backoff * 4  # the third attempt's: the window is [ceiling / 2, ceiling]
    delays = [policy.delay(3) for _ in range(200)]
    assert any(delay < 0.75 * ceiling for delay in delays)
    assert any(delay > 0.75 * ceiling for delay in delays)


def test_a_retry_with_a_very_large_budget_still_waits_at_most_the_maximum_backoff():
    policy = Retry(attempts=10**6, backoff=random.uniform(0.1, 1.0))
    attempt = random.randint(1100, 5000)
    assert policy.max_backoff / 2 <= policy.delay(attempt) <= policy.max_backoff


# The runner.


def test_the_runner_commits_the_participants_work_with_the_saga_moving_on(given):
    trip = given()
    key, seen = text(), []

    def book(session, payload):
        seen.append(payload)
        participant_does(session, key)
        return {"room": key}

    assert trip.run(HOTEL.name, book) is None
    assert seen == [trip.payload]
    assert participant_did(key)
    assert trip.saga.payload["room"] == key
    trip.expect(command(HOTEL), command(FLIGHT))


def test_the_runner_rolls_back_a_transient_failure_and_says_when_to_retry(given):
    trip = given()
    key, message = text(), text()

    def book(session, payload):
        participant_does(session, key)
        raise RuntimeError(message)

    delay = trip.run(HOTEL.name, book)
    low, high = bounds(HOTEL.retry, 1)
    assert delay is not None and low <= delay <= high
    assert not participant_did(key)
    assert trip.attempts()[0].status == "failed"
    assert trip.attempts()[0].error == f"RuntimeError: {message}"
    for _ in range(HOTEL.retry.attempts - 2):
        trip.run(HOTEL.name, book)
    with pytest.raises(runner.StepFailed, match=message):
        trip.run(HOTEL.name, book)
    assert trip.saga.status == COMPENSATED


def test_the_runner_counts_a_redelivered_message_on_its_own_before_running_it(given):
    trip = given()
    seen = []
    trip.run(HOTEL.name, lambda session, payload: seen.append(trip.log()), redelivered=True)
    assert seen == [[(HOTEL.name, ACTION, 1, "running")]]  # committed before the work
    assert trip.log() == [(HOTEL.name, ACTION, 1, "succeeded")]


def test_the_runner_counts_a_retry_on_its_own_before_running_it(given):
    trip = given()
    assert trip.run(HOTEL.name, lambda session, payload: raising(Glitch(text()))(payload))
    seen = []
    trip.run(HOTEL.name, lambda session, payload: seen.append(trip.log()))
    assert seen == [[(HOTEL.name, ACTION, 1, "failed"), (HOTEL.name, ACTION, 2, "running")]]
    assert trip.log()[-1] == (HOTEL.name, ACTION, 2, "succeeded")
    trip.expect(command(HOTEL), command(FLIGHT))


def test_the_runner_leaves_an_error_while_counting_to_celery_to_retry(given, monkeypatch):
    trip = given()
    error = Glitch(f"the database went away {text()}")
    monkeypatch.setattr(engine, "begin_attempt", lambda session, delivery: raising(error)({}))
    with pytest.raises(Glitch):
        trip.run(HOTEL.name, lambda session, payload: never(payload), redelivered=True)
    assert trip.log() == [] and trip.saga.status == RUNNING


def test_the_runner_skips_a_delivery_the_saga_does_not_wait_for(given):
    trip = given()
    trip.through(HOTEL.name)
    trip.expect(command(FLIGHT))
    assert trip.run(HOTEL.name, lambda session, payload: never(payload)) is None
    assert trip.run(HOTEL.name, lambda session, payload: never(payload), COMPENSATION) is None
    trip.expect_nothing_new()


def test_an_injected_failure_is_a_refusal_of_any_step(given, monkeypatch):
    trip = given()
    trip.through(FLIGHT.name)
    monkeypatch.setattr(faults, "configured", lambda: {NOTIFY.action: Fault("fail", 1.0)})
    with pytest.raises(runner.StepRefused, match="injected business failure"):
        trip.run(NOTIFY.name, lambda session, payload: {"sent": True})
    saga = trip.saga
    assert saga.status == COMPENSATING and saga.error_code == InjectedFailure.__name__
    assert "sent" not in saga.payload
    trip.expect(command(NOTIFY), command(FLIGHT, COMPENSATION))


def test_an_injected_failure_during_compensation_is_retried(given, monkeypatch):
    trip = given()
    trip.through(HOTEL.name)
    trip.refuse(FLIGHT.name, NoSeats(text()))
    monkeypatch.setattr(faults, "configured", lambda: {HOTEL.compensation: Fault("fail", 1.0)})
    assert trip.run(HOTEL.name, lambda session, payload: None, COMPENSATION) is not None
    assert trip.saga.status == COMPENSATING


def test_an_injected_error_is_transient(given, monkeypatch):
    trip = given()
    key = text()
    monkeypatch.setattr(faults, "configured", lambda: {HOTEL.action: Fault("error", 1.0)})

    def book(session, payload):
        participant_does(session, key)

    assert trip.run(HOTEL.name, book) is not None
    assert not participant_did(key)
    assert trip.log() == [(HOTEL.name, ACTION, 1, "failed")]


# Known bugs.


def test_when_the_sweeper_gives_up_the_crashed_attempt_is_recorded_lost(given):
    trip = given()
    trip.begin(HOTEL.name)  # the worker dies; the message is never delivered again
    for _ in range(HOTEL.retry.attempts + 1):
        trip.overdue()
        trip.sweep()
    assert trip.saga.status == COMPENSATED
    assert trip.log() == [(HOTEL.name, ACTION, 1, "lost")]


def test_when_a_step_finishes_no_other_attempt_of_it_is_left_running(given):
    trip = given()
    first = trip.begin(HOTEL.name)  # slow, not dead
    second = trip.begin(HOTEL.name)  # the sweeper's copy, delivered meanwhile
    trip.finish(HOTEL.name, first, lambda payload: {})
    trip.finish(HOTEL.name, second, never)  # ignored: the saga moved on
    assert "running" not in [row[3] for row in trip.log()]


def test_a_failure_of_a_superseded_attempt_does_not_give_up_on_the_current_one(given):
    trip = given()
    trip.through(NOTIFY.name)
    first = trip.begin(CARD.name)  # slow, not dead
    second = trip.begin(CARD.name)  # the same message, delivered again
    trip.fail(CARD.name, first)  # the slow one fails at last
    assert trip.saga.status == RUNNING
    trip.finish(CARD.name, second, lambda payload: {"charge": text()})
    assert trip.saga.status == COMPLETED
