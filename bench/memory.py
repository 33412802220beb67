"""Worker memory under a steady saga load: flat, or growing without bound?

    .venv/bin/python bench/memory.py --minutes 10 --rate 20

A prefork worker (one process per core) on PostgreSQL and Redis runs create-order sagas
paced at `--rate` per second for `--minutes`. Every `--every` seconds the resident memory
of the worker's processes (main and children) is sampled; the report compares the end
with the first minute's end, so that warm-up (imports, caches filling) is not read as
growth.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, servers, worker
from bench.sagas import make_pets, sagas_done, start_in_background


def resident_mib(process: psutil.Process) -> float:
    family = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in family if p.is_running()) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20, help="sagas started per second")
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seconds = args.minutes * 60
    with servers() as env:
        pets = make_pets(int(seconds * args.rate) + 1)
        with worker(args.workers, Path(env["PETSTORE_DATA_DIR"]) / "worker.log") as process:
            tree = psutil.Process(process.pid)
            run, samples, ids = uuid.uuid4().hex, [], []
            started = time.monotonic()
            next_sample = started
            for i, pet_id in enumerate(pets):
                now = time.monotonic()
                if now - started >= seconds:
                    break
                if now >= next_sample:
                    samples.append((now - started, resident_mib(tree)))
                    print(f"{samples[-1][0]:6.0f} s  {samples[-1][1]:7.1f} MiB", flush=True)
                    next_sample += args.every
                time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
                start_in_background(pet_id, run, ids)
            samples.append((time.monotonic() - started, resident_mib(tree)))
            done, _, _ = sagas_done(ids)
    warm = next((mib for at, mib in samples if at >= 60), samples[-1][1])
    end_at, end = samples[-1]
    results = {
        "worker processes": args.workers,
        "minutes": args.minutes,
        "sagas started per second": args.rate,
        "sagas completed by the end": done,
        "worker memory after 1 minute (warmed up), MiB": round(warm, 1),
        "worker memory at the end, MiB": round(end, 1),
        "growth after warm-up, MiB per minute": round((end - warm) / max(end_at / 60 - 1, 1e-9),
                                                      3),
        "worker memory, peak, MiB": round(max(mib for _, mib in samples), 1),
    }
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
