"""Properties of a saga's rules (`sagas.machine`), under any order of deliveries.

Hypothesis plays Celery at its worst against the pure state machine, driven the way
`sagas.engine` drives it, with no database and no broker: any step's message in either
phase, first or redelivered, duplicated, late or reordered; each delivery succeeds, refuses
for a business reason, fails transiently or crashes (counted on its own, then nothing: its
run may come much later); an error recorded only after other events (the engine releases
the saga's lock between rolling the work back and recording why); and the sweeper, past
the step's deadline. After every event the saga must be in a legal state, every
participant effect must have happened at most once, and compensations must run only for
actions that committed, last first.

The driver keeps what the database would: the saga's state is the last decision saved,
the step log holds its entries as `sagas.store` writes them, and a participant's effect
counts only when the transaction that decides its answer commits.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import hypothesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from models.saga import (
    ACTION,
    COMPENSATED,
    COMPENSATING,
    COMPENSATION,
    COMPLETED,
    ENDED,
    FAILED,
    IN_FLIGHT,
    REFUSED,
    RUNNING,
    SAGA_STATUSES,
)
from sagas import machine
from sagas.definition import Retry, SagaDefinition, Step
from sagas.machine import (
    Admission,
    Answered,
    Attempt,
    Begun,
    Closed,
    Command,
    Decision,
    Delivery,
    Event,
    FollowUp,
    Outcome,
    SagaState,
    TimedOut,
)

PHASES = (ACTION, COMPENSATION)
SUCCEED, REFUSE, GLITCH, CRASH = "succeed", "refuse", "transient", "crash"
OUTCOMES = (SUCCEED, REFUSE, GLITCH, CRASH)
# What a run that comes late does; one that dies again simply never comes.
ANSWERS = (SUCCEED, REFUSE, GLITCH)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


class NotForSale(Exception):
    """A participant's business refusal, declared by every step but gamma."""


class Glitch(RuntimeError):
    """A transient error."""


def _step(name: str, *, undo: bool, attempts: int, undo_attempts: int = 3,
          refuses: bool = True) -> Step:
    return Step(name, action=f"prop.{name}", compensation=f"prop.undo_{name}" if undo else None,
                business_errors=(NotForSale,) if refuses else (),
                retry=Retry(attempts=attempts, backoff=0.001, max_backoff=0.01),
                compensation_retry=Retry(attempts=undo_attempts, backoff=0.001,
                                         max_backoff=0.01))


# Small budgets, so that giving up (on actions and on compensations) is reachable; one step
# with nothing to undo, so that compensation must skip it; one step that does not declare
# the refusal, so that it is a transient error there.
DEFINITION = SagaDefinition("machine_properties", (
    _step("alpha", undo=True, attempts=3, undo_attempts=3),
    _step("beta", undo=False, attempts=2),
    _step("gamma", undo=True, attempts=2, undo_attempts=2, refuses=False),
    _step("delta", undo=True, attempts=3),
), if_not_completed="prop.tell_again")
STEPS = DEFINITION.steps
LAST = len(STEPS) - 1


# What happens, as Hypothesis chooses it.

@dataclass(frozen=True)
class Deliver:
    """A message for a step and phase, whether or not the saga waits for it."""

    step: int
    phase: str
    outcome: str
    redelivered: bool = False
    # An error recorded only after the events that follow (see Raised).
    recorded_late: bool = False


@dataclass(frozen=True)
class DeliverCurrent:
    """The message the saga waits for now, if it waits for one."""

    outcome: str
    redelivered: bool = False
    recorded_late: bool = False


@dataclass(frozen=True)
class FinishLate:
    """Something left pending goes on at last: a counted delivery runs, or an error is
    recorded; `only_stale`: only something of a step and phase the saga left."""

    which: int
    outcome: str = SUCCEED
    only_stale: bool = False


@dataclass(frozen=True)
class Sweep:
    """The sweeper finds the saga past its deadline."""


# What is pending.

@dataclass(frozen=True)
class Counted:
    """A delivery counted on its own (`Begun` committed) whose run has not come: its worker
    died, or stalls before it takes the saga's lock again."""

    delivery: Delivery


@dataclass(frozen=True)
class Raised:
    """A delivery whose work raised and rolled back; the engine locks the saga again to
    record why, and other transactions may come first."""

    delivery: Delivery
    error: Exception


@dataclass
class Entry:
    """A row of the step log."""

    step_index: int
    phase: str
    attempt: int
    status: str


def task_of(step: Step, phase: str) -> str | None:
    return step.action if phase == ACTION else step.compensation


def policy_of(saga: SagaState) -> Retry:
    step = STEPS[saga.current_step]
    return step.retry if saga.phase == ACTION else step.compensation_retry


@dataclass
class Driver:
    """One saga, run as the engine runs it, and what its participants did."""

    saga: SagaState
    now: datetime = T0
    # Effects that committed, in commit order: (step index, phase).
    effects: list[tuple[int, str]] = field(default_factory=list)
    pending: list[Counted | Raised] = field(default_factory=list)
    log: list[Entry] = field(default_factory=list)
    # Commands sent, by (step index, phase).
    commands: Counter[tuple[int, str]] = field(default_factory=Counter)
    follow_ups: int = 0
    history: list[object] = field(default_factory=list)
    ended: SagaState | None = None

    @classmethod
    def start(cls) -> Driver:
        decision = machine.start(DEFINITION, uuid.uuid4(), {"trip": "t"}, T0)
        driver = cls(decision.saga)
        driver.save(decision, created=True)
        driver.check()
        return driver

    def apply(self, event: object) -> None:
        self.history.append(event)
        self.now += timedelta(seconds=1)
        try:
            self.happen(event)
        except AssertionError:
            hypothesis.note(self.report())
            raise

    def happen(self, event: object) -> None:
        match event:
            case Deliver(index, phase, outcome, redelivered, recorded_late):
                self.deliver(index, phase, outcome, redelivered, recorded_late)
            case DeliverCurrent(outcome, redelivered, recorded_late):
                if self.saga.status in IN_FLIGHT:
                    self.deliver(self.saga.current_step, self.saga.phase, outcome, redelivered,
                                 recorded_late)
            case FinishLate(which, outcome, only_stale):
                self.finish_late(which, outcome, only_stale)
            case Sweep():
                self.sweep()
        self.check()

    def report(self) -> str:
        """Where things stand: noted when a check fails, for the failing example only."""
        lines = [f"{e!r}" for e in self.history]
        return "\n".join(["events:", *lines, f"saga: {self.saga}", f"effects: {self.effects}",
                          f"pending: {self.pending}", f"log: {self.log}"])

    # The engine's side: each step below is one transaction on the saga, locked.

    def deliver(self, index: int, phase: str, outcome: str, redelivered: bool,
                recorded_late: bool) -> None:
        delivery = Delivery(str(self.saga.id), STEPS[index].name, phase, uuid.uuid4().hex,
                            started_at=self.now, redelivered=redelivered)
        self.take(delivery, outcome, recorded_late)

    def take(self, delivery: Delivery, outcome: str, recorded_late: bool = False) -> None:
        """`engine.run_step`: counted first when the machine says so, then run."""
        while True:
            admission = machine.admit(DEFINITION, self.saga, delivery)
            if admission is Admission.IGNORE:
                return
            if admission is Admission.RUN:
                self.run(delivery, outcome, recorded_late)
                return
            assert delivery.attempt is None, f"a counted delivery counted again: {delivery}"
            decision = self.decide(Begun(delivery))
            assert decision is not None, f"a delivery admitted to be counted was not: {delivery}"
            self.save(decision)
            delivery = replace(delivery, attempt=decision.saga.attempt)
            if outcome == CRASH:
                self.pending.append(Counted(delivery))
                return

    def run(self, delivery: Delivery, outcome: str, recorded_late: bool) -> None:
        """The participant's work and the saga's answer, one transaction."""
        index, phase = DEFINITION.index(delivery.step), delivery.phase
        self.check_may_run(index, phase)
        if outcome == CRASH:
            return  # the worker died: its work (and a first delivery's count) rolled back
        if outcome == SUCCEED:
            reply = {f"{delivery.step}_{phase}": delivery.attempt or 1}
            decision = self.decide(Answered(delivery, reply))
            self.effects.append((index, phase))  # the work commits, whatever was decided
            assert decision is not None, "work committed and the saga stayed as it was"
            self.save(decision)
            return
        error: Exception = (NotForSale if outcome == REFUSE else Glitch)(f"{delivery.step} no")
        if recorded_late:
            self.pending.append(Raised(delivery, error))
        else:
            self.record(delivery, error)

    def record(self, delivery: Delivery, error: Exception) -> None:
        """After the rollback: the saga locked again, the refusal or failure decided."""
        event = machine.failure(DEFINITION, self.saga, delivery, error, 0.5)
        self.save(self.decide(event))

    def finish_late(self, which: int, outcome: str, only_stale: bool) -> None:
        saga = self.saga
        candidates = [item for item in self.pending if not only_stale or (
            saga.status not in IN_FLIGHT or (item.delivery.step, item.delivery.phase) != (
                STEPS[saga.current_step].name, saga.phase))]
        if not candidates:
            return
        item = candidates[which % len(candidates)]
        self.pending.remove(item)
        if isinstance(item, Raised):
            self.record(item.delivery, item.error)
        else:
            assert machine.admit(DEFINITION, saga, item.delivery) is not Admission.COUNT_FIRST
            self.take(item.delivery, outcome)

    def sweep(self) -> None:
        """`engine.sweep` takes only sagas in flight past their deadline."""
        if self.saga.status in IN_FLIGHT:
            assert self.saga.deadline_at is not None
            self.now = max(self.now, self.saga.deadline_at + timedelta(seconds=1))
            self.save(self.decide(TimedOut()))

    def decide(self, event: Event) -> Decision | None:
        return machine.decide(DEFINITION, self.saga, event, self.now)

    def save(self, decision: Decision | None, *, created: bool = False) -> None:
        """`store.save` (`store.create` for a new saga): the state, the step log and the
        messages, as they are written."""
        if decision is None:
            return
        before = None if created else self.saga
        self.check_decision(before, decision)
        changed = decision.saga != before
        # With a new state the first new entry is written by the statement that saves it,
        # after the other log changes; with none, every entry in order (and no message).
        logged = None if not changed else next(
            (e for e in decision.effects if isinstance(e, Attempt)), None)
        for effect in decision.effects:
            if effect is not logged:
                self.write(effect, sent=changed)
        if logged is not None:
            self.write(logged, sent=True)
        self.saga = decision.saga

    def write(self, effect: object, *, sent: bool) -> None:
        match effect:
            case Attempt():
                self.log.append(Entry(effect.step_index, effect.phase, effect.attempt,
                                      effect.status))
            case Outcome():
                # The newest entry of this attempt, as the store's statement picks it.
                entries = [e for e in self.log if (e.step_index, e.phase, e.attempt) == (
                    effect.step_index, effect.phase, effect.attempt)]
                assert entries, f"an outcome of an attempt never logged: {effect}"
                entries[-1].status = effect.status
            case Closed():
                for entry in self.log:
                    if (entry.step_index, entry.phase, entry.status) == (
                            effect.step_index, effect.phase, "running"):
                        entry.status = effect.status
            case Command() if sent:
                self.commands[(DEFINITION.index(effect.step), effect.phase)] += 1
            case FollowUp() if sent:
                self.follow_ups += 1

    # What must hold.

    def check_may_run(self, index: int, phase: str) -> None:
        """A participant is asked to act only in an order the saga allows."""
        where = f"{STEPS[index].name} {phase} ran out of order"
        assert (index, phase) not in self.effects, where
        actions = [i for i, p in self.effects if p == ACTION]
        undone = {i for i, p in self.effects if p == COMPENSATION}
        if phase == ACTION:
            assert actions == list(range(index)) and not undone, where
        else:
            assert index in actions and STEPS[index].compensation, where
            later = {i for i in actions if i > index and STEPS[i].compensation}
            assert later <= undone, where

    def check_decision(self, before: SagaState | None, decision: Decision) -> None:
        saga, where = decision.saga, "a decision out of line"
        sent = [e for e in decision.effects if isinstance(e, Command)]
        follow_ups = [e for e in decision.effects if isinstance(e, FollowUp)]
        assert len(sent) <= 1, where
        for command in sent:
            step = STEPS[saga.current_step]
            assert saga.status in IN_FLIGHT, where
            assert (command.step, command.phase) == (step.name, saga.phase), where
            assert command.task == task_of(step, saga.phase), where
        moved = before is None or (saga.status, saga.current_step, saga.phase) != (
            before.status, before.current_step, before.phase)
        if moved and saga.status in IN_FLIGHT:
            assert sent, f"the saga waits for a step it never sent: {decision}"
        for follow_up in follow_ups:
            assert follow_up.task == DEFINITION.if_not_completed, where
            assert before is not None and before.status in IN_FLIGHT, where
            assert saga.status in (COMPENSATED, FAILED), where
            assert self.effects, "a follow-up though no step did its work"
        if sent or follow_ups:
            assert saga != before, f"messages the store would not send: {decision}"
        if decision.retry_in is not None:
            assert saga.status in IN_FLIGHT and saga.deadline_at is not None, where
            assert saga.attempt < policy_of(saga).attempts, "a retry past the budget"
            assert saga.deadline_at >= self.now + timedelta(seconds=decision.retry_in), where

    def check(self) -> None:
        saga, where = self.saga, "an illegal state"
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
        if saga.status == REFUSED:  # at the first step, by a refusal, before any work
            assert (saga.current_step, saga.phase) == (0, ACTION), where
            assert saga.error_code is not None, where
        # A saga that turned back says why; one that goes on or completed has nothing to say.
        assert (saga.error is None) == (saga.status in (RUNNING, COMPLETED)), where
        policy = policy_of(saga)
        assert 0 <= saga.attempt <= policy.attempts, where
        assert 0 <= saga.sweeps <= policy.attempts, where
        # What the state counts is what happened: one command per dispatch and sweep, one
        # log entry per counted attempt, numbered from 1.
        current = (saga.current_step, saga.phase)
        assert self.commands[current] == 1 + saga.sweeps, "commands and sweeps differ"
        numbers = sorted(e.attempt for e in self.log if (e.step_index, e.phase) == current)
        assert numbers == list(range(1, saga.attempt + 1)), "attempts and log differ"
        # An ended saga never changes again.
        if self.ended is not None:
            assert saga == self.ended, "an ended saga changed"
        elif saga.status in ENDED:
            self.ended = saga

        # Every effect at most once; actions in order; compensations only of committed
        # actions, last first, and only once the actions stopped.
        assert max(Counter(self.effects).values(), default=0) <= 1, "an effect ran twice"
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
        if saga.status == REFUSED:
            assert not self.effects, where
        if saga.status in (COMPENSATING, FAILED):
            assert saga.current_step in compensable - set(undone), where
            assert all(i > saga.current_step for i in undone), where
        if saga.status == COMPENSATED:
            assert set(undone) == compensable, where
        for index, phase in self.effects:
            assert f"{STEPS[index].name}_{phase}" in saga.payload, where

        # The follow-up: once exactly when the saga ended not completed after a step did
        # its work.
        owed = saga.status in (COMPENSATED, FAILED) and bool(self.effects)
        assert self.follow_ups == (1 if owed else 0), where

        # The step log: one outcome at most per step and phase (the store's unique index),
        # a success for each effect, a refusal only with its code, and no attempt left
        # running but the current step's, none once the saga ended.
        decisive = Counter((e.step_index, e.phase) for e in self.log
                           if e.status in ("succeeded", "refused"))
        assert max(decisive.values(), default=0) <= 1, "two outcomes of one step and phase"
        succeeded = {(e.step_index, e.phase) for e in self.log if e.status == "succeeded"}
        assert succeeded == set(self.effects), "the log's successes are not the effects"
        refused = any(e.status == "refused" for e in self.log)
        assert refused == (saga.error_code is not None), "a refusal without its code"
        running = [e for e in self.log if e.status == "running"]
        if saga.status in ENDED:
            assert not running, "attempts left running in an ended saga"
        else:
            # Counting an attempt closes those before it: only the newest may be running.
            assert all((e.step_index, e.phase, e.attempt) == (*current, saga.attempt)
                       for e in running), "an attempt running but the newest"


def run(events: list[object]) -> Driver:
    driver = Driver.start()
    for event in events:
        driver.apply(event)
    hypothesis.event(f"ends {driver.saga.status} in {driver.saga.phase}")
    return driver


PROPERTY_SETTINGS = settings(max_examples=1000, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])

REDELIVERED = st.booleans()
CURRENT = st.builds(DeliverCurrent, st.sampled_from((SUCCEED, *OUTCOMES)), REDELIVERED,
                    st.booleans())
# Half of the events are the message the saga waits for, so that sagas get somewhere.
LATE = st.builds(FinishLate, st.integers(0, 10), st.sampled_from(ANSWERS))
EVENT = st.one_of(
    CURRENT, CURRENT, CURRENT, CURRENT, LATE, LATE,
    st.builds(Deliver, st.integers(0, LAST), st.sampled_from(PHASES), st.sampled_from(OUTCOMES),
              REDELIVERED, st.booleans()),
    st.builds(Sweep),
)


@PROPERTY_SETTINGS
@given(head=st.integers(0, LAST), events=st.lists(EVENT, min_size=1, max_size=40))
# The interleavings that matter most, always tried: an older attempt answers (or its refusal
# is recorded) after a newer one was counted; a compensation that cannot finish; a step
# swept until it gives up; a step that keeps killing its worker.
@example(head=0, events=[Deliver(0, ACTION, CRASH, redelivered=True), DeliverCurrent(CRASH),
                         FinishLate(0, SUCCEED)])
@example(head=0, events=[DeliverCurrent(REFUSE, redelivered=True, recorded_late=True),
                         DeliverCurrent(CRASH), FinishLate(0)])
@example(head=1, events=[DeliverCurrent(REFUSE), *[DeliverCurrent(GLITCH)] * 3])
@example(head=LAST, events=[Sweep()] * 4)
@example(head=1, events=[DeliverCurrent(CRASH, redelivered=True)] * 3)
def test_any_sequence_of_deliveries_keeps_the_saga_legal_and_effects_once(
        head: int, events: list[object]) -> None:
    # `head` steps succeed first (checked like any delivery), so that the random events
    # also hit sagas deep in their steps, with compensations to run in reverse.
    run([DeliverCurrent(SUCCEED)] * head + events)


# Noise that must not keep a saga from completing: messages the saga does not wait for
# (another step in any phase, the current step's compensation) and late runs or errors of
# attempts of steps it has moved past.
NOISE = st.one_of(
    st.tuples(st.just("other"), st.integers(1, LAST), st.sampled_from(PHASES),
              st.sampled_from(OUTCOMES), REDELIVERED),
    st.tuples(st.just("undo"), st.sampled_from(OUTCOMES), REDELIVERED),
    st.builds(FinishLate, st.integers(0, 10), st.sampled_from(ANSWERS), st.just(True)),
)
# Before each step's successful delivery: noise, perhaps one failed try of the step (every
# action's budget allows two tries), perhaps one sweep (every budget allows two dispatches).
FAILURE = st.sampled_from((None, CRASH, GLITCH))
BEFORE_EACH_STEP = st.tuples(st.lists(NOISE, max_size=4), FAILURE, REDELIVERED, st.booleans(),
                             REDELIVERED)


@PROPERTY_SETTINGS
@given(plan=st.lists(BEFORE_EACH_STEP, min_size=len(STEPS), max_size=len(STEPS)))
def test_when_every_step_is_delivered_successfully_in_order_the_saga_completes(
        plan: list[tuple]) -> None:
    events: list[object] = []
    for index, (noise, failure, failure_redelivered, sweep, redelivered) in enumerate(plan):
        for item in noise:
            match item:
                case ("other", offset, phase, outcome, again):
                    events.append(Deliver((index + offset) % len(STEPS), phase, outcome, again))
                case ("undo", outcome, again):
                    events.append(Deliver(index, COMPENSATION, outcome, again))
                case FinishLate():
                    events.append(item)
        if sweep:
            events.append(Sweep())
        if failure:
            events.append(Deliver(index, ACTION, failure, failure_redelivered))
        events.append(Deliver(index, ACTION, SUCCEED, redelivered))
    driver = run(events)
    saga = driver.saga
    assert saga.status == COMPLETED, saga.error
    assert driver.effects == [(i, ACTION) for i in range(len(STEPS))]
    assert {f"{step.name}_{ACTION}" for step in STEPS} <= set(saga.payload)
    assert driver.follow_ups == 0


# A step's failures that count against its budget, (outcome, redelivered): a crash (the broker
# redelivers what a dead worker took), a transient error, a refusal (which turns an action
# back at once; a compensation's is an error too).
FAILING = st.sampled_from(((CRASH, True), (GLITCH, False), (GLITCH, True), (REFUSE, False)))
MOST_ATTEMPTS = max(max(step.retry.attempts, step.compensation_retry.attempts) for step in STEPS)


@PROPERTY_SETTINGS
@given(head=st.integers(0, LAST), undoing=st.booleans(), sweeps=st.integers(0, MOST_ATTEMPTS),
       failures=st.lists(FAILING, min_size=MOST_ATTEMPTS + 1, max_size=MOST_ATTEMPTS + 1))
def test_a_step_that_keeps_failing_gives_up_within_its_budget(
        head: int, undoing: bool, sweeps: int, failures: list[tuple[str, bool]]) -> None:
    driver = run([DeliverCurrent(SUCCEED)] * head)
    if undoing and head:  # swept past its budget, the step gives up: an earlier one undoes
        for _ in range(policy_of(driver.saga).attempts + 1):
            driver.apply(Sweep())
    saga = driver.saga
    assert saga.status in IN_FLIGHT
    waited, budget = (saga.current_step, saga.phase), policy_of(saga).attempts
    # Sweeps within the budget dispatch the step again and count no attempt.
    events: list[object] = [Sweep()] * min(sweeps, budget)
    # Aimed at the step itself: once it gave up, the rest find it not waited for.
    events += [Deliver(*waited, outcome, again) for outcome, again in failures[:budget + 1]]
    for event in events:
        driver.apply(event)
    saga = driver.saga
    assert (saga.current_step, saga.phase) != waited or saga.status not in IN_FLIGHT, (
        "the step did not give up")
    assert waited not in driver.effects
    assert saga.status in ((COMPENSATING, COMPENSATED, REFUSED) if waited[1] == ACTION
                           else (FAILED,))
