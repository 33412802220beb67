"""The saga's rules (`sagas.machine`) as stories of a trip: given a saga's history, when
something happens, expect what the machine decides: the effects to write and send, and the
saga's next state. Every transition of the machine, without a database, broker or clock."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import replace
from typing import Any

import pytest

from models.saga import (
    ACTION,
    COMPENSATED,
    COMPENSATING,
    COMPENSATION,
    COMPLETED,
    FAILED,
    REFUSED,
    RUNNING,
)
from sagas import machine
from sagas.definition import Refusal, Retry, SagaDefinition, Step
from sagas.machine import (
    AbortOrdered,
    Admission,
    Attempt,
    Closed,
    Command,
    CompensationOrdered,
    Delivery,
    Failed,
    FollowUp,
    Outcome,
    Refused,
    RetryOrdered,
    SagaStateError,
    TimedOut,
)
from tests.support import saga_script
from tests.support.saga_script import (
    EARLIER,
    NOW,
    Happening,
    Script,
    answer,
    begun,
    delivery,
    failed,
    given,
    raises,
    seconds,
    starting,
)


class NoRooms(Exception):
    """The hotel is full: a refusal of book_hotel."""


class NoSeats(Exception):
    """The flight is full: a refusal of book_flight."""


class CardDeclined(Exception):
    """A refusal of charge_card."""


class Boom(Exception):
    """A transient failure no step declares."""


class Vetoed(Refusal):
    """A refusal by its type alone: no step declares it."""


TRIP = SagaDefinition("trip", steps=(
    Step("book_hotel", "hotels.book", "hotels.cancel", business_errors=(NoRooms,),
         compensation_retry=Retry(attempts=2, backoff=1.0), timeout=30),
    # Small numbers, so that the doubling backoff reaches its cap by the third attempt.
    Step("book_flight", "flights.book", "flights.cancel", business_errors=(NoSeats,),
         retry=Retry(attempts=4, backoff=2.0, max_backoff=5.0), timeout=20),
    Step("notify", "mail.send", timeout=5),  # nothing to undo
    Step("charge_card", "cards.charge", business_errors=(CardDeclined,), timeout=60),
), if_not_completed="trips.tell_again")

CANCEL_HOTEL = Command("hotels.cancel", "book_hotel", COMPENSATION)
CANCEL_FLIGHT = Command("flights.cancel", "book_flight", COMPENSATION)
BOOK_FLIGHT = Command("flights.book", "book_flight", ACTION)
NOTIFY = Command("mail.send", "notify", ACTION)
TELL_AGAIN = FollowUp("trips.tell_again")


def entry(step: str, status: str, **fields: Any) -> Attempt:
    return saga_script.entry(TRIP, step, status, **fields)


def given_up(index: int, phase: str = ACTION) -> Closed:
    return Closed(index, phase, "lost", "no answer before the saga gave up on the step", NOW)


# Points of the trip's story the tests start from.
AT_HOTEL = given(TRIP, {"traveller": "ada"})
AT_FLIGHT = AT_HOTEL.answered("book_hotel", {"room": 12})
AT_CHARGE = AT_FLIGHT.answered("book_flight", {"seat": "3A"}).answered("notify")
UNDOING_HOTEL = AT_FLIGHT.after(raises("book_flight", NoSeats("full")))
COMPLETED_TRIP = AT_CHARGE.answered("charge_card")
COMPENSATED_TRIP = UNDOING_HOTEL.answered("book_hotel")
STUCK_UNDOING = UNDOING_HOTEL.counted("book_hotel", 2).after(
    failed("book_hotel", COMPENSATION, attempt=2))
# Aborted after a crash and a timeout: a retry's fresh budget shows.
ABORTED = AT_FLIGHT.counted("book_flight").after(TimedOut(), AbortOrdered())
ENDED = {"completed": COMPLETED_TRIP, "compensated": COMPENSATED_TRIP,
         "failed compensating": STUCK_UNDOING, "aborted": ABORTED}


def test_a_new_saga_dispatches_only_its_first_step_with_a_deadline():
    starting(TRIP, {"traveller": "ada"}).expect(
        Command("hotels.book", "book_hotel", ACTION),
        id=saga_script.SAGA_ID, kind="trip", definition_version=TRIP.version, status=RUNNING,
        payload={"traveller": "ada"}, current_step=0, phase=ACTION, attempt=0, sweeps=0,
        error=None, deadline_at=NOW + seconds(30), ended_at=None)


def test_a_trip_books_each_step_in_order_merging_replies_and_completes():
    (AT_HOTEL
     .when(answer("book_hotel", {"room": 12}))
     .expect(entry("book_hotel", "succeeded"), BOOK_FLIGHT, status=RUNNING, current_step=1,
             attempt=0, deadline_at=NOW + seconds(20), payload={"traveller": "ada", "room": 12})
     .when(answer("book_flight", {"seat": "3A"}))
     .expect(entry("book_flight", "succeeded"), NOTIFY, current_step=2,
             deadline_at=NOW + seconds(5),
             payload={"traveller": "ada", "room": 12, "seat": "3A"})
     .when(answer("notify"))
     .expect(entry("notify", "succeeded"), Command("cards.charge", "charge_card", ACTION),
             current_step=3, deadline_at=NOW + seconds(60))
     .when(answer("charge_card", {"charged": 250}))
     # The last answer completes the saga: no deadline, and no follow-up to send.
     .expect(entry("charge_card", "succeeded"), status=COMPLETED, current_step=3,
             ended_at=NOW, deadline_at=None, error=None,
             payload={"traveller": "ada", "room": 12, "seat": "3A", "charged": 250}))


def test_a_step_that_replies_nothing_leaves_the_payload_and_a_reply_overrides_a_key():
    at_notify = AT_FLIGHT.answered("book_flight", {"seat": "3A"})
    at_notify.when(answer("notify")).expect(
        entry("notify", "succeeded"), Command("cards.charge", "charge_card", ACTION),
        payload=at_notify.saga.payload)
    AT_FLIGHT.when(answer("book_flight", {"room": 14})).expect(
        entry("book_flight", "succeeded"), NOTIFY, payload={"traveller": "ada", "room": 14})


def test_a_refusal_in_the_second_step_compensates_the_first():
    (AT_FLIGHT
     .when(raises("book_flight", NoSeats("full")))
     .expect(entry("book_flight", "refused", error="NoSeats: full"), CANCEL_HOTEL,
             status=COMPENSATING, current_step=0, phase=COMPENSATION, attempt=0,
             deadline_at=NOW + seconds(30), error="book_flight refused: full",
             error_code="NoSeats")
     .when(answer("book_hotel", phase=COMPENSATION))
     # It compensated a step: those who follow its events are told again.
     .expect(entry("book_hotel", "succeeded", phase=COMPENSATION), TELL_AGAIN,
             status=COMPENSATED, ended_at=NOW, deadline_at=None,
             error="book_flight refused: full", error_code="NoSeats"))


def test_a_refusal_in_the_first_step_ends_refused_with_nothing_undone_or_told():
    AT_HOTEL.when(raises("book_hotel", NoRooms("none left"))).expect(
        entry("book_hotel", "refused", error="NoRooms: none left"),
        status=REFUSED, current_step=0, phase=ACTION, ended_at=NOW, deadline_at=None,
        error="book_hotel refused: none left", error_code="NoRooms")


def test_compensation_skips_steps_without_one_and_undoes_the_last_first():
    (AT_CHARGE
     .when(raises("charge_card", CardDeclined("expired")))
     .expect(entry("charge_card", "refused", error="CardDeclined: expired"), CANCEL_FLIGHT,
             status=COMPENSATING, current_step=1, phase=COMPENSATION,
             error_code="CardDeclined")
     .when(answer("book_flight", {"refund": 90}, COMPENSATION))
     .expect(entry("book_flight", "succeeded", phase=COMPENSATION), CANCEL_HOTEL,
             current_step=0, payload={"traveller": "ada", "room": 12, "seat": "3A",
                                      "refund": 90})
     .when(answer("book_hotel", phase=COMPENSATION))
     .expect(entry("book_hotel", "succeeded", phase=COMPENSATION), TELL_AGAIN,
             status=COMPENSATED))


@pytest.mark.parametrize(("story", "step", "phase", "error", "means"), [
    (AT_FLIGHT, "book_flight", ACTION, NoSeats("full"), Refused),
    (AT_FLIGHT, "book_flight", ACTION, NoRooms("x"), Failed),  # another step's refusal
    (AT_FLIGHT, "book_flight", ACTION, Boom("down"), Failed),
    (AT_FLIGHT, "book_flight", ACTION, Vetoed("no"), Refused),
    (UNDOING_HOTEL, "book_hotel", COMPENSATION, NoRooms("x"), Failed),
    (UNDOING_HOTEL, "book_hotel", COMPENSATION, Vetoed("no"), Failed),
], ids=["declared by the step", "declared by another step", "declared by none",
        "a Refusal by type", "declared, while compensating", "a Refusal, while compensating"])
def test_an_error_is_a_refusal_only_when_the_acting_step_declares_it_or_it_is_a_refusal(
        story: Script, step: str, phase: str, error: Exception, means: type):
    delivered = delivery(step, phase)
    expected = (Refused(delivered, type(error).__name__, str(error)) if means is Refused
                else Failed(delivered, f"{type(error).__name__}: {error}", 0.25))
    assert machine.failure(TRIP, story.saga, delivered, error, 0.25) == expected


def test_a_failure_is_recorded_with_at_most_1000_characters_of_its_error():
    event = machine.failure(TRIP, AT_FLIGHT.saga, delivery("book_flight"), Boom("x" * 2000), 0)
    assert isinstance(event, Failed) and event.error == f"Boom: {'x' * 994}"


def test_a_refusal_by_type_turns_the_saga_back_though_the_step_declares_nothing():
    AT_FLIGHT.answered("book_flight").when(raises("notify", Vetoed("stop"))).expect(
        entry("notify", "refused", error="Vetoed: stop"), CANCEL_FLIGHT, status=COMPENSATING,
        error="notify refused: stop", error_code="Vetoed")


def test_a_refusal_raised_while_compensating_is_retried_as_a_failure():
    UNDOING_HOTEL.when(raises("book_hotel", NoRooms("gone"), COMPENSATION, jitter=0)).expect(
        entry("book_hotel", "failed", phase=COMPENSATION, error="NoRooms: gone"),
        retry_in=0.5, status=COMPENSATING, attempt=1, deadline_at=NOW + seconds(30.5),
        error="book_flight refused: full")


def test_a_first_delivery_is_counted_with_its_answer():
    AT_FLIGHT.when(raises("book_flight", Boom("down"), jitter=1)).expect(
        entry("book_flight", "failed", error="Boom: down"), retry_in=2.0, status=RUNNING,
        attempt=1, deadline_at=NOW + seconds(2 + 20))


# book_flight backs off from 2 s, doubling, capped at 5 s: a wait of half to all of it.
@pytest.mark.parametrize(("attempt", "jitter", "delay"), [
    (1, 0.0, 1.0), (1, 0.5, 1.5), (1, 1.0, 2.0), (2, 0.0, 2.0), (2, 1.0, 4.0),
    (3, 0.0, 2.5), (3, 1.0, 5.0)])
def test_a_transient_failure_is_retried_after_half_to_all_of_its_doubling_backoff(
        attempt: int, jitter: float, delay: float):
    AT_FLIGHT.counted("book_flight", attempt).when(
        failed("book_flight", attempt=attempt, jitter=jitter)).expect(
        Outcome(1, ACTION, attempt, "failed", NOW, "Boom: down"), retry_in=delay,
        status=RUNNING, attempt=attempt, deadline_at=NOW + seconds(delay + 20))


def test_an_action_that_keeps_failing_gives_up_and_compensates():
    AT_FLIGHT.counted("book_flight", 4).when(failed("book_flight", attempt=4)).expect(
        Outcome(1, ACTION, 4, "failed", NOW, "Boom: down"), given_up(1), CANCEL_HOTEL,
        status=COMPENSATING, current_step=0, phase=COMPENSATION, attempt=0,
        error="book_flight action failed 4 times, last: Boom: down", error_code=None)


def test_giving_up_on_the_first_step_ends_compensated_with_nothing_to_undo_or_tell():
    AT_HOTEL.counted("book_hotel", 3).when(failed("book_hotel", attempt=3)).expect(
        Outcome(0, ACTION, 3, "failed", NOW, "Boom: down"), given_up(0), status=COMPENSATED,
        ended_at=NOW, deadline_at=None, error="book_hotel action failed 3 times, last: Boom: down")


def test_a_compensation_that_keeps_failing_leaves_the_saga_failed_and_tells_again():
    UNDOING_HOTEL.counted("book_hotel", 2).when(
        failed("book_hotel", COMPENSATION, attempt=2)).expect(
        Outcome(0, COMPENSATION, 2, "failed", NOW, "Boom: down"), given_up(0, COMPENSATION),
        TELL_AGAIN, status=FAILED, ended_at=NOW, deadline_at=None,
        error="book_hotel compensation failed 2 times, last: Boom: down")


@pytest.mark.parametrize(("story", "delivered", "admission"), [
    (AT_FLIGHT, delivery("book_flight"), Admission.RUN),
    (UNDOING_HOTEL, delivery("book_hotel", COMPENSATION), Admission.RUN),
    (AT_FLIGHT.counted("book_flight"), delivery("book_flight", attempt=1), Admission.RUN),
    (AT_FLIGHT, delivery("book_flight", redelivered=True), Admission.COUNT_FIRST),
    (AT_FLIGHT.counted("book_flight"), delivery("book_flight"), Admission.COUNT_FIRST),
    (AT_FLIGHT.after(failed("book_flight")), delivery("book_flight"), Admission.COUNT_FIRST),
    (AT_FLIGHT, delivery("book_hotel"), Admission.IGNORE),
    (AT_FLIGHT, delivery("notify"), Admission.IGNORE),
    (AT_FLIGHT, delivery("book_flight", COMPENSATION), Admission.IGNORE),
    (UNDOING_HOTEL, delivery("book_hotel"), Admission.IGNORE),
    *[(story, delivery("book_flight"), Admission.IGNORE) for story in ENDED.values()],
], ids=["the awaited step", "the awaited compensation", "a delivery counted on its own",
        "a redelivery", "after a counted delivery", "after a failure", "a finished step",
        "a later step", "the other phase", "the action being undone",
        *[f"a {name} saga" for name in ENDED]])
def test_a_delivery_runs_only_when_awaited_and_is_counted_first_when_it_may_follow_a_crash(
        story: Script, delivered: Delivery, admission: Admission):
    assert story.admits(delivered) is admission


@pytest.mark.parametrize("counted", [0, 1, 3])
def test_a_delivery_that_may_follow_a_crash_is_counted_before_it_runs(counted: int):
    AT_FLIGHT.counted("book_flight", counted).when(begun("book_flight")).expect(
        Closed(1, ACTION, "lost", "the worker stopped before answering", NOW),
        entry("book_flight", "running", attempt=counted + 1, started_at=NOW, ended_at=None),
        status=RUNNING, attempt=counted + 1, deadline_at=NOW + seconds(20))


@pytest.mark.parametrize(("story", "step", "phase", "then"), [
    (AT_FLIGHT.counted("book_flight", 4), "book_flight", ACTION,
     (given_up(1), CANCEL_HOTEL)),
    (UNDOING_HOTEL.counted("book_hotel", 2), "book_hotel", COMPENSATION,
     (given_up(0, COMPENSATION), TELL_AGAIN)),
], ids=["an action compensates", "a compensation fails"])
def test_a_step_that_keeps_killing_its_worker_runs_out_of_attempts(
        story: Script, step: str, phase: str, then: tuple):
    attempts = story.saga.attempt
    story.when(begun(step, phase)).expect(
        *then, status=COMPENSATING if phase == ACTION else FAILED,
        error=f"{step} {phase}: no answer after {attempts} attempts")


def test_a_counted_delivery_answer_completes_its_entry_instead_of_adding_one():
    AT_FLIGHT.counted("book_flight").when(answer("book_flight", {"seat": "3A"}, attempt=1)).expect(
        Outcome(1, ACTION, 1, "succeeded", NOW), NOTIFY, current_step=2, attempt=0,
        payload={"traveller": "ada", "room": 12, "seat": "3A"})


@pytest.mark.parametrize(("counted", "happening", "logged"), [
    (0, answer("book_flight", worker="flights@host-a"),
     (entry("book_flight", "succeeded", worker="flights@host-a"), NOTIFY)),
    (1, begun("book_flight", worker="flights@host-b"),
     (Closed(1, ACTION, "lost", "the worker stopped before answering", NOW),
      entry("book_flight", "running", attempt=2, started_at=NOW, ended_at=None,
            worker="flights@host-b"))),
], ids=["a first delivery", "a counted delivery"])
def test_an_attempts_entry_names_the_worker_its_delivery_ran_on(
        counted: int, happening: Happening, logged: tuple):
    AT_FLIGHT.counted("book_flight", counted).when(happening).expect(*logged)


@pytest.mark.parametrize(("counted", "happening", "outcome", "then"), [
    (2, answer("book_flight", attempt=2), Outcome(1, ACTION, 2, "succeeded", NOW), NOTIFY),
    (3, answer("book_flight", attempt=1), Outcome(1, ACTION, 1, "succeeded", NOW), NOTIFY),
    (2, raises("book_flight", NoSeats("full"), attempt=2),
     Outcome(1, ACTION, 2, "refused", NOW, "NoSeats: full"), CANCEL_HOTEL),
], ids=["the latest answers", "an older one answers", "the latest refuses"])
def test_an_answer_closes_the_step_other_running_attempts_as_superseded(
        counted: int, happening: Happening, outcome: Outcome, then: Command):
    attempt = outcome.attempt
    AT_FLIGHT.counted("book_flight", counted).when(happening).expect(
        outcome, Closed(1, ACTION, "superseded", f"attempt {attempt} answered first", NOW), then)


@pytest.mark.parametrize("counted", [2, 4], ids=["retries left", "attempts used up"])
def test_a_failure_of_an_older_attempt_only_records_its_outcome(counted: int):
    story = AT_FLIGHT.counted("book_flight", counted)
    then = story.when(failed("book_flight", attempt=1))
    # The newer attempt decides: no retry, no giving up, the same state.
    then.expect(Outcome(1, ACTION, 1, "failed", NOW, "Boom: down"), retry_in=None)
    assert then.saga == story.saga


@pytest.mark.parametrize("happening", [
    answer("book_flight"), raises("book_flight", NoSeats("full")), failed("book_flight")],
    ids=["answered", "refused", "failed"])
def test_a_first_delivery_that_answers_after_another_was_counted_is_ignored(
        happening: Happening):
    AT_FLIGHT.counted("book_flight").when(happening).ignored()


def test_a_saga_past_its_deadline_dispatches_the_same_step_again():
    (AT_FLIGHT.counted("book_flight")
     .when(TimedOut())
     .expect(BOOK_FLIGHT, status=RUNNING, current_step=1, sweeps=1, attempt=1,
             deadline_at=NOW + seconds(20))
     .when(TimedOut(), at=NOW + seconds(20))
     .expect(BOOK_FLIGHT, sweeps=2, deadline_at=NOW + seconds(40)))
    # The next step starts with its own budget of timeouts and attempts.
    AT_HOTEL.counted("book_hotel").after(TimedOut(), TimedOut()).when(
        answer("book_hotel", attempt=1)).expect(
        Outcome(0, ACTION, 1, "succeeded", NOW), BOOK_FLIGHT, sweeps=0, attempt=0)


@pytest.mark.parametrize(("story", "sweeps", "then", "status", "error"), [
    (AT_FLIGHT, 4, (given_up(1), CANCEL_HOTEL), COMPENSATING,
     "book_flight action timed out 4 times"),
    (UNDOING_HOTEL, 2, (given_up(0, COMPENSATION), TELL_AGAIN), FAILED,
     "book_hotel compensation timed out 2 times"),
], ids=["an action compensates", "a compensation fails"])
def test_a_step_that_keeps_timing_out_gives_up(story: Script, sweeps: int, then: tuple,
                                               status: str, error: str):
    story.after(*[TimedOut()] * sweeps).when(TimedOut()).expect(*then, status=status,
                                                                error=error)


@pytest.mark.parametrize("story", [
    *ENDED.values(),
    AT_CHARGE.after(*[TimedOut()] * 3).answered("charge_card")],
    ids=[*ENDED, "completed after its last step timed out 3 times"])
def test_a_timeout_that_reaches_an_ended_saga_changes_nothing(story: Script):
    story.when(TimedOut()).ignored()


def test_an_operator_retries_a_failed_compensation_with_a_fresh_budget():
    (STUCK_UNDOING
     .when(RetryOrdered())
     .expect(CANCEL_HOTEL, status=COMPENSATING, current_step=0, phase=COMPENSATION,
             attempt=0, sweeps=0, ended_at=None, deadline_at=NOW + seconds(30))
     # Its budget is fresh: the next failure is retried, not given up on.
     .when(raises("book_hotel", Boom("down"), COMPENSATION, jitter=1))
     .expect(entry("book_hotel", "failed", phase=COMPENSATION, error="Boom: down"),
             retry_in=1.0, status=COMPENSATING, attempt=1))


def test_an_operator_retries_an_aborted_saga_which_runs_on_as_if_it_never_stopped():
    ABORTED.when(RetryOrdered()).expect(
        BOOK_FLIGHT, status=RUNNING, current_step=1, phase=ACTION, attempt=0, sweeps=0,
        ended_at=None, deadline_at=NOW + seconds(20), error=None, error_code=None)


@pytest.mark.parametrize("story", [AT_FLIGHT, UNDOING_HOTEL, COMPLETED_TRIP, COMPENSATED_TRIP],
                         ids=["running", "compensating", "completed", "compensated"])
def test_only_a_failed_saga_can_be_retried(story: Script):
    with pytest.raises(SagaStateError, match="retry needs a saga that is failed"):
        story.when(RetryOrdered())


def test_an_operator_compensates_a_running_saga():
    AT_FLIGHT.when(CompensationOrdered()).expect(
        Closed(1, ACTION, "lost", "the operator compensated the saga", NOW), CANCEL_HOTEL,
        status=COMPENSATING, current_step=0, phase=COMPENSATION, attempt=0,
        deadline_at=NOW + seconds(30), error="compensated by an operator", error_code=None)


def test_an_operator_compensates_an_aborted_saga_keeping_why_it_failed():
    ABORTED.when(CompensationOrdered()).expect(
        Closed(1, ACTION, "lost", "the operator compensated the saga", NOW), CANCEL_HOTEL,
        status=COMPENSATING, ended_at=None, error="aborted by an operator")


def test_an_operator_compensating_the_first_step_ends_the_saga_with_nothing_to_undo():
    AT_HOTEL.when(CompensationOrdered()).expect(
        Closed(0, ACTION, "lost", "the operator compensated the saga", NOW),
        status=COMPENSATED, ended_at=NOW, deadline_at=None)


@pytest.mark.parametrize(("story", "refusal"), [
    (UNDOING_HOTEL, "is compensating: compensate needs a saga that is running or failed"),
    (STUCK_UNDOING, "was already compensating: use retry"),
    (COMPLETED_TRIP, "is completed"),
    (COMPENSATED_TRIP, "is compensated"),
], ids=["compensating", "failed compensating", "completed", "compensated"])
def test_compensation_cannot_be_ordered_once_the_saga_compensates_or_ended(
        story: Script, refusal: str):
    with pytest.raises(SagaStateError, match=refusal):
        story.when(CompensationOrdered())


@pytest.mark.parametrize(("story", "then", "error"), [
    (AT_FLIGHT, (Closed(1, ACTION, "lost", "the operator aborted the saga", NOW), TELL_AGAIN),
     "aborted by an operator"),
    (AT_HOTEL, (Closed(0, ACTION, "lost", "the operator aborted the saga", NOW),),
     "aborted by an operator"),
    (UNDOING_HOTEL,
     (Closed(0, COMPENSATION, "lost", "the operator aborted the saga", NOW), TELL_AGAIN),
     "aborted by an operator after: book_flight refused: full"),
    (Script(replace(TRIP, if_not_completed=None), AT_FLIGHT.saga),
     (Closed(1, ACTION, "lost", "the operator aborted the saga", NOW),),
     "aborted by an operator"),
], ids=["past the first step", "at the first step", "compensating", "with no follow-up task"])
def test_an_operator_abort_ends_the_saga_failed_undoing_nothing(story: Script, then: tuple,
                                                                 error: str):
    story.when(AbortOrdered()).expect(*then, status=FAILED, ended_at=NOW, deadline_at=None,
                                      error=error, current_step=story.saga.current_step,
                                      phase=story.saga.phase)


@pytest.mark.parametrize("story", ENDED.values(), ids=ENDED)
def test_only_a_saga_in_flight_can_be_aborted(story: Script):
    with pytest.raises(SagaStateError, match="abort needs a saga that is running or compens"):
        story.when(AbortOrdered())


@pytest.mark.parametrize(("story", "happening"), [
    (AT_FLIGHT, answer("book_hotel", {"room": 99})),
    (AT_FLIGHT, raises("book_hotel", Boom("late"))),
    (AT_FLIGHT, begun("book_hotel")),
    (AT_FLIGHT, answer("notify")),
    (AT_FLIGHT, answer("book_flight", phase=COMPENSATION)),
    (UNDOING_HOTEL, answer("book_flight", attempt=1)),
    (UNDOING_HOTEL, raises("book_flight", NoSeats("full"))),
    (UNDOING_HOTEL, answer("book_hotel")),
    (COMPLETED_TRIP, answer("charge_card")),
    (COMPLETED_TRIP, failed("charge_card", attempt=1)),
    (COMPENSATED_TRIP, answer("book_hotel", phase=COMPENSATION)),
    (STUCK_UNDOING, begun("book_hotel", COMPENSATION)),
    (ABORTED, answer("book_flight")),
], ids=["a finished step answers again", "a finished step fails late",
        "a finished step is redelivered", "a later step", "the other phase",
        "the refused step answers late", "the refusal is delivered again",
        "the undone action answers", "after completing", "a failure after completing",
        "a compensation after compensating", "a redelivery after failing",
        "an answer after an abort"])
def test_a_late_or_duplicated_delivery_changes_nothing(story: Script, happening: Happening):
    then = story.when(happening)
    then.ignored()
    assert then.event is not None and story.admits(then.event.delivery) is Admission.IGNORE


@pytest.mark.parametrize(("story", "happening"), [
    (AT_FLIGHT, answer("book_flight", {"seat": "3A"})),
    (AT_FLIGHT, raises("book_flight", NoSeats("full"))),
    (AT_FLIGHT.counted("book_flight", 2), failed("book_flight", attempt=2)),
    (AT_FLIGHT, begun("book_flight")),
    (AT_FLIGHT, TimedOut()),
    (STUCK_UNDOING, RetryOrdered()),
    (AT_FLIGHT, CompensationOrdered()),
    (UNDOING_HOTEL, AbortOrdered()),
], ids=["answered", "refused", "failed", "begun", "timed out", "retried", "compensated",
        "aborted"])
def test_a_decision_leaves_the_given_state_untouched_and_is_the_same_every_time(
        story: Script, happening: Happening):
    before = copy.deepcopy(story.saga)
    first, second = story.when(happening), story.when(happening)
    assert story.saga == before and first.decision == second.decision
    assert first.saga != before  # it did decide something


def test_a_saga_state_and_a_decision_cannot_be_changed_in_place():
    decision = AT_FLIGHT.when(answer("book_flight")).decision
    with pytest.raises(dataclasses.FrozenInstanceError):
        AT_FLIGHT.saga.status = FAILED  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.effects = ()  # type: ignore[misc, union-attr]


def test_the_history_is_on_the_fixed_clock_and_only_the_event_under_test_is_now():
    # Sanity of the script itself: deadlines the tests expect are the event's, not history's.
    assert AT_FLIGHT.saga.deadline_at == EARLIER + seconds(20)


def test_anything_but_a_saga_event_is_a_type_error():
    with pytest.raises(TypeError, match="not a saga event"):
        machine.decide(TRIP, AT_FLIGHT.saga, "poke", NOW)  # type: ignore[arg-type]
