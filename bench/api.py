"""The API under load: GET /v2/pet/{id} and POST /v2/store/order against a bare Flask
endpoint reading one row.

    .venv/bin/python bench/api.py --seconds 15

Each runs under gunicorn as the Procfile runs it (2 gevent workers, one per core) on the
same database; wrk (Debian's `wrk` package) drives each from loopback. The two reads take
turns for a few rounds, and the round with the median ratio is reported. Orders go
to a real worker (prefork, one process per core), each for a pet of its own: first as a
client waits for its saga to settle (200), then GET /v2/pet/{id} again while clients wait
for orders, and last with `Prefer: respond-async` (202). Figures are ratios of rates
against the bare endpoint measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, report, servers, stop_group, worker
from bench.sagas import make_pets
from petstore.embedded import free_port

# wrk's Lua: each thread orders its own pets, `first + n * threads + index`, n = 0, 1, ...
ORDERS_SCRIPT = """
local first, threads, started = %(first)d, %(threads)d, 0
function setup(thread)
  thread:set("index", started)
  started = started + 1
end
function init(args)
  n = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer %(token)s"
  %(prefer)s
end
function request()
  local pet = first + n * threads + index
  n = n + 1
  return wrk.format(nil, nil, nil, '{"petId": ' .. pet .. ', "quantity": 1}')
end
"""
THREADS = 2


def a_pet() -> int:
    from models.db import unit_of_work
    from models.pet import add_pet

    with unit_of_work() as session:
        return add_pet(session, name="bench", photo_urls=["http://img/1.png"],
                       category="dogs", tags=["good"]).id


def a_customer_token() -> str:
    from datetime import timedelta

    from models.db import unit_of_work
    from models.user import create_users, log_in

    with unit_of_work() as session:
        create_users(session, [{"username": "bench-customer", "password": "bench-password"}])
    with unit_of_work() as session:
        return log_in(session, "bench-customer", "bench-password", timedelta(hours=1))[0]


def orders_script(work: Path, name: str, pets: list[int], token: str, prefer: str) -> Path:
    """A wrk script ordering each of these pets once (their ids run without gaps)."""
    if pets != list(range(pets[0], pets[0] + len(pets))):
        raise RuntimeError("the pets' ids are not consecutive")
    script = work / f"{name}.lua"
    script.write_text(ORDERS_SCRIPT % {
        "first": pets[0], "threads": THREADS, "token": token,
        "prefer": f'wrk.headers["Prefer"] = "{prefer}"' if prefer else ""})
    return script


@contextmanager
def served(target: str, log: Path) -> Iterator[str]:
    """The WSGI `target` under gunicorn, as the Procfile runs the API; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:petstore.gunicorn_conf",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", target],
        cwd=ROOT, env={**os.environ}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group: the master and its workers
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/", timeout=1)
            except urllib.error.HTTPError:
                break  # it answers (404 at /)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not start: see {log}") from None
                time.sleep(0.2)
        yield base
    finally:
        stop_group(process)


def wrk(url: str, seconds: int, connections: int, script: Path | None = None
        ) -> dict[str, float]:
    options = ["--script", str(script)] if script else []
    out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s",
                          "--timeout", "10s", "--latency", *options, url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    figures = {"requests per second": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}
    for p in ("50", "90", "99"):
        found = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if found is None:
            raise RuntimeError(f"no p{p} latency in wrk's report:\n{out}")
        value, unit = found.groups()
        figures[f"p{p} ms"] = float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
    return figures


def reads_while_orders_wait(pet_id: int, orders: Path, seconds: int, connections: int,
                            log: Path) -> dict[str, float]:
    """GET /v2/pet/{id} from 4 connections while `connections` clients wait for orders:
    a client waiting for its saga must not hold up everyone else's reads."""
    with served("web:create_app()", log) as base, ThreadPoolExecutor(1) as pool:
        ordering = pool.submit(wrk, f"{base}/v2/store/order", seconds + 2, connections, orders)
        time.sleep(1)  # the orders are under way
        reads = wrk(f"{base}/v2/pet/{pet_id}", seconds, 4)
        ordering.result()
    return reads


def reads_in_turns(pet_id: int, seconds: int, connections: int, rounds: int,
                   log: Path) -> dict[str, float]:
    """GET /v2/pet/{id} and the bare row read, both served throughout and loaded in turns
    (the order flipped every round), so that a burst of the machine's other work moves one
    round, not the ratio; the figures are those of the round with the median ratio."""
    with served("bench.bare_app:app", log) as bare, served("web:create_app()", log) as api:
        urls = {"bare row read": f"{bare}/pet/{pet_id}",
                "GET /v2/pet/{id}": f"{api}/v2/pet/{pet_id}"}
        for url in urls.values():
            wrk(url, 3, connections)  # warm-up
        measured = []
        for i in range(rounds):
            turns = list(urls.items()) if i % 2 == 0 else list(urls.items())[::-1]
            measured.append({name: wrk(url, seconds, connections) for name, url in turns})
    ratios = [m["GET /v2/pet/{id}"]["requests per second"]
              / m["bare row read"]["requests per second"] for m in measured]
    median = measured[sorted(range(rounds), key=ratios.__getitem__)[rounds // 2]]
    results: dict[str, float | str] = {
        "GET /v2/pet/{id} / bare row read, each round": ", ".join(f"{r:.3f}" for r in ratios)}
    for name in urls:
        for key, value in median[name].items():
            results[f"{name}, {key}"] = round(value, 2)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of reads in turns")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="Celery worker processes that run the order sagas")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with servers() as env:
        work = Path(env["PETSTORE_DATA_DIR"])
        pet_id, token, log = a_pet(), a_customer_token(), work / "gunicorn.log"
        # Enough pets for every order the runs can make, warm-ups included.
        waited = orders_script(work, "orders", make_pets(200 * args.seconds), token, "")
        waited_too = orders_script(work, "orders-beside-reads", make_pets(200 * args.seconds),
                                   token, "")
        accepted = orders_script(work, "orders-async", make_pets(2000 * args.seconds), token,
                                 "respond-async")
        runs = (("POST /v2/store/order", waited),
                ("POST /v2/store/order, respond-async", accepted))
        results = reads_in_turns(pet_id, args.seconds, args.connections, args.rounds, log)
        with worker(args.workers, work / "worker.log"):
            for name, script in runs:
                if script is accepted:  # last: it leaves a backlog of sagas behind
                    beside = reads_while_orders_wait(pet_id, waited_too, args.seconds,
                                                     args.connections, log)
                    for key, value in beside.items():
                        results[f"GET /v2/pet/{{id}} while orders wait, {key}"] = round(value, 2)
                with served("web:create_app()", log) as base:
                    for key, value in wrk(f"{base}/v2/store/order", args.seconds,
                                          args.connections, script).items():
                        results[f"{name}, {key}"] = round(value, 2)
    bare = results["bare row read, requests per second"]
    for name in ("GET /v2/pet/{id}", *(name for name, _ in runs)):
        results[f"{name} / bare row read"] = round(
            results[f"{name}, requests per second"] / bare, 3)
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
