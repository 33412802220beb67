"""Saga throughput and latency with the workers on 1, 2 and 4 hosts, against one broker and
one database.

    .venv/bin/python bench/across_hosts.py --sagas 200 --rounds 2

Each host is a network namespace with a hostname of its own, reaching PostgreSQL and the
broker over links of its own that hold every chunk 2 ms each way (bench/hosts.py), and
runs one prefork worker of 2 processes on every queue. For each layout in turn (the order
rotating every round): N create-order sagas as fast as they are taken (sagas per second),
then N more at a fixed rate, half the one-host rate of the first round, for their latency
from start to completion (p50, p99). The baseline is the same worker with no namespace and
no added latency, measured in the same rounds; figures are medians over the rounds. All
hosts share this machine's cores, so the figures show what the links cost and where one
machine saturates, not what more machines would add.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, percentile, report, servers, stop_group
from bench.hosts import Hosts, server_address
from bench.sagas import make_pets, run_sagas

LAYOUTS = (0, 1, 2, 4)  # hosts; 0: the baseline, a worker here with no added latency
QUEUES = "pets,photos,orders,inventory,sagas"


@contextmanager
def workers(hosts: Hosts | None, log_dir: Path) -> Iterator[None]:
    """One worker on each host (or one here), until each answers a ping."""
    from workers.celery_app import app

    started, names = [], []
    for host in range(hosts.count if hosts else 1):
        name = f"bench{host}@{hosts.hostname(host) if hosts else 'localhost'}"
        argv = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--queues", QUEUES,
                "--concurrency", "2", "--hostname", name, "--without-gossip",
                "--without-mingle", "--loglevel", "WARNING"]
        env = {**os.environ}
        if hosts:
            argv, env = hosts.command(host, argv), hosts.env(host, env)
        log = (log_dir / f"{name}.log").open("ab")
        started.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True))
        names.append(name)
    try:
        deadline = time.monotonic() + 60
        while len(app.control.ping(destination=names, timeout=0.5)) < len(names):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start: see {log_dir}")
        yield
    finally:
        for process in started:
            stop_group(process, grace=30)


def measure(layout: int, count: int, rate: float | None, log_dir: Path
            ) -> tuple[float, list[float]]:
    """(sagas per second as fast as taken, start-to-end seconds at `rate`, or at full
    speed when no rate is known yet)."""
    env = os.environ
    hosts = (Hosts(layout, {"postgres": server_address(env["DATABASE_URL"]),
                            "broker": server_address(env["REDIS_URL"])})
             if layout else None)
    with hosts or nullcontext(), workers(hosts, log_dir):
        run_sagas(make_pets(20))  # warm-up: connections, imports
        throughput, latencies = run_sagas(make_pets(count))
        if rate is not None:
            _, latencies = run_sagas(make_pets(count), rate)
    return throughput, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # Stopped with SIGTERM, it still removes what it made (hosts, servers, processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if why := Hosts.unavailable():
        print(f"across_hosts: cannot make hosts here: {why}", file=sys.stderr)
        return 1
    with servers() as env:
        log_dir = Path(env["PETSTORE_DATA_DIR"])
        rates: dict[int, list[float]] = {layout: [] for layout in LAYOUTS}
        latencies: dict[int, list[float]] = {layout: [] for layout in LAYOUTS}
        paced: float | None = None
        for number in range(args.rounds):
            order = LAYOUTS[number % len(LAYOUTS):] + LAYOUTS[:number % len(LAYOUTS)]
            for layout in order:
                rate, seconds = measure(layout, args.sagas, paced, log_dir)
                rates[layout].append(rate)
                if paced is not None:
                    latencies[layout].extend(seconds)
                print(f"round {number + 1}: {layout or 'no'} hosts: {rate:.1f} sagas/s",
                      flush=True)
                if layout == 1 and paced is None:
                    paced = rate / 2
        results: dict[str, object] = {"paced rate, sagas/s": round(paced or 0, 1)}
        base = statistics.median(rates[0])
        for layout in LAYOUTS:
            name = f"{layout} hosts" if layout else "no namespace, no latency"
            rate = statistics.median(rates[layout])
            results[f"{name}: sagas/s"] = round(rate, 1)
            results[f"{name}: / no namespace"] = round(rate / base, 3)
            if latencies[layout]:
                results[f"{name}: p50 / p99 ms at the paced rate"] = (
                    f"{percentile(latencies[layout], 50) * 1000:.1f} / "
                    f"{percentile(latencies[layout], 99) * 1000:.1f}")
        report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
