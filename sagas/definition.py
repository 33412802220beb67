"""How a saga is declared: steps, each with its action, compensation and policies."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property


class Refusal(Exception):
    """A refusal by its type alone: an action that raises one is refused (never retried,
    the saga compensates) whether or not its step declares it, as an injected failure is."""


@dataclass(frozen=True)
class Retry:
    """At most `attempts` deliveries; waits grow from `backoff` seconds, doubling, jittered."""

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 30.0

    def scaled(self, factor: float) -> Retry:
        """The same attempts with every wait `factor` times as long."""
        return replace(self, backoff=self.backoff * factor,
                       max_backoff=self.max_backoff * factor)

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), with equal
        jitter: half the backoff, plus `jitter` (0 to 1, drawn by the caller) of the rest."""
        # The exponent is capped so that huge attempt budgets cannot overflow a float.
        ceiling = min(self.max_backoff, self.backoff * 2 ** min(attempt - 1, 64))
        return ceiling / 2 * (1 + jitter)


@dataclass(frozen=True)
class Step:
    name: str
    action: str  # the participant's task, `service.action`
    compensation: str | None = None
    retry: Retry = field(default_factory=Retry)
    compensation_retry: Retry = field(default_factory=lambda: Retry(attempts=10))
    # The participant's errors that are refusals (never retried: the saga compensates), as
    # the types themselves, so that renaming or removing one fails at import.
    business_errors: tuple[type[Exception], ...] = ()
    # Past this many seconds without an answer the sweeper dispatches the step again.
    timeout: float = 10.0


@dataclass(frozen=True)
class SagaDefinition:
    kind: str
    steps: tuple[Step, ...]
    # Sent (with the saga's id and data) when the saga ends without completing after a step
    # did its work, so that a participant tells again what the saga left untold to those
    # who follow its events.
    if_not_completed: str | None = None

    @cached_property
    def version(self) -> str:
        """A fingerprint of what a saga in flight depends on: its steps' names and tasks, in
        order, and the task sent when it does not complete. Retry policies and timeouts are
        left out: changing them strands no saga."""
        shape = [self.if_not_completed,
                 *([step.name, step.action, step.compensation] for step in self.steps)]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:12]

    def with_retries_scaled(self, factor: float) -> SagaDefinition:
        """This saga with every retry's waits `factor` times as long."""
        return replace(self, steps=tuple(
            replace(step, retry=step.retry.scaled(factor),
                    compensation_retry=step.compensation_retry.scaled(factor))
            for step in self.steps))

    def refusal(self, name: str | None) -> type[Exception] | None:
        """The refusal one of the steps declares under `name`, the name a saga's log
        records; None for an error that is not one of them."""
        declared = (error for step in self.steps for error in step.business_errors)
        return next((error for error in declared if error.__name__ == name), None)

    def index(self, step_name: str) -> int:
        for i, step in enumerate(self.steps):
            if step.name == step_name:
                return i
        raise KeyError(f"{self.kind} has no step {step_name!r}")
