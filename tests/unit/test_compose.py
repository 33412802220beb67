"""docker-compose.yml has the production shape, and every command it runs exists here.

No database, broker or Docker: the files are parsed and each named command is looked up in
the project (the click group, the app factory) or in Celery's command line.
"""

from __future__ import annotations

import importlib
import runpy
import shlex
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.settings import PROJECT_ROOT
from petstore.cli import cli
from workers.celery_app import QUEUES

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
# Every top-level package of the project: a folder with an __init__.py, tests aside.
# The packages the project ships (tests/ and bench/ stay in the repository).
PACKAGES = sorted(path.parent.name for path in PROJECT_ROOT.glob("*/__init__.py")
                  if path.parent.name not in ("tests", "bench"))


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    # safe_load resolves the `<<: *app` merge keys, so each service is complete.
    return yaml.safe_load(COMPOSE.read_text())["services"]


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def commands(command: str | list[str]) -> Iterator[list[str]]:
    """The programs a command runs: `sh -c "a && b"` runs a and b; `honcho start ... name`
    runs the Procfile's command of that name."""
    args = argv(command)
    if args[:2] == ["honcho", "start"]:
        yield procfile_commands()[args[-1]]
    elif args[:2] == ["sh", "-c"]:
        for part in args[2].replace("&&", ";").split(";"):
            if part.strip():
                yield shlex.split(part)
    else:
        yield args


def healthcheck_command(check: dict[str, Any]) -> list[str]:
    test = check["test"]
    if isinstance(test, str):
        return shlex.split(test)
    return shlex.split(test[1]) if test[0] == "CMD-SHELL" else [str(a) for a in test[1:]]


def every_command(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    for name, service in services.items():
        if "command" in service:
            for args in commands(service["command"]):
                yield name, args
        if "healthcheck" in service:
            yield f"{name} healthcheck", healthcheck_command(service["healthcheck"])


def celery_subcommand(args: list[str]) -> str:
    """`celery -A workers worker ...` -> "worker": the first word that is no option."""
    rest = iter(args[1:])
    for arg in rest:
        if arg in ("-A", "--app", "-b", "--broker", "--result-backend", "--workdir"):
            next(rest, None)
        elif not arg.startswith("-"):
            return arg
    raise AssertionError(f"no subcommand in {args}")


def worker_queue(args: list[str]) -> str | None:
    prefix = ["celery", "-A", "workers", "worker", "--queues"]
    return args[len(prefix)] if args[:len(prefix)] == prefix else None


def test_the_servers_have_healthchecks_and_volumes(services):
    for name in ("postgres", "redis", "rabbitmq"):
        assert services[name].get("healthcheck", {}).get("test"), name
        assert services[name].get("volumes"), name


def test_rabbitmq_is_a_profile_the_app_waits_for_when_it_runs(services):
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
    assert services["api"]["depends_on"]["rabbitmq"] == {"condition": "service_healthy",
                                                         "required": False}
    assert "BROKER_URL" in services["api"]["environment"]


def runs(service: dict[str, Any]) -> list[str]:
    """The program a service runs (the first, for `sh -c "a && b"`)."""
    return next(commands(service["command"]))


def test_one_worker_service_per_queue(services):
    queues = {name: worker_queue(runs(service))
              for name, service in services.items() if "command" in service}
    workers = sorted(queue for queue in queues.values() if queue is not None)
    assert workers == sorted(QUEUES)


def test_beat_and_flower_with_basic_auth(services):
    assert runs(services["beat"])[:4] == ["celery", "-A", "workers", "beat"]
    assert runs(services["flower"])[:4] == ["celery", "-A", "workers", "flower"]
    assert services["flower"]["environment"].get("FLOWER_BASIC_AUTH")


def test_the_api_runs_gunicorn_on_the_app_factory(services):
    args = runs(services["api"])
    assert args[0] == "gunicorn"
    assert args[-1] == "web:create_app()"
    module, factory = args[-1].split(":")
    assert callable(getattr(importlib.import_module(module), factory.removesuffix("()")))


def procfile_commands() -> dict[str, list[str]]:
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()
    return {name.strip(): shlex.split(command)
            for name, _, command in (line.partition(":") for line in lines if line.strip())}


def gunicorn_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, Any]) -> dict[str, Any]:
    """The settings the API's gunicorn configuration gives in an environment."""
    for name in ("HOST", "PORT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return runpy.run_module("petstore.gunicorn_conf")


def test_compose_runs_each_procfile_process_through_the_procfile_itself(services):
    """One process list, two runners: each of the Procfile's processes is one service,
    which runs it with honcho from the Procfile, so no command can differ between them."""
    honcho = {name: argv(service["command"]) for name, service in services.items()
              if argv(service.get("command", ""))[:2] == ["honcho", "start"]}
    assert {args[-1] for args in honcho.values()} == set(procfile_commands())
    assert all(args[-1] == name for name, args in honcho.items())
    assert "Procfile" in copied(PROJECT_ROOT / "Dockerfile")
    # Nothing else runs a project process its own way.
    others = [runs(service) for name, service in services.items()
              if "command" in service and name not in honcho]
    assert not [args for args in others if args[0] in ("celery", "gunicorn")]


def honcho_port(service: dict[str, Any]) -> str:
    """The PORT honcho gives the (single) process it starts."""
    args = argv(service["command"])
    return args[args.index("--port") + 1] if "--port" in args else "5000"


def test_the_api_listens_on_every_interface_in_compose_only(services, monkeypatch):
    api = services["api"]
    composed = gunicorn_settings(monkeypatch, {**api["environment"], "PORT": honcho_port(api)})
    assert composed["bind"] == "0.0.0.0:8000"
    assert composed["workers"] == 2
    assert "8000:8000" in services["api"]["ports"]
    local = gunicorn_settings(monkeypatch, {})
    assert local["bind"] == "127.0.0.1:8000"
    assert local["workers"] == 2


def test_petstore_commands_exist(services):
    named = [args for _, args in every_command(services) if args[0] == "petstore"]
    assert {args[1] for args in named} >= {"migrate", "ensure-owner"}
    for args in named:
        assert args[1] in cli.commands, args


def test_celery_subcommands_exist(services):
    from celery.bin.celery import celery as celery_cli

    # Plugins such as flower join Celery's command line through this entry point group.
    known = set(celery_cli.commands) | {ep.name for ep in entry_points(group="celery.commands")}
    named = [(where, args) for where, args in every_command(services) if args[0] == "celery"]
    assert named
    for where, args in named:
        assert celery_subcommand(args) in known, (where, args)


def test_built_services_use_the_dockerfile_at_the_root(services):
    built = {name: service["build"] for name, service in services.items() if "build" in service}
    assert built
    for name, build in built.items():
        context, dockerfile = ((build, "Dockerfile") if isinstance(build, str)
                               else (build.get("context", "."), build.get("dockerfile",
                                                                          "Dockerfile")))
        path = (COMPOSE.parent / context / dockerfile).resolve()
        assert path == PROJECT_ROOT / "Dockerfile" and path.is_file(), name


def test_the_procfile_runs_the_same_worker_queues():
    queues = [worker_queue(args) for args in procfile_commands().values()]
    assert sorted(queue for queue in queues if queue is not None) == sorted(QUEUES)


def copied(dockerfile: Path) -> set[str]:
    """The sources of every COPY, with their trailing slashes removed."""
    sources: set[str] = set()
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            paths = [word for word in words[1:] if not word.startswith("--")]
            sources.update(path.rstrip("/") for path in paths[:-1])
    return sources


def test_the_dockerfile_copies_every_package():
    sources = copied(PROJECT_ROOT / "Dockerfile")
    assert "." in sources or set(PACKAGES) <= sources, set(PACKAGES) - sources


def test_the_packages_are_the_expected_ones():
    # Guards the glob above: a package missing from this list would escape the Dockerfile test.
    assert set(PACKAGES) >= {"web", "workers", "sagas", "models", "petstore"}
