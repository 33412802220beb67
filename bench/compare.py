"""Saga / chain throughput of two commits, measured in turns on the same servers.

    .venv/bin/python bench/compare.py 183e9fa HEAD --rounds 8 --sagas 400

On a shared machine one run of `bench/sagas.py` per commit, minutes apart, measures the
machine as much as the change. Here embedded PostgreSQL (with a database for each commit,
migrated by that commit's code) and Redis start once; each round runs, for each commit in
turn (the order flipped every round), a fresh worker of that commit's code: a warm-up, N
three-task chains, N create-order sagas, N chains again, and the saga rate over the mean
of the two chain rates. Each commit's code runs under this checkout's `bench/` (copied
into its worktree), so only the system differs. The figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# One round in a process of its own, importing the commit's code (its worktree comes first).
ROUND = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from bench.common import servers, worker
from bench.sagas import make_pets, run_chains, run_sagas
count = int(sys.argv[2])
with servers() as env:
    with worker(2, Path(env["PETSTORE_DATA_DIR"]) / "worker.log"):
        run_chains(50)
        run_sagas(make_pets(50))
        before = run_chains(count)
        sagas, _ = run_sagas(make_pets(count))
        after = run_chains(count)
print(json.dumps({"chains": [before, after], "sagas": sagas}))
"""


def checkout(commit: str, into: Path) -> Path:
    """A worktree of `commit` with this checkout's benchmarks."""
    tree = into / commit.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), commit],
                   cwd=ROOT, check=True)
    shutil.rmtree(tree / "bench")
    shutil.copytree(ROOT / "bench", tree / "bench")
    return tree


def database_of(url: str, name: str) -> str:
    """A new database `name` on the server of `url`; its URL."""
    from sqlalchemy import create_engine, make_url, text

    server = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def one_round(tree: Path, count: int, env: dict[str, str]) -> float:
    done = subprocess.run([sys.executable, "-c", ROUND, str(tree), str(count)], cwd=tree,
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"a round of {tree.name} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["sagas"] / statistics.fmean(figures["chains"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--sagas", type=int, default=400)
    args = parser.parse_args()
    from petstore.embedded import EmbeddedServers, free_port

    work = Path(tempfile.mkdtemp(prefix="petstore-compare-"))
    trees = [checkout(commit, work) for commit in args.commits]
    servers = EmbeddedServers(work / "servers", redis_port=free_port()).start()
    # One database a commit, on the same server: each migrates its own to its own schema.
    envs = {commit: {**os.environ, "REDIS_URL": servers.redis_url,
                     "DATABASE_URL": database_of(servers.database_url, f"compare_{i}")}
            for i, commit in enumerate(args.commits)}
    ratios: dict[str, list[float]] = {commit: [] for commit in args.commits}
    try:
        for i in range(args.rounds):
            turns = list(zip(args.commits, trees, strict=True))
            for commit, tree in turns if i % 2 == 0 else turns[::-1]:
                ratios[commit].append(one_round(tree, args.sagas, envs[commit]))
                print(f"round {i + 1}: {commit} {ratios[commit][-1]:.3f}", flush=True)
    finally:
        servers.stop()
        for tree in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        shutil.rmtree(work, ignore_errors=True)
    for commit, found in ratios.items():
        print(f"{commit}: saga / chain median {statistics.median(found):.3f} "
              f"(rounds {', '.join(f'{r:.3f}' for r in found)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
