"""Fault injection for tests and demos, off unless `PETSTORE_FAULTS` names some, and
duplicate deliveries, off unless `PETSTORE_DUPLICATE_DELIVERIES` is set.

`PETSTORE_FAULTS="inventory.reserve_stock=error:0.3,pets.release_pet=fail"`:
- `error[:p]`: a transient error (retried), on every try or with probability p;
- `fail[:p]`: a business refusal (never retried: the saga compensates);
- `crash[:p]`: the worker process dies mid-step, before its transaction commits;
- `delay:s`: the step takes s seconds longer, mid-step.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Any, TypeVar

from sagas.definition import Refusal

W = TypeVar("W", bound=Callable[..., Any])


class InjectedError(RuntimeError):
    """A transient fault: the step is retried."""


class InjectedFailure(Refusal):
    """A business refusal, whatever the step declares: the saga compensates."""


@dataclass(frozen=True)
class Fault:
    kind: str
    value: float


KINDS = ("error", "fail", "crash", "delay")


def parse(spec: str) -> dict[str, Fault]:
    faults = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        task, _, fault = item.partition("=")
        kind, _, value = fault.partition(":")
        if kind not in KINDS or not task:
            raise ValueError(f"PETSTORE_FAULTS: cannot read {item!r}; expected "
                             f"task=error|fail|crash[:probability] or task=delay:seconds")
        faults[task.strip()] = Fault(kind, float(value) if value else 1.0)
    return faults


@cache
def configured() -> dict[str, Fault]:
    return parse(os.environ.get("PETSTORE_FAULTS", ""))


def injected(task_name: str, work: W) -> W:
    """`work` as it is, or, when PETSTORE_FAULTS names a fault for `task_name`, `work` that
    meets that fault after doing its work, before its transaction commits."""
    fault = configured().get(task_name)
    if fault is None:
        return work

    @wraps(work)
    def faulty(*args: Any, **kwargs: Any) -> Any:
        reply = work(*args, **kwargs)
        if fault.kind == "delay" or random.random() < fault.value:
            _inject(fault, task_name)
        return reply

    return faulty  # type: ignore[return-value]


def _inject(fault: Fault, task_name: str) -> None:
    if fault.kind == "delay":
        time.sleep(fault.value)
    elif fault.kind == "error":
        raise InjectedError(f"injected transient error in {task_name}")
    elif fault.kind == "fail":
        raise InjectedFailure(f"injected business failure in {task_name}")
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def publishing(send: Callable[..., None]) -> Callable[..., None]:
    """`send`, or, with PETSTORE_DUPLICATE_DELIVERIES=1, `send` made twice each time, so
    that every receiver meets every message twice."""
    if os.environ.get("PETSTORE_DUPLICATE_DELIVERIES", "") not in ("1", "true"):
        return send

    def twice(*args: object, **kwargs: object) -> None:
        send(*args, **kwargs)
        send(*args, **kwargs)

    return twice
