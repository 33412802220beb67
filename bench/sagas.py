"""Saga throughput and latency against a bare Celery chain, on one broker, in one run.

    .venv/bin/python bench/sagas.py --sagas 1000 --workers 2

One prefork worker (one process per core by default) serves every queue. A round runs a
bare chain of three no-op tasks, N times, as fast as the worker takes them (then a chain
of four, and the floor chain: three tasks making a saga's commits and nothing else, its
caller committing a row waiting for the disk, the first two links one each without
waiting, the last one waiting);
then N create-order sagas for N distinct pets, as fast; then N DBOS workflows of three
steps, each a transaction committing one row, on the same PostgreSQL, run by a DBOS process
with as many workflows at once as the worker has processes (bench/dbos_workflow.py; skipped
when dbos is not installed: pip install -e '.[bench]'). Rounds repeat (three by
default) and the round with the median saga / chain ratio is reported, so that a burst of
the machine's other work moves one round, not the figure. Then sagas at half that rate,
for their latency from start to completion.

Each run ends where its last piece of work ends (the last link's clock, the saga log's
`ended_at`), and watching for that costs the measured machine next to nothing: a Redis
counter for chains, one primary-key probe for sagas until the one started last has ended.

Where the time goes: the CPU each process spends per chain and per saga in the median
round (the worker's main process, its pool, PostgreSQL, Redis, the benchmark that starts
them), and how many of the machine's cores that kept busy. Last, a few hundred more chains
and sagas while the task events that Flower reads are captured, for each task's run time;
the rest of a worker process's time is Celery handing it the next task.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dbos_workflow
from bench.common import CpuMeter, report, servers, summary, worker
from bench.dbos_workflow import Dbos, dbos_database, dbos_worker

CLIENTS = 4


def make_pets(count: int) -> list[int]:
    """Available pets, written directly (with their inventory rows): the set-up is not
    what is measured."""
    from sqlalchemy import insert

    from models.db import unit_of_work
    from models.inventory import InventoryPet
    from models.pet import Pet

    with unit_of_work() as session:
        ids = session.scalars(insert(Pet).returning(Pet.id), [
            {"name": f"bench-{i}", "status": "available", "photo_urls": [], "version": 1}
            for i in range(count)]).all()
        session.execute(insert(InventoryPet), [
            {"pet_id": pet_id, "status": "available", "version": 1} for pet_id in ids])
    return list(ids)


def start_saga(pet_id: int, run: str) -> uuid.UUID:
    from models.db import unit_of_work
    from models.order import new_order_id
    from sagas import engine
    from sagas.orders import create_order
    from workers import relay  # noqa: F401  (sends each saga's first command on commit)

    with unit_of_work() as session:
        payload = {"order_id": new_order_id(session), "pet_id": pet_id, "customer_id": 1,
                   "quantity": 1, "ship_date": None, "bench": run}
        return engine.start(session, create_order, payload).id


def start_in_background(pet_id: int, run: str, ids: list[uuid.UUID]) -> threading.Thread:
    """Start a saga on a thread of its own, so pacing never waits for a commit; its id
    goes into `ids`."""
    thread = threading.Thread(target=lambda: ids.append(start_saga(pet_id, run)))
    thread.start()
    return thread


def sagas_done(ids: list[uuid.UUID]) -> tuple[int, list[float], float]:
    """(these sagas that ended, their start-to-end seconds, when the last of them ended as
    a Unix time); found by primary key, so that watching them costs the same however large
    the saga log."""
    from sqlalchemy import select

    from models.db import unit_of_work
    from models.saga import Saga

    with unit_of_work() as session:
        rows = session.execute(select(Saga.status, Saga.created_at, Saga.ended_at).where(
            Saga.id.in_(ids), Saga.ended_at.is_not(None))).all()
    bad = [status for status, _, _ in rows if status != "completed"]
    if bad:
        raise RuntimeError(f"{len(bad)} sagas did not complete: {set(bad)}")
    last = max((end.timestamp() for _, _, end in rows), default=0.0)
    return len(rows), [(end - start).total_seconds() for _, start, end in rows], last


def has_ended(saga_id: uuid.UUID) -> bool:
    from sqlalchemy import select

    from models.db import one_statement
    from models.saga import Saga

    with one_statement() as connection:
        return connection.execute(select(Saga.ended_at.is_not(None)).where(
            Saga.id == saga_id)).scalar_one()


def wait_for_sagas(ids: list[uuid.UUID], timeout: float = 600) -> tuple[list[float], float]:
    """(each saga's start-to-end seconds, when the last one ended as a Unix time).

    Watching must not load the machine it measures: until the saga started last has
    ended, one primary-key probe every few milliseconds; then all of them, less often. The
    end is read from the saga log, so it does not depend on how often this looks.
    """
    wait_until(lambda: has_ended(ids[-1]), 1, timeout)
    deadline = time.monotonic() + timeout
    while True:
        count, latencies, last = sagas_done(ids)
        if count == len(ids):
            return latencies, last
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the sagas to end")
        time.sleep(0.1)


def wait_until(done: Callable[[], int], count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while done() < count:
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the work to finish")
        time.sleep(0.02)


def run_chains(count: int, length: int = 3, *, commit: bool = False) -> float:
    """Chains of `length` tasks (the last one counting) per second: no-ops, or with a
    saga's commits: the caller commits a row waiting for the disk, as a saga's start does,
    before it sends the chain, and each link commits one as a saga's step does."""
    from celery import chain

    from bench.noop import DONE_KEY, LAST_DONE_KEY, _redis, commit_row, done, noop

    links = [noop.si(commit=commit) for _ in range(length - 1)] + [done.si(commit=commit)]

    def send(_: int) -> None:
        if commit:
            commit_row()
        chain(*links).apply_async()

    _redis().delete(DONE_KEY)
    started = time.time()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(send, range(count)))
    wait_until(lambda: int(_redis().get(DONE_KEY) or 0), count)
    # The end as the last link saw it, as a saga's is read from the saga log.
    return count / (float(_redis().get(LAST_DONE_KEY)) - started)


def run_sagas(pets: list[int], rate: float | None = None) -> tuple[float, list[float]]:
    """(sagas per second, each one's seconds from start to completion); paced at `rate`
    sagas per second when given, else as fast as they are taken."""
    run, ids = uuid.uuid4().hex, []
    started = time.time()
    if rate is None:
        with ThreadPoolExecutor(CLIENTS) as pool:
            ids = list(pool.map(lambda pet_id: start_saga(pet_id, run), pets))
    else:
        starting = []
        for i, pet_id in enumerate(pets):
            time.sleep(max(0.0, started + i / rate - time.time()))
            starting.append(start_in_background(pet_id, run, ids))
        for thread in starting:
            thread.join()
    latencies, finished = wait_for_sagas(ids)
    return len(pets) / (finished - started), latencies


def run_dbos(dbos: Dbos, count: int) -> float:
    """DBOS workflows per second, enqueued as fast as they are taken; the end as DBOS
    recorded it, as a saga's is read from the saga log."""
    run = uuid.uuid4().hex
    ids = [f"{run}-{i}" for i in range(count)]
    started = time.time()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(dbos.enqueue, ids))
    wait_until(lambda: dbos.has_ended(ids[-1]), 1)  # one primary-key probe, as for sagas
    wait_until(lambda: dbos.ended(ids)[0], count)
    return count / (dbos.ended(ids)[1] - started)


def measure_dbos(count: int, url: str, processes: int, log: Path
                 ) -> tuple[float, dict[str, float]]:
    """(DBOS workflows per second, CPU milliseconds per workflow by process kind), from a
    DBOS process started for them: idle, it polls its queue, which the chains and sagas
    should not pay for."""
    with dbos_worker(url, processes, log) as dbos:
        run_dbos(dbos, 50)  # warm-up
        with CpuMeter(dbos.process.pid).per_run(count) as cpu:
            rate = run_dbos(dbos, count)
    cpu.pop("worker pool processes")  # it has none: its workflows are threads
    return rate, {kind.replace("worker main", "DBOS"): ms for kind, ms in cpu.items()}


@contextmanager
def task_run_times() -> Iterator[dict[str, list[float]]]:
    """Seconds each task that finishes meanwhile ran, by task name, from the task events
    Flower reads: `task-received` names a task, `task-succeeded` says how long it ran."""
    from workers.celery_app import app

    names: dict[str, str] = {}
    runtimes: dict[str, float] = {}
    listening = threading.Event()  # the workers answered the receiver's wake-up call
    handlers = {"task-received": lambda e: names.__setitem__(e["uuid"], e["name"]),
                "task-succeeded": lambda e: runtimes.__setitem__(e["uuid"], e["runtime"]),
                "worker-heartbeat": lambda e: listening.set()}
    with app.connection() as connection:
        receiver = app.events.Receiver(connection, handlers=handlers)
        thread = threading.Thread(target=receiver.capture)
        thread.start()
        try:
            if not listening.wait(30):
                raise RuntimeError("no task events: are the workers sending them?")
            by_name: dict[str, list[float]] = defaultdict(list)
            yield by_name
            time.sleep(1)  # the last events are on their way
        finally:
            receiver.should_stop = True
            thread.join()
    for task_id, runtime in runtimes.items():
        if task_id in names:
            by_name[names[task_id]].append(runtime)


def time_per_run(work: Callable[[], float], runs: int, processes: int) -> dict[str, float]:
    """Milliseconds of worker-process time per chain or saga, of the `runs` that `work` runs
    (returning their rate), and how much of it each kind of task ran."""
    with task_run_times() as by_name:
        rate = work()
    in_tasks = {name: 1000 * sum(times) / runs for name, times in sorted(by_name.items())}
    return {"worker-process time": 1000 * processes / rate,
            "time in its tasks": sum(in_tasks.values()),
            **{f"  {name} (mean {1000 * statistics.fmean(by_name[name]):.2f} ms a run)": ms
               for name, ms in in_tasks.items()}}


@dataclass(frozen=True)
class Round:
    chains: float  # three-task chains per second
    long_chains: float  # four-task chains per second
    floor_chains: float  # three-task chains making a saga's commits only, per second
    sagas: float  # sagas per second
    latencies: list[float]  # each saga's seconds from start to completion
    chain_cpu: dict[str, float]  # CPU milliseconds per three-task chain, by process kind
    floor_cpu: dict[str, float]  # per floor chain
    saga_cpu: dict[str, float]  # per saga
    dbos: float | None  # DBOS workflows per second, None without dbos
    dbos_cpu: dict[str, float]  # per DBOS workflow

    @property
    def ratio(self) -> float:
        return self.sagas / self.chains


def measure_round(count: int, meter: CpuMeter,
                  dbos: Callable[[int], tuple[float, dict[str, float]]] | None) -> Round:
    """Chains, then sagas, then DBOS workflows, back to back: a ratio compares runs
    seconds apart."""
    with meter.per_run(count) as chain_cpu:
        chains = run_chains(count)
    long_chains = run_chains(count, length=4)
    with meter.per_run(count) as floor_cpu:
        floor_chains = run_chains(count, commit=True)
    pets = make_pets(count)
    with meter.per_run(count) as saga_cpu:
        sagas, latencies = run_sagas(pets)
    workflows, dbos_cpu = dbos(count) if dbos else (None, {})
    return Round(chains, long_chains, floor_chains, sagas, latencies,
                 chain_cpu, floor_cpu, saga_cpu, workflows, dbos_cpu)


def cpu_figures(run: str, cpu: dict[str, float], rate: float) -> dict[str, float]:
    """CPU milliseconds per run by process, and the cores they kept busy at `rate` runs a
    second: throughput is cores busy / CPU per run."""
    return {**{f"CPU per {run}, {kind}, ms": round(ms, 2) for kind, ms in cpu.items()},
            f"cores busy during the {run}s": round(cpu["all"] * rate / 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="worker processes (prefork concurrency)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dbos-concurrency", type=int,
                        help="workflows DBOS runs at once (default: as many as the worker's "
                             "processes; 0: no limit, DBOS's own default)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not dbos_workflow.INSTALLED:
        print("dbos is not installed (pip install -e '.[bench]'): DBOS is skipped",
              file=sys.stderr)
    with servers() as env:
        work = Path(env["PETSTORE_DATA_DIR"])
        database = dbos_database(env["DATABASE_URL"]) if dbos_workflow.INSTALLED else nullcontext()
        with database as dbos_url, worker(args.workers, work / "worker.log") as process:
            from bench.noop import create_table

            create_table()
            run_chains(50)  # warm-up: every pool process has run each kind of task
            run_chains(50, commit=True)
            run_sagas(make_pets(50))
            meter = CpuMeter(process.pid)
            concurrency = args.workers if args.dbos_concurrency is None else (
                args.dbos_concurrency)
            dbos = partial(measure_dbos, url=dbos_url, processes=concurrency,
                           log=work / "dbos.log") if dbos_url else None
            rounds = [measure_round(args.sagas, meter, dbos) for _ in range(args.rounds)]
            median = sorted(rounds, key=lambda r: r.ratio)[len(rounds) // 2]
            half = median.sagas / 2
            _, paced = run_sagas(make_pets(max(50, args.sagas // 2)), rate=half)
            few = max(100, args.sagas // 3)
            chain_time = time_per_run(lambda: run_chains(few), few, args.workers)
            pets = make_pets(few)
            saga_time = time_per_run(lambda: run_sagas(pets)[0], few, args.workers)
    results = {
        "worker processes": args.workers,
        "sagas": args.sagas,
        "saga / chain throughput, each round": ", ".join(f"{r.ratio:.3f}" for r in rounds),
        "floor chain / chain throughput, each round": ", ".join(
            f"{r.floor_chains / r.chains:.3f}" for r in rounds),
        **({"saga / DBOS throughput, each round": ", ".join(
            f"{r.sagas / r.dbos:.3f}" for r in rounds if r.dbos)} if median.dbos else {}),
        "chain of 3 no-op tasks, per second": round(median.chains, 1),
        "create-order sagas, per second": round(median.sagas, 1),
        "saga / chain throughput": round(median.ratio, 3),
        "chain of 4 no-op tasks, per second": round(median.long_chains, 1),
        "saga / 4-task chain throughput": round(median.sagas / median.long_chains, 3),
        "floor chain (a saga's commits only), per second": round(median.floor_chains, 1),
        "saga / floor chain throughput": round(median.sagas / median.floor_chains, 3),
        # A saga makes at least that chain's commits: its ratio's ceiling.
        "floor chain / chain throughput": round(median.floor_chains / median.chains, 3),
        **({"DBOS workflows of 3 transactions, per second": round(median.dbos, 1),
            "saga / DBOS throughput": round(median.sagas / median.dbos, 3)}
           if median.dbos else {}),
        **{f"flat out, {k} ms": round(v * 1000, 1)
           for k, v in summary(median.latencies).items()},
        "paced at half rate, sagas per second": round(half, 1),
        **{f"at half rate, {k} ms": round(v * 1000, 1) for k, v in summary(paced).items()},
        # CPU per run over the median round's runs flat out, and the cores that kept busy.
        **cpu_figures("chain", median.chain_cpu, median.chains),
        **cpu_figures("floor chain", median.floor_cpu, median.floor_chains),
        **cpu_figures("saga", median.saga_cpu, median.sagas),
        **(cpu_figures("DBOS workflow", median.dbos_cpu, median.dbos) if median.dbos else {}),
        **{f"a chain, {k}, ms": round(v, 2) for k, v in chain_time.items()},
        **{f"a saga, {k}, ms": round(v, 2) for k, v in saga_time.items()},
    }
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
