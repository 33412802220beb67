"""Whether this code keeps what sagas in flight need: the definitions they started on.

`sagas/versions.json` lists, by kind, the definition versions sagas may be running on. A change
to a definition makes a new version; this check fails until the new version is recorded
and the old definition is kept in `sagas.retired`, so that a deploy never strands the sagas
started on it. A version leaves the record (and `sagas.retired`) only once no saga in
flight uses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sagas.definition import SagaDefinition

RECORD = Path(__file__).with_name("versions.json")


def recorded(path: Path = RECORD) -> dict[str, list[str]]:
    return json.loads(path.read_text()) if path.exists() else {}


def record(current: Iterable[SagaDefinition], path: Path = RECORD) -> dict[str, list[str]]:
    """Add the current versions to the record; the record as written."""
    versions = recorded(path)
    for definition in current:
        kept = versions.setdefault(definition.kind, [])
        if definition.version not in kept:
            kept.append(definition.version)
    path.write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n")
    return versions


def unkept(current: Iterable[SagaDefinition], registered: Iterable[SagaDefinition],
           versions: dict[str, list[str]]) -> list[str]:
    """What this code fails to keep of the recorded versions, in words; empty when none."""
    have = {(d.kind, d.version) for d in registered}
    problems = [f"{d.kind} {d.version} is not recorded: a definition changed. Keep the old "
                "definition in sagas/retired.py, then record the new version with "
                "`celery -A workers saga check --record`"
                for d in current if d.version not in versions.get(d.kind, [])]
    problems += [f"{kind} {version} is recorded but no definition of it is registered: "
                 "sagas started on it could not finish. Keep it in sagas/retired.py (or, once "
                 "`celery -A workers saga versions` shows none in flight on it, drop it from "
                 "sagas/versions.json)"
                 for kind, kept in sorted(versions.items()) for version in kept
                 if (kind, version) not in have]
    return problems


def untasked(registered: Iterable[SagaDefinition], tasks: Iterable[str]) -> list[str]:
    """The tasks the registered definitions name that no worker defines, in words."""
    known = set(tasks)
    named = {(d.kind, d.version, task) for d in registered for step in d.steps
             for task in (step.action, step.compensation, d.if_not_completed) if task}
    return [f"{kind} {version} sends {task}, which no worker defines"
            for kind, version, task in sorted(named) if task not in known]
