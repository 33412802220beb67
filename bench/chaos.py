"""The chaos suite: the real system under a mixed load while faults strike, then the
invariants, as figures. Exits 1 if any invariant is broken.

    .venv/bin/python bench/chaos.py --duration 300            # the release run (make chaos)
    .venv/bin/python bench/chaos.py --duration 45 --seed 1    # the test suite's run
    .venv/bin/python bench/chaos.py --broker rabbitmq         # on RabbitMQ (127.0.0.1:5672)
    .venv/bin/python bench/chaos.py --hosts 3                 # workers on three hosts

It starts its own embedded PostgreSQL and Redis (it must restart them), the API under
gunicorn, several worker processes, an orchestrator worker (the `sagas` queue) and beat,
all on loopback. Meanwhile it SIGKILLs random worker processes and the orchestrator (a
supervisor restarts them), restarts Redis, stops it for 10 seconds, restarts PostgreSQL,
then crashes it (an immediate shutdown: no checkpoint, unwritten log lost) and starts it,
delivers every message twice and injects transient step errors. With `--broker rabbitmq`
the broker is the RabbitMQ at `--rabbitmq-url` (Redis keeps only the API's rate limits), in
a virtual host of the run's own, and RabbitMQ is restarted too (`rabbitmqctl`).

With `--hosts N` (N > 1) the service workers run on N hosts (bench/hosts.py: network
namespaces with hostnames of their own, reaching PostgreSQL and the broker over links of
their own with 2 ms of latency each way), and the faults add: a whole host killed (every
process on it), a host cut off from the broker for 20 seconds and another from PostgreSQL
for 20 seconds, then reconnected. Where namespaces cannot be made it says why and runs on
one host.

`--seed` seeds every random choice it makes (the load's and the fault schedule's; the
report prints it, and a run without one picks one). The threads and the servers' timing
still vary from run to run, so a seed repeats the choices, not the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.hosts import Hosts, server_address  # noqa: E402
from petstore.embedded import (  # noqa: E402
    RABBITMQ_URL,
    EmbeddedServers,
    RabbitVirtualHost,
    free_port,
)

STEP_FAULTS = ("inventory.reserve_stock=error:0.2,orders.place_order=error:0.1,"
               "pets.sell_pet=error:0.1,inventory.count_release=error:0.2")
OWNER = ("owner", "chaos-owner-password")
CUT_SECONDS = 20  # a host cut off from a server, then reconnected


# --- the system -------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    host: int | None = None  # on bench/hosts.py's host of that number; None: this one


@dataclass
class System:
    env: dict[str, str]
    log_dir: Path
    workers: int
    hosts: Hosts | None = None  # the service workers' hosts, round robin; else this one
    procs: list[Proc] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    stopping: bool = False

    def start(self) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "workers"]
        queues = "pets,photos,orders,inventory"
        self.procs = [
            Proc("api", [sys.executable, "-m", "gunicorn", "-c", "python:petstore.gunicorn_conf",
                         "--bind", f"127.0.0.1:{self.port}", "--workers", "3",
                         "--timeout", "60", "web:create_app()"]),
            *(self._on_host(i, Proc(f"worker{i}", [
                *celery, "worker", "--queues", queues, "--concurrency", "2",
                "--hostname", f"worker{i}@%h", "--loglevel", "INFO"]))
              for i in range(self.workers)),
            Proc("orchestrator", [*celery, "worker", "--queues", "sagas", "--concurrency", "1",
                                  "--hostname", "orchestrator@chaos", "--loglevel", "INFO"]),
            Proc("beat", [*celery, "beat", "--schedule", str(self.log_dir / "beat-schedule"),
                          "--loglevel", "INFO"]),
        ]
        for proc in self.procs:
            self._spawn(proc)
        threading.Thread(target=self._supervise, daemon=True).start()

    def _on_host(self, number: int, proc: Proc) -> Proc:
        """The process on host `number % hosts`, reaching the servers over its links."""
        if self.hosts is not None:
            proc.host = number % self.hosts.count
            proc.command = self.hosts.command(proc.host, proc.command)
        return proc

    def _spawn(self, proc: Proc) -> None:
        log = (self.log_dir / f"{proc.name}.log").open("ab")
        env = self.env if proc.host is None else self.hosts.env(proc.host, self.env)
        proc.process = subprocess.Popen(proc.command, env=env, cwd=ROOT, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def _supervise(self) -> None:
        """Restart whatever died, as systemd or Kubernetes would."""
        while not self.stopping:
            for proc in self.procs:
                if proc.process and proc.process.poll() is not None and not self.stopping:
                    with _quiet():
                        os.killpg(proc.process.pid, signal.SIGKILL)  # orphans of the group
                    time.sleep(0.5)
                    proc.restarts += 1
                    self._spawn(proc)
            time.sleep(0.5)

    def celery_pids(self, name_prefix: str) -> list[int]:
        """The processes (main and pool children) of the workers named so."""
        pids = []
        for proc in self.procs:
            if proc.name.startswith(name_prefix) and proc.process:
                pids.append(proc.process.pid)
                pids.extend(_children(proc.process.pid))
        return pids

    def stop(self) -> None:
        self.stopping = True
        for proc in self.procs:
            with _quiet():
                os.killpg(proc.process.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.process.wait(20)
            except subprocess.TimeoutExpired:
                with _quiet():
                    os.killpg(proc.process.pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _quiet() -> contextlib.suppress:
    """Processes come and go under chaos: one that is gone already is fine."""
    return contextlib.suppress(OSError, psutil.Error)


# --- the load ---------------------------------------------------------------------------


class Client:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int | None, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or "null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return error.code, json.loads(raw or "null")
            except ValueError:
                return error.code, raw[:200]
        except (OSError, ValueError):
            return None, None


@dataclass
class Load:
    client: Client
    owner: dict[str, str]
    customers: list[dict[str, str]]
    accepted: list[tuple[str, Any]] = field(default_factory=list)  # (what, id) per 2xx
    answers: Counter = field(default_factory=Counter)
    pets: list[int] = field(default_factory=list)
    orders: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seed: int = 0
    local: threading.local = field(default_factory=threading.local)

    @property
    def rng(self) -> random.Random:
        """This client thread's own seeded choices."""
        return self.local.rng

    def note(self, action: str, status: int | None) -> None:
        with self.lock:
            self.answers[(action, status)] += 1

    def accept(self, what: str, key: Any) -> None:
        with self.lock:
            self.accepted.append((what, key))

    def add_pet(self) -> None:
        status, body = self.client.call("POST", "/pet", {
            "name": f"chaos-{uuid.uuid4().hex[:6]}", "photoUrls": []}, self.owner)
        self.note("add_pet", status)
        if status == 200:
            self.accept("pet", body["id"])
            with self.lock:
                self.pets.append(body["id"])

    def place_order(self) -> None:
        with self.lock:
            if not self.pets:
                return
            pet_id = self.rng.choice(self.pets[-8:])  # few pets, many clients: races
        customer = self.rng.choice(self.customers)
        status, body = self.client.call("POST", "/store/order", {"petId": pet_id},
                                        {**customer, "Idempotency-Key": uuid.uuid4().hex})
        self.note("place_order", status)
        self._record("order", status, body, customer)

    def _record(self, what: str, status: int | None, body: Any,
                customer: dict[str, str] | None = None) -> None:
        if status == 200:
            self.accept(what, body["id"])
            if what == "order":
                with self.lock:
                    self.orders.append((body["id"], customer))
        elif status == 202:
            self.accept("saga", body["sagaId"])

    def change_order(self, action: str) -> None:
        with self.lock:
            if not self.orders:
                return
            order_id, customer = self.rng.choice(self.orders[-20:])
        if action == "cancel":
            status, body = self.client.call("DELETE", f"/store/order/{order_id}",
                                            headers=customer)
        else:
            status, body = self.client.call("POST", f"/store/order/{order_id}/{action}",
                                            headers=self.owner)
        self.note(action, status)
        self._record(action, status, body)

    def read(self) -> None:
        status, _ = self.client.call("GET", "/store/inventory")
        self.note("inventory", status)

    def run(self, seconds: float, threads: int) -> None:
        actions = [(self.add_pet, 20), (self.place_order, 45),
                   (lambda: self.change_order("approve"), 10),
                   (lambda: self.change_order("deliver"), 5),
                   (lambda: self.change_order("cancel"), 10), (self.read, 10)]
        functions, weights = zip(*actions, strict=True)
        deadline = time.monotonic() + seconds

        def loop(number: int) -> None:
            self.local.rng = random.Random(f"{self.seed}:load:{number}")
            while time.monotonic() < deadline:
                self.rng.choices(functions, weights)[0]()

        pool = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()


# --- the faults -------------------------------------------------------------------------


@dataclass
class Chaos:
    system: System
    servers: EmbeddedServers
    seed: int = 0
    rabbitmq: RabbitVirtualHost | None = None
    log: list[tuple[float, str]] = field(default_factory=list)
    cuts: list[threading.Thread] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:faults")

    def note(self, what: str) -> None:
        self.log.append((time.monotonic() - self.started, what))
        print(f"  t={self.log[-1][0]:6.1f}s  {what}", flush=True)

    def kill_a_worker_process(self) -> None:
        pids = self.system.celery_pids("worker")
        if pids:
            pid = self.rng.choice(pids)
            with _quiet():
                os.kill(pid, signal.SIGKILL)
            self.note(f"SIGKILL worker process {pid}")

    def kill_the_orchestrator(self) -> None:
        pids = self.system.celery_pids("orchestrator")
        if pids:
            with _quiet():
                os.kill(pids[0], signal.SIGKILL)
            self.note("SIGKILL the orchestrator")

    def restart_redis(self) -> None:
        self.servers.stop_redis()
        self.servers.start_redis()
        self.note("Redis restarted")

    def stop_redis(self, seconds: float) -> None:
        self.servers.stop_redis()
        self.note(f"Redis stopped for {seconds:.0f}s")
        time.sleep(seconds)
        self.servers.start_redis()
        self.note("Redis back")

    def kill_a_host(self) -> None:
        host = self.rng.randrange(self.system.hosts.count)
        killed = self.system.hosts.kill(host)
        self.note(f"host{host + 1} killed ({killed} processes)")

    def cut_a_host_from(self, server: str, seconds: float) -> None:
        """In a thread of its own: the schedule goes on while the host is cut off."""
        hosts, host = self.system.hosts, self.rng.randrange(self.system.hosts.count)

        def cut() -> None:
            hosts.cut(host, server)
            self.note(f"host{host + 1} cut off from {server} for {seconds:.0f}s")
            time.sleep(seconds)
            hosts.mend(host, server)
            self.note(f"host{host + 1} reaches {server} again")

        self.cuts.append(threading.Thread(target=cut))
        self.cuts[-1].start()

    def restart_rabbitmq(self) -> None:
        self.rabbitmq.restart_server()
        self.note("RabbitMQ restarted")

    def restart_postgres(self) -> None:
        self.servers.restart_postgres()
        self.note("PostgreSQL restarted")

    def crash_postgres(self) -> None:
        self.servers.crash_postgres()
        self.note("PostgreSQL crashed and recovered")

    def run(self, seconds: float, redis_outage: float) -> None:
        plan = [(0.2, self.kill_the_orchestrator), (0.3, self.restart_redis),
                (0.5, lambda: self.stop_redis(redis_outage)), (0.65, self.restart_postgres),
                (0.85, self.crash_postgres)]
        if self.rabbitmq and self.rabbitmq.local():
            plan.append((0.4, self.restart_rabbitmq))
        if self.system.hosts:
            plan += [(0.35, self.kill_a_host),
                     (0.45, lambda: self.cut_a_host_from("broker", CUT_SECONDS)),
                     (0.75, lambda: self.cut_a_host_from("postgres", CUT_SECONDS))]
        plan += [(self.rng.uniform(0.05, 0.9), self.kill_a_worker_process)
                 for _ in range(6)]
        for at, fault in sorted(plan, key=lambda item: item[0]):
            delay = self.started + at * seconds - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            fault()
        for cut in self.cuts:
            cut.join()


# --- the invariants ---------------------------------------------------------------------


def figures(load: Load, after_fault: float, after_load: float) -> dict[str, Any]:
    from sqlalchemy import func, select, text

    from models.db import unit_of_work
    from models.inventory import InventoryPet, counts
    from models.order import Order
    from models.pet import Pet
    from models.saga import Saga

    with unit_of_work() as session:
        sagas = dict(session.execute(
            select(Saga.status, func.count()).group_by(Saga.status)).all())
        inventory, pets = counts(session), pets_by_status(session)
        missing = sum(not _present(session, what, key) for what, key in load.accepted)
        two_live = session.scalar(text(
            "SELECT count(*) FROM (SELECT pet_id FROM orders WHERE status IN "
            "('placed', 'approved') GROUP BY pet_id HAVING count(*) > 1) AS x"))
        sold_again = session.scalar(text(
            "SELECT count(*) FROM (SELECT pet_id FROM orders WHERE status IN "
            "('approved', 'delivered') GROUP BY pet_id HAVING count(*) > 1) AS x"))
        lost_events = session.scalar(
            select(func.count()).select_from(Pet)
            .outerjoin(InventoryPet, InventoryPet.pet_id == Pet.id)
            .where((InventoryPet.version.is_(None)) | (InventoryPet.version < Pet.version)))
        twice = session.scalar(text(
            "SELECT count(*) FROM (SELECT saga_id, step_index, phase FROM saga_steps WHERE "
            "status = 'succeeded' GROUP BY saga_id, step_index, phase HAVING count(*) > 1) "
            "AS x"))
        orders = session.scalar(select(func.count()).select_from(Order))
    return {
        "requests": sum(load.answers.values()),
        "answers 2xx": sum(n for (_, s), n in load.answers.items() if s and s < 300),
        "answers 5xx": sum(n for (_, s), n in load.answers.items() if s and s >= 500),
        "answers 500": sum(n for (_, s), n in load.answers.items() if s == 500),
        "no answer (connection refused or reset)": sum(
            n for (_, s), n in load.answers.items() if s is None),
        "orders": orders,
        "sagas started": sum(sagas.values()),
        "sagas completed": sagas.get("completed", 0),
        "sagas compensated": sagas.get("compensated", 0),
        "sagas refused": sagas.get("refused", 0),
        "sagas failed": sagas.get("failed", 0),
        "sagas still running": sagas.get("running", 0) + sagas.get("compensating", 0),
        "2xx answers whose work is missing": missing,
        "pets in two live orders": two_live,
        "sold pets sold again": sold_again,
        **{f"inventory - pets, {s}": inventory[s] - pets[s] for s in pets},
        "events lost": lost_events,
        "duplicates applied twice": twice,
        "seconds to settle after the last fault": round(after_fault, 1),
        "seconds to settle after the load ended": round(after_load, 1),
    }


def attempts_by_host() -> dict[str, int]:
    """Step attempts by the host of the worker that took each, as the saga log names it
    (a Celery node name, `worker0@host1`)."""
    from sqlalchemy import text

    from models.db import unit_of_work

    with unit_of_work() as session:
        return dict(session.execute(text(
            "SELECT split_part(worker, '@', 2), count(*) FROM saga_steps "
            "WHERE worker IS NOT NULL GROUP BY 1 ORDER BY 1")).all())


def _present(session: Any, what: str, key: Any) -> bool:
    from models.order import Order
    from models.pet import Pet
    from models.saga import Saga

    if what == "pet":
        return session.get(Pet, key) is not None
    if what == "saga":
        return session.get(Saga, uuid.UUID(key)) is not None
    order = session.get(Order, key)
    wanted = {"order": None, "approve": ("approved", "delivered"), "deliver": ("delivered",),
              "cancel": ("cancelled",)}[what]
    return order is not None and (wanted is None or order.status in wanted)


INVARIANTS = ("sagas still running", "2xx answers whose work is missing",
              "pets in two live orders", "sold pets sold again", "events lost",
              "duplicates applied twice", "answers 500", "inventory - pets, available",
              "inventory - pets, pending", "inventory - pets, sold")


def pets_by_status(session: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from models.pet import Pet

    rows = session.execute(select(Pet.status, func.count()).group_by(Pet.status)).all()
    return {"available": 0, "pending": 0, "sold": 0, **dict(rows)}


def settled() -> bool:
    """The whole system is at rest (the run owns its database): no message waits in the
    outbox, no saga is in flight, and the inventory agrees with the pets by status."""
    from sqlalchemy import func, select

    from models.db import unit_of_work
    from models.inventory import counts
    from models.outbox import OutboxMessage
    from models.saga import IN_FLIGHT, Saga

    try:
        with unit_of_work() as session:
            unsent = session.scalar(select(func.count()).select_from(OutboxMessage)
                                    .where(OutboxMessage.sent_at.is_(None)))
            in_flight = session.scalar(select(func.count()).select_from(Saga)
                                       .where(Saga.status.in_(IN_FLIGHT)))
            return unsent == 0 and in_flight == 0 and counts(session) == pets_by_status(session)
    except Exception:  # the database may still be coming back
        return False


# --- the run ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load")
    parser.add_argument("--settle", type=float, default=120, help="seconds allowed to settle")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--redis-outage", type=float, default=10, help="seconds Redis is down")
    parser.add_argument("--seed", type=int, help="seeds the load's and the faults' random "
                                                  "choices (default: one picked and printed)")
    parser.add_argument("--broker", choices=("redis", "rabbitmq"), default="redis")
    parser.add_argument("--hosts", type=int, default=1,
                        help="hosts the service workers run on (network namespaces)")
    parser.add_argument("--rabbitmq-url", default=RABBITMQ_URL)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    # Stopped with SIGTERM, it still removes what it made (hosts, servers, processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)

    work = Path(tempfile.mkdtemp(prefix="petstore-chaos-"))
    # Every temporary file of the run (Redis's, those of killed workers) goes with `work`.
    temp = work / "tmp"
    temp.mkdir()
    tempfile.tempdir = str(temp)
    rabbitmq = RabbitVirtualHost(args.rabbitmq_url).create() if args.broker == "rabbitmq" \
        else None
    servers = EmbeddedServers(work / "servers", redis_port=free_port()).start()
    given = {k: v for k, v in os.environ.items() if k != "BROKER_URL"}  # the run's own only
    env = {**given, "DATABASE_URL": servers.database_url, "REDIS_URL": servers.redis_url,
           **({"BROKER_URL": rabbitmq.url} if rabbitmq else {}), "TMPDIR": str(temp),
           "PETSTORE_DATA_DIR": str(work), "PETSTORE_OWNER": ":".join(OWNER),
           "PETSTORE_FAULTS": STEP_FAULTS, "PETSTORE_DUPLICATE_DELIVERIES": "1",
           "PETSTORE_RETRY_SCALE": "0.5", "PETSTORE_SWEEP_INTERVAL": "1",
           "PETSTORE_OUTBOX_INTERVAL": "1", "PETSTORE_ORDER_WAIT": "2",
           # A load of a dozen customers: the per-customer order limit would refuse most.
           "PETSTORE_LOGIN_LIMIT": "100000", "PETSTORE_MAX_OPEN_ORDERS": "100000"}
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "BROKER_URL",
                                           "PETSTORE_DATA_DIR") if k in env})
    subprocess.run([sys.executable, "-m", "petstore", "migrate"], env=env, check=True)
    subprocess.run([sys.executable, "-m", "petstore", "ensure-owner"], env=env, check=True)
    hosts = None
    if args.hosts > 1:
        if why := Hosts.unavailable():
            print(f"chaos: one host, not {args.hosts}: {why}", flush=True)
        else:
            broker = env.get("BROKER_URL") or env["REDIS_URL"]
            hosts = Hosts(args.hosts, {"postgres": server_address(env["DATABASE_URL"]),
                                       "broker": server_address(broker)}).start()
    system = System(env, work, max(args.workers, hosts.count if hosts else 0), hosts)
    system.start()
    client = Client(f"http://127.0.0.1:{system.port}/v2")
    try:
        _wait_for(lambda: client.call("GET", "/store/inventory")[0] == 200, 60)
        load = Load(client, _login(client, *OWNER), _customers(client, 12), seed=seed)
        where = f"{hosts.count} hosts" if hosts else "one host"
        print(f"chaos: {args.duration:.0f}s of load with faults on {args.broker}, {where}, "
              f"seed {seed}; logs in {work} (removed unless an invariant breaks)", flush=True)
        chaos = Chaos(system, servers, seed, rabbitmq)
        faults = threading.Thread(target=chaos.run, args=(args.duration, args.redis_outage))
        faults.start()
        load.run(args.duration, args.threads)
        faults.join()
        last_fault, load_over = chaos.started + chaos.log[-1][0], time.monotonic()
        print("load over; settling", flush=True)
        ok = _wait_for(settled, args.settle)
        now = time.monotonic()
        results = {"seed": seed, **figures(load, now - last_fault if ok else float("nan"),
                                           now - load_over if ok else float("nan"))}
        results["worker restarts"] = sum(p.restarts for p in system.procs)
        results["attempts by host"] = attempts_by_host()
    finally:
        system.stop()
        if hosts:
            hosts.stop()
        servers.stop()
        if rabbitmq:
            rabbitmq.delete()
    print("answers by request:", ", ".join(
        f"{action} {status or 'none'}: {n}" for (action, status), n in sorted(
            load.answers.items(), key=lambda item: (item[0][0], item[0][1] or 0))))
    width = max(map(len, results))
    for name, value in results.items():
        mark = "  <-- must be 0" if name in INVARIANTS and value else ""
        print(f"{name:<{width}}  {value}{mark}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    broken = [name for name in INVARIANTS if results[name]] + ([] if ok else ["did not settle"])
    if broken:  # the logs and the data say what happened: kept
        print(f"BROKEN: {', '.join(broken)}; logs and data kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("invariants hold")
    return 0


def _wait_for(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def _login(client: Client, username: str, password: str) -> dict[str, str]:
    status, token = client.call("GET", f"/user/login?username={username}&password={password}")
    if status != 200:
        raise RuntimeError(f"login as {username} failed: {status} {token}")
    return {"api_key": token}


def _customers(client: Client, count: int) -> list[dict[str, str]]:
    customers = []
    for _ in range(count):
        name, password = f"chaos{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        client.call("POST", "/user", {"username": name, "password": password})
        customers.append(_login(client, name, password))
    return customers


if __name__ == "__main__":
    sys.exit(main())
