"""A saga's story for the state machine's tests, in the given/when/expect style of Eventuate
Tram's saga tests: `given(DEFINITION)` starts a saga, `.answered(...)`, `.counted(...)` and
`.after(...)` take it through its history, `.when(event)` asks the machine once, and
`.expect(*effects, **fields)` checks the decision. Pure: no database, broker or clock.

    given(TRIP).answered("book_hotel", {"room": 12}) \\
        .when(raises("book_flight", NoSeats("full"))) \\
        .expect(entry(...), Command("hotels.cancel", "book_hotel", COMPENSATION),
                status=COMPENSATING)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pprint import pformat
from typing import Any

from models.saga import ACTION
from sagas import machine
from sagas.definition import SagaDefinition
from sagas.machine import (
    Admission,
    Answered,
    Attempt,
    Begun,
    Decision,
    Delivery,
    Effect,
    Event,
    Failed,
    SagaState,
)

# A fixed clock: the history happened an hour before the event under test, so a deadline
# the event sets differs from any the history left.
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
STARTED = NOW - timedelta(seconds=2)  # when the delivery under test began to run
SAGA_ID = uuid.UUID(int=7)

# An event, or how to make one from the saga it meets: a participant's exception means what
# `machine.failure` says it means there, as in the engine.
Happening = Event | Callable[[SagaDefinition, SagaState], Event]


def seconds(amount: float) -> timedelta:
    return timedelta(seconds=amount)


def delivery(step: str, phase: str = ACTION, *, attempt: int | None = None,
             redelivered: bool = False, worker: str | None = None) -> Delivery:
    return Delivery(str(SAGA_ID), step, phase, task_id=f"{step}-{phase}", attempt=attempt,
                    started_at=STARTED, redelivered=redelivered, worker=worker)


def answer(step: str, reply: dict[str, Any] | None = None, phase: str = ACTION, *,
           attempt: int | None = None, worker: str | None = None) -> Answered:
    return Answered(delivery(step, phase, attempt=attempt, worker=worker), reply or {})


def raises(step: str, error: Exception, phase: str = ACTION, *, jitter: float = 0.5,
           attempt: int | None = None) -> Happening:
    """The participant raised `error`: a refusal or a failure, as the machine classifies it."""
    def classified(definition: SagaDefinition, saga: SagaState) -> Event:
        return machine.failure(definition, saga, delivery(step, phase, attempt=attempt),
                               error, jitter)
    return classified


def failed(step: str, phase: str = ACTION, *, error: str = "Boom: down", jitter: float = 0.5,
           attempt: int | None = None) -> Failed:
    return Failed(delivery(step, phase, attempt=attempt), error, jitter)


def begun(step: str, phase: str = ACTION, *, worker: str | None = None) -> Begun:
    """A redelivery, counted before it runs (what `admit` asks for after a crash)."""
    return Begun(delivery(step, phase, redelivered=True, worker=worker))


def entry(definition: SagaDefinition, step: str, status: str, *, phase: str = ACTION,
          attempt: int = 1, started_at: datetime | None = STARTED,
          ended_at: datetime | None = NOW, error: str | None = None,
          worker: str | None = None) -> Attempt:
    """The step log's new entry for a delivery of `step`, by default a first one answered."""
    index = definition.index(step)
    found = definition.steps[index]
    return Attempt(step=step, step_index=index, phase=phase, attempt=attempt, status=status,
                   task_name=found.action if phase == ACTION else found.compensation or "",
                   task_id=f"{step}-{phase}", started_at=started_at, ended_at=ended_at,
                   error=error, worker=worker)


def _event(definition: SagaDefinition, saga: SagaState, happening: Happening) -> Event:
    return happening(definition, saga) if callable(happening) else happening


class Script:
    """A saga at some point of its story; every move returns a new script."""

    def __init__(self, definition: SagaDefinition, saga: SagaState) -> None:
        self.definition = definition
        self.saga = saga

    def after(self, *happenings: Happening) -> Script:
        """The saga's history: each happening must change it."""
        saga = self.saga
        for happening in happenings:
            decision = machine.decide(self.definition, saga,
                                      _event(self.definition, saga, happening), EARLIER)
            assert decision is not None, f"the history's {happening!r} changed nothing"
            saga = decision.saga
        return Script(self.definition, saga)

    def answered(self, step: str, reply: dict[str, Any] | None = None) -> Script:
        """The step the saga waits for answered (in its current phase)."""
        return self.after(answer(step, reply, self.saga.phase))

    def counted(self, step: str, times: int = 1) -> Script:
        """`times` deliveries of the step counted before they ran, none answered yet."""
        return self.after(*[begun(step, self.saga.phase)] * times)

    def admits(self, delivered: Delivery) -> Admission:
        return machine.admit(self.definition, self.saga, delivered)

    def when(self, happening: Happening, *, at: datetime = NOW) -> Then:
        event = _event(self.definition, self.saga, happening)
        return Then(self.definition, self.saga, event,
                    machine.decide(self.definition, self.saga, event, at))


class Then:
    """What the machine decided about one event."""

    def __init__(self, definition: SagaDefinition, before: SagaState | None, event: Event | None,
                 decision: Decision | None) -> None:
        self.definition, self.before, self.event, self.decision = (
            definition, before, event, decision)

    @property
    def saga(self) -> SagaState:
        assert self.decision is not None, f"{self.event!r} changed nothing"
        return self.decision.saga

    def expect(self, *effects: Effect, retry_in: float | None = None, **fields: Any) -> Then:
        """Exactly these effects, in order, this retry, and the saga's `fields` so."""
        saga = self.saga
        assert self.decision is not None
        actual = self.decision.effects
        assert actual == effects, f"effects:\n{pformat(actual)}\nexpected:\n{pformat(effects)}"
        assert self.decision.retry_in == retry_in, f"retry in {self.decision.retry_in}"
        found = {name: getattr(saga, name) for name in fields}
        assert found == fields, f"saga:\n{pformat(found)}\nexpected:\n{pformat(fields)}"
        return self

    def ignored(self) -> None:
        assert self.decision is None, f"{self.event!r} changed the saga: {self.decision!r}"

    def when(self, happening: Happening, *, at: datetime = NOW) -> Then:
        """The story goes on from the decided state."""
        return Script(self.definition, self.saga).when(happening, at=at)


def given(definition: SagaDefinition, payload: dict[str, Any] | None = None) -> Script:
    """A saga of `definition` just started (at EARLIER)."""
    started = machine.start(definition, SAGA_ID, payload or {}, EARLIER)
    return Script(definition, started.saga)


def starting(definition: SagaDefinition, payload: dict[str, Any], *,
             at: datetime = NOW) -> Then:
    """The start itself, as a decision to expect things of."""
    return Then(definition, None, None, machine.start(definition, SAGA_ID, payload, at))
