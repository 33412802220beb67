"""The API under load: GET /v2/pet/{id} against a bare Flask endpoint reading one row.

    .venv/bin/python bench/api.py --seconds 15

Both run under gunicorn (2 sync workers, one per core) on the same database; wrk (Debian's
`wrk` package) drives each in turn from loopback. The figure is the ratio of their rates.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, report, servers
from petstore.embedded import free_port


def a_pet() -> int:
    from models.db import unit_of_work
    from models.pet import add_pet

    with unit_of_work() as session:
        return add_pet(session, name="bench", photo_urls=["http://img/1.png"],
                       category="dogs", tags=["good"]).id


def gunicorn(target: str, port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--header-map", "dangerous", target],
        cwd=ROOT, env={**os.environ}, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return process  # it answers (404 at /)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{target} did not start: see {log}")


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    figures = {"requests per second": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}
    for p in ("50", "90", "99"):
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()
        figures[f"p{p} ms"] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with servers() as env:
        pet_id, log = a_pet(), Path(env["PETSTORE_DATA_DIR"]) / "gunicorn.log"
        results = {}
        for name, target, path in (("bare row read", "bench.bare_app:app", f"/pet/{pet_id}"),
                                   ("GET /v2/pet/{id}", "web:create_app()",
                                    f"/v2/pet/{pet_id}")):
            port = free_port()
            server = gunicorn(target, port, log)
            try:
                wrk(f"http://127.0.0.1:{port}{path}", 3, args.connections)  # warm-up
                for key, value in wrk(f"http://127.0.0.1:{port}{path}", args.seconds,
                                      args.connections).items():
                    results[f"{name}, {key}"] = round(value, 2)
            finally:
                server.terminate()
                server.wait(30)
    results["GET /v2/pet/{id} / bare row read"] = round(
        results["GET /v2/pet/{id}, requests per second"]
        / results["bare row read, requests per second"], 3)
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
