"""Properties of the saga engine's state machine, under any order of deliveries.

Hypothesis plays Celery at its worst: any step's message in either phase, duplicated, late
or reordered; each delivery succeeds, refuses for a business reason, fails transiently or
crashes (begun, never finished, perhaps finished much later); and the sweeper runs with
the deadline forced into the past. The calls are the ones `sagas.runner.run_step` makes
(a first delivery straight to `finish_attempt`, any other through `begin_attempt` first;
then `refuse_attempt` or `fail_attempt` on an error), against the real database, with no
broker. After every delivery the saga must be in a legal state, every
participant effect must have happened at most once, compensations only for actions that
committed and last first.

An effect is a row the participant's action writes in the engine's own session (so inside
the step's transaction): only effects that committed are counted.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from models.db import unit_of_work, utcnow
from models.outbox import COMMAND, OutboxMessage
from models.saga import (
    ACTION,
    COMPENSATED,
    COMPENSATING,
    COMPENSATION,
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    RUNNING,
    SAGA_STATUSES,
    Saga,
    SagaStep,
)
from sagas import engine, faults, registry
from sagas.definition import Retry, SagaDefinition, Step
from sagas.engine import Delivery
from tests.support import effects

KIND = "test_saga_properties"
EFFECTS = "test_saga_properties.effect:"  # the prefix of the participants' effect rows
PHASES = (ACTION, COMPENSATION)
OUTCOMES = ("succeed", "refuse", "transient", "crash")
ENDED = (COMPLETED, COMPENSATED, FAILED)


class Refused(Exception):
    """A participant's business refusal: every step of the test saga names it."""


class Glitch(RuntimeError):
    """A transient error."""


def _step(name: str, *, undo: bool, attempts: int, undo_attempts: int = 3) -> Step:
    return Step(name, action=f"prop.{name}", compensation=f"prop.undo_{name}" if undo else None,
                business_errors=(Refused,),
                retry=Retry(attempts=attempts, backoff=0.001, max_backoff=0.01),
                compensation_retry=Retry(attempts=undo_attempts, backoff=0.001,
                                         max_backoff=0.01))


# Small budgets, so that giving up (on actions and on compensations) is reachable; one step
# with nothing to undo, so that compensation must skip it.
DEFINITION = SagaDefinition(KIND, (
    _step("alpha", undo=True, attempts=3, undo_attempts=3),
    _step("beta", undo=False, attempts=2),
    _step("gamma", undo=True, attempts=2, undo_attempts=2),
    _step("delta", undo=True, attempts=3),
))
STEPS = DEFINITION.steps
LAST = len(STEPS) - 1


@dataclass
class Driver:
    """One saga of the test kind, and what its participants did."""

    id: str
    # Begun attempts nobody finished yet: (step index, phase, attempt).
    pending: list[tuple[int, str, int]] = field(default_factory=list)
    # Effects that committed, in commit order: (step index, phase).
    effects: list[tuple[int, str]] = field(default_factory=list)
    # Every time a participant's action was run at all, committed or not.
    calls: list[tuple[int, str]] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    ended: tuple | None = None
    history: list[Any] = field(default_factory=list)
    saga_after: Saga | None = None  # the saga as the last event left it

    @classmethod
    def start(cls) -> Driver:
        with unit_of_work() as session:
            saga = engine.start(session, DEFINITION, {"trip": uuid.uuid4().hex[:8]})
            driver = cls(str(saga.id))
        driver.check()
        return driver

    # The participants' side, as sagas.runner.run_step does it.

    def begin(self, index: int, phase: str) -> int | None:
        with unit_of_work() as session:
            return engine.begin_attempt(
                session, Delivery(self.id, STEPS[index].name, phase, uuid.uuid4().hex))

    def _action(self, session: Session, index: int, phase: str, attempt: int | None,
                outcome: str, ran: list[bool]) -> engine.Action:
        name = STEPS[index].name

        def act(payload: dict[str, Any]) -> dict[str, Any]:
            self.calls.append((index, phase))
            ran.append(self._ok_to_run(index, phase))
            effects.write(session, f"{EFFECTS}{self.id}:{name}:{phase}:{uuid.uuid4().hex}")
            if outcome == "refuse":
                raise Refused(f"{name} says no")
            if outcome == "transient":
                raise Glitch(f"{name} timed out")
            return {f"{name}_{phase}": attempt}

        return act

    def finish(self, index: int, phase: str, attempt: int | None, outcome: str,
               task_id: str | None = None) -> None:
        """`attempt` None: a first delivery, counted with its work."""
        delivery = Delivery(self.id, STEPS[index].name, phase, task_id or uuid.uuid4().hex,
                            attempt)
        ran: list[bool] = []
        try:
            with unit_of_work() as session:
                engine.finish_attempt(session, delivery,
                                      self._action(session, index, phase, attempt, outcome, ran))
        except engine.CountFirst:
            assert not ran, "a delivery sent to be counted first ran its action"
            self.deliver(index, phase, outcome)
        except engine.Refused as refusal:
            with unit_of_work() as session:
                engine.refuse_attempt(session, delivery, refusal)
        except (Refused, Glitch) as exc:  # a compensation's refusal is an error too
            with unit_of_work() as session:
                engine.fail_attempt(session, delivery, f"{type(exc).__name__}: {exc}")
        else:
            if ran and outcome == "succeed":
                self.effects.append((index, phase))
        assert all(ran), (
            f"{STEPS[index].name} {phase} ran although the effects so far are {self.effects}")

    def commands(self) -> list[OutboxMessage]:
        """The saga's commands, newest first."""
        with unit_of_work() as session:
            return list(session.scalars(select(OutboxMessage).where(
                OutboxMessage.payload["saga_id"].astext == self.id,
                OutboxMessage.kind == COMMAND).order_by(OutboxMessage.id.desc())))

    def deliver_sent(self, command: OutboxMessage, outcome: str) -> None:
        """A command from the outbox, delivered (again) as a first delivery is: on the saga's
        state it carries, and when that does not finish it, with the saga locked."""
        if outcome == "crash":  # a crashed first delivery rolls back: as if it never came
            return
        step, phase, sent = (command.payload[key] for key in ("step", "phase", "sent"))
        index = DEFINITION.index(step)
        delivery = Delivery(self.id, step, phase, str(command.message_id), sent=sent)
        ran: list[bool] = []
        try:
            with unit_of_work() as session:
                engine.finish_sent(session, delivery,
                                   self._action(session, index, phase, None, outcome, ran))
        except engine.Moved:  # what it did rolled back, whether it was allowed to or not
            self.finish(index, phase, None, outcome, task_id=str(command.message_id))
        else:
            assert ran == [True], (
                f"{step} {phase} committed although the effects so far are {self.effects}")
            self.effects.append((index, phase))

    def sent(self, which: int, outcome: str) -> None:
        """The newest command, or an earlier one, delivered again."""
        commands = self.commands()
        self.deliver_sent(commands[which % len(commands)], outcome)

    def sent_stale(self, which: int, outcome: str) -> None:
        """An earlier command, of a step and phase the saga no longer waits for."""
        saga = self.saga()
        stale = [c for c in self.commands() if saga.status not in IN_FLIGHT or (
            c.payload["step"], c.payload["phase"]) != (STEPS[saga.current_step].name,
                                                       saga.phase)]
        if stale:
            self.deliver_sent(stale[which % len(stale)], outcome)

    def deliver(self, index: int, phase: str, outcome: str, first: bool | str = False) -> None:
        """`first`: a first delivery, counted with its work; "sent": the newest command."""
        if first == SENT:
            command = self.commands()[0]
            assert (command.payload["step"], command.payload["phase"]) == (
                STEPS[index].name, phase), "the newest command is not the one awaited"
            self.deliver_sent(command, outcome)
            return
        if first:  # a crash rolls its count back with its work: as if it never came
            if outcome != "crash":
                self.finish(index, phase, None, outcome)
            return
        attempt = self.begin(index, phase)
        if attempt is None:
            return
        if outcome == "crash":
            self.pending.append((index, phase, attempt))
        else:
            self.finish(index, phase, attempt, outcome)

    def deliver_current(self, outcome: str, first: bool | str = False) -> None:
        """The message the saga waits for now (if it waits for one)."""
        saga = self.saga()
        if saga.status in IN_FLIGHT:
            self.deliver(saga.current_step, saga.phase, outcome, first)

    def late(self, which: int, outcome: str) -> None:
        """A crashed-looking attempt that was only slow answers at last."""
        if self.pending:
            index, phase, attempt = self.pending.pop(which % len(self.pending))
            self.finish(index, phase, attempt, outcome)

    def late_stale(self, which: int, outcome: str) -> None:
        """A slow attempt of a step and phase the saga no longer waits for answers."""
        saga = self.saga()
        stale = [p for p in self.pending if saga.status not in IN_FLIGHT
                 or p[:2] != (saga.current_step, saga.phase)]
        if stale:
            index, phase, attempt = stale[which % len(stale)]
            self.pending.remove((index, phase, attempt))
            self.finish(index, phase, attempt, outcome)

    def sweep(self) -> None:
        with unit_of_work() as session:
            session.execute(update(Saga).where(Saga.id == uuid.UUID(self.id),
                                               Saga.status.in_(IN_FLIGHT))
                            .values(deadline_at=utcnow() - timedelta(seconds=1)))
        with unit_of_work() as session:
            engine.sweep(session)

    def apply(self, event: tuple) -> None:
        self.history.append(event)
        kind, *args = event
        {"deliver": self.deliver, "current": self.deliver_current, "late": self.late,
         "late_stale": self.late_stale, "sent": self.sent, "sent_stale": self.sent_stale,
         "sweep": self.sweep}[kind](*args)
        self.check()

    # What must hold.

    def _ok_to_run(self, index: int, phase: str) -> bool:
        """A participant is asked to act only in an order the saga allows."""
        if (index, phase) in self.effects:
            return False  # done before: never again
        actions = [i for i, p in self.effects if p == ACTION]
        if phase == ACTION:
            return actions == list(range(index)) and not any(
                p == COMPENSATION for _, p in self.effects)
        return index in actions and STEPS[index].compensation is not None

    def saga(self) -> Saga:
        with unit_of_work() as session:
            saga = session.get(Saga, uuid.UUID(self.id))
            assert saga is not None
            return saga

    def check(self) -> None:
        saga = self.saga()
        where = f"after {self.history}"
        state = (saga.status, saga.current_step, saga.phase, saga.version, saga.payload,
                 saga.error, saga.deadline_at, saga.ended_at)
        # A legal state.
        assert saga.status in SAGA_STATUSES, where
        assert 0 <= saga.current_step <= LAST, where
        if saga.status == RUNNING:
            assert saga.phase == ACTION, where
        if saga.status == COMPENSATING:
            assert saga.phase == COMPENSATION, where
            assert STEPS[saga.current_step].compensation, where
        if saga.status in IN_FLIGHT:
            assert saga.ended_at is None and saga.deadline_at is not None, where
        else:
            assert saga.ended_at is not None and saga.deadline_at is None, where
        if saga.status == COMPLETED:
            assert (saga.phase, saga.current_step) == (ACTION, LAST), where
        if saga.status == FAILED:
            assert saga.phase == COMPENSATION, where  # only a compensation gives up so
        # Versions only grow, and an ended saga never changes again.
        if self.versions:
            assert saga.version >= self.versions[-1], where
        self.versions.append(saga.version)
        if self.ended is not None:
            assert state == self.ended, f"an ended saga changed {where}"
        elif saga.status in ENDED:
            self.ended = state

        # Every effect at most once, and what committed is what the database holds.
        with unit_of_work() as session:
            steps = session.scalars(select(SagaStep).where(
                SagaStep.saga_id == uuid.UUID(self.id))).all()
        keys = [key.removeprefix(EFFECTS).split(":") for key in effects.written(
            f"{EFFECTS}{self.id}:")]
        stored = Counter((DEFINITION.index(name), phase) for _, name, phase, _ in keys)
        assert stored == Counter(self.effects), where
        assert max(stored.values(), default=0) <= 1, f"an effect ran twice {where}"

        # Actions in order; compensations only of committed actions, last first, and
        # only once the actions stopped.
        actions = [i for i, p in self.effects if p == ACTION]
        undone = [i for i, p in self.effects if p == COMPENSATION]
        assert actions == list(range(len(actions))), where
        assert undone == sorted(undone, reverse=True), where
        assert set(undone) <= set(actions), where
        assert all(STEPS[i].compensation for i in undone), where
        if undone:
            first_undo = self.effects.index((undone[0], COMPENSATION))
            assert all(p == COMPENSATION for _, p in self.effects[first_undo:]), where
        compensable = {i for i in actions if STEPS[i].compensation}
        if saga.status == RUNNING:
            assert actions == list(range(saga.current_step)) and not undone, where
        if saga.status == COMPLETED:
            assert actions == list(range(len(STEPS))) and not undone, where
        if saga.status in (COMPENSATING, FAILED):
            assert saga.current_step in compensable - set(undone), where
            assert all(i > saga.current_step for i in undone), where
        if saga.status == COMPENSATED:
            assert set(undone) == compensable, where

        # The step log: one success at most per step and phase, and no attempt left
        # running but the current step's, none once the saga ended.
        succeeded = Counter((row.step_index, row.phase) for row in steps
                            if row.status == "succeeded")
        assert max(succeeded.values(), default=0) <= 1, where
        assert set(succeeded) == set(self.effects), where
        running = {(row.step_index, row.phase) for row in steps if row.status == "running"}
        if saga.status in ENDED:
            assert not running, f"attempts left running in an ended saga {where}"
        else:
            assert running <= {(saga.current_step, saga.phase)}, where


def cleanup(saga_id: str) -> None:
    effects.forget(f"{EFFECTS}{saga_id}:")
    with unit_of_work() as session:
        session.execute(delete(OutboxMessage).where(
            OutboxMessage.payload["saga_id"].astext == saga_id))
        session.execute(delete(SagaStep).where(SagaStep.saga_id == uuid.UUID(saga_id)))
        session.execute(delete(Saga).where(Saga.id == uuid.UUID(saga_id)))


@pytest.fixture
def drivers(monkeypatch) -> Iterator[list[Driver]]:
    """The test kind registered, no injected faults, and every saga started removed after."""
    monkeypatch.setattr(faults, "configured", dict)
    monkeypatch.setitem(registry.DEFINITIONS, KIND, DEFINITION)
    started: list[Driver] = []
    yield started
    for driver in started:
        cleanup(driver.id)


def run(drivers: list[Driver], events: list[tuple]) -> Driver:
    driver = Driver.start()
    drivers.append(driver)
    try:
        for event in events:
            driver.apply(event)
        driver.saga_after = driver.saga()
        hypothesis.event(f"ends {driver.saga_after.status} in {driver.saga_after.phase}")
    finally:
        # Each example cleans up after itself: a long run leaves no rows behind.
        drivers.remove(driver)
        cleanup(driver.id)
    return driver


STEP_INDEX = st.integers(0, LAST)
# Half of the events are the message the saga waits for, so that sagas get somewhere.
# A first delivery (counted with its work), the newest command delivered as the runner
# delivers it (on the state it carries), or any other (counted on its own first).
SENT = "sent"
FIRST = st.sampled_from((True, SENT, False))
CURRENT = st.tuples(st.just("current"), st.sampled_from(("succeed", *OUTCOMES)), FIRST)
EVENT = st.one_of(
    CURRENT, CURRENT, CURRENT, CURRENT,
    st.tuples(st.just("deliver"), STEP_INDEX, st.sampled_from(PHASES), st.sampled_from(OUTCOMES),
              st.booleans()),
    st.tuples(st.just("late"), st.integers(0, 10), st.sampled_from(OUTCOMES[:3])),
    st.tuples(st.just("sent"), st.integers(0, 10), st.sampled_from(OUTCOMES)),
    st.tuples(st.just("sweep")),
)
PROPERTY_SETTINGS = settings(max_examples=50, deadline=None,
                             phases=[phase for phase in Phase if phase != Phase.explain],
                             suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                    HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(head=st.integers(0, LAST), events=st.lists(EVENT, min_size=1, max_size=40))
def test_any_sequence_of_deliveries_keeps_the_saga_legal_and_effects_once(
        drivers, head, events):
    # `head` steps succeed first (checked like any delivery), so that the random events
    # also hit sagas deep in their steps, with compensations to run in reverse.
    run(drivers, [("current", "succeed")] * head + events)


# Noise that must not keep a saga from completing: messages the saga does not wait for
# (another step in any phase, the current step's compensation) and late answers of
# attempts it has moved past.
NOISE = st.one_of(
    st.tuples(st.just("other"), st.integers(1, LAST), st.sampled_from(PHASES),
              st.sampled_from(OUTCOMES)),
    st.tuples(st.just("undo"), st.sampled_from(OUTCOMES)),
    st.tuples(st.just("late_stale"), st.integers(0, 10), st.sampled_from(OUTCOMES[:3])),
    st.tuples(st.just("sent_stale"), st.integers(0, 10), st.sampled_from(OUTCOMES)),
)
# Before each step's successful delivery: noise, perhaps one failed try of the step (every
# budget allows two tries), perhaps one sweep (every budget allows two dispatches).
BEFORE_EACH_STEP = st.tuples(st.lists(NOISE, max_size=4),
                             st.sampled_from((None, "crash", "transient")), st.booleans(), FIRST)


@PROPERTY_SETTINGS
@given(plan=st.lists(BEFORE_EACH_STEP, min_size=len(STEPS), max_size=len(STEPS)))
def test_when_every_step_is_delivered_successfully_in_order_the_saga_completes(drivers, plan):
    events: list[tuple] = []
    for index, (noise, failure, sweep, first) in enumerate(plan):
        for kind, *args in noise:
            if kind == "other":
                offset, phase, outcome = args
                events.append(("deliver", (index + offset) % len(STEPS), phase, outcome))
            elif kind == "undo":
                events.append(("deliver", index, COMPENSATION, args[0]))
            else:
                events.append((kind, *args))
        if sweep:
            events.append(("sweep",))
        if failure:
            events.append(("deliver", index, ACTION, failure))
        events.append(("deliver", index, ACTION, "succeed", first))
    driver = run(drivers, events)
    saga = driver.saga_after
    assert saga.status == COMPLETED, f"{saga.status} after {driver.history}: {saga.error}"
    assert driver.effects == [(i, ACTION) for i in range(len(STEPS))]
    assert {f"{step.name}_{ACTION}" for step in STEPS} <= set(saga.payload)
