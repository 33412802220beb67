"""The README's walkthrough runs as written on a freshly started system.

The `sh` blocks under "## Walkthrough" run with bash against `petstore dev` started as
`make run` starts it, with embedded servers in an empty data folder; each block's output
must be what the README's next block shows (saga ids aside). The fault subsection runs
against a second start on the same data, with `PETSTORE_FAULTS` as the README says.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.settings import PROJECT_ROOT
from petstore.embedded import free_port
from tests.support.processes import stop_group

pytestmark = pytest.mark.slow  # starts the whole system, twice
README = PROJECT_ROOT / "README.md"
FAULT_HEADING = "### An order undone by a fault"
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.M | re.S)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MARK = "@@walkthrough-block@@"
QUEUES = ("pets", "photos", "orders", "inventory", "sagas")


@dataclass
class Block:
    script: str
    shown: str | None  # the output the README shows right after it, if any


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    level = heading.split()[0]
    end = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading) + 2:], re.M)
    return text[start: start + len(heading) + 2 + end.start()] if end else text[start:]


def _blocks(section: str) -> list[Block]:
    fences = list(FENCE.finditer(section))
    blocks = []
    for i, fence in enumerate(fences):
        if fence.group(1) != "sh":
            continue
        after = fences[i + 1] if i + 1 < len(fences) else None
        shown = after.group(2) if after and after.group(1) != "sh" else None
        blocks.append(Block(fence.group(2), shown))
    return blocks


@pytest.fixture(scope="module")
def walkthrough() -> dict:
    text = README.read_text()
    section = _section(text, "## Walkthrough")
    fault = _section(section, FAULT_HEADING)
    faults = re.search(r'PETSTORE_FAULTS="([^"]+)" make run', fault)
    assert faults, "the fault subsection names the PETSTORE_FAULTS it starts with"
    main = _blocks(section[: section.index(FAULT_HEADING)])
    assert len(main) >= 4
    return {"main": main, "fault": _blocks(fault), "faults": faults.group(1)}


def _normal(output: str) -> list[str]:
    lines = [UUID.sub("<uuid>", line.rstrip()) for line in output.strip().splitlines()]
    return [line for line in lines if line]


def _ready(base: str, log: Path) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/store/inventory", timeout=5) as answer:
            if answer.status != 200:
                return False
    except OSError:
        return False
    # The walkthrough's first order waits 5 s for its saga: every worker must be up.
    started = set(re.findall(r"(\w+)@\S+ ready\.", log.read_text(errors="replace")))
    return started >= set(QUEUES)


@contextlib.contextmanager
def started_system(data_dir: Path, log: Path, faults: str = "") -> Iterator[dict]:
    """`petstore dev` as `make run` starts it: no DATABASE_URL / REDIS_URL, so it starts
    its own embedded servers in `data_dir`."""
    ports = {"api": free_port(), "flower": free_port(), "redis": free_port()}
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "REDIS_URL") and not name.startswith("PETSTORE_")}
    env.update(PETSTORE_DATA_DIR=str(data_dir), PETSTORE_REDIS_PORT=str(ports["redis"]),
               PORT=str(ports["api"]), FLOWER_PORT=str(ports["flower"]),
               PETSTORE_OWNER="owner:owner")
    if faults:
        env["PETSTORE_FAULTS"] = faults
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "petstore", "dev"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                   start_new_session=True)
    try:
        base = f"http://127.0.0.1:{ports['api']}/v2"
        deadline = time.monotonic() + 90
        while not _ready(base, log):
            assert process.poll() is None, f"petstore dev exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not up in 90 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield ports
    finally:
        stop_group(process, grace=60)


def run_blocks(blocks: list[Block], ports: dict, cwd: Path, prelude: str = "") -> list[str]:
    """Run the blocks in one bash, `set -euo pipefail`; each block's output, in order."""
    def local(script: str) -> str:
        return (script.replace("127.0.0.1:8000", f"127.0.0.1:{ports['api']}")
                .replace("127.0.0.1:5555", f"127.0.0.1:{ports['flower']}"))

    parts = ["set -euo pipefail", local(prelude)]
    for block in blocks:
        parts += [f"printf '\\n{MARK}\\n'", local(block.script)]
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(["bash", "-c", "\n".join(parts)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"the walkthrough stopped (exit {done.returncode})\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done.stdout.split(f"{MARK}\n")[1:]


def check_outputs(blocks: list[Block], outputs: list[str]) -> None:
    assert len(outputs) == len(blocks)
    for block, output in zip(blocks, outputs, strict=True):
        if block.shown is not None:
            assert _normal(output) == _normal(block.shown), (
                f"the block\n{block.script}\nprinted\n{output}\nwhere the README shows\n"
                f"{block.shown}")


def _stop_leftover_postgres(data_dir: Path) -> None:
    """A safety net: the embedded PostgreSQL of `data_dir`, if it outlived its run."""
    try:
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # a fast shutdown
        for _ in range(60):
            os.kill(pid, 0)
            time.sleep(0.5)


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp folder: another pytest session on the machine makes that
    # folder private again, and the embedded PostgreSQL (run as its own user when the
    # tests run as root) could then no longer be stopped.
    folder = Path(tempfile.mkdtemp(prefix="petstore-walkthrough-"))
    yield folder / "data"
    _stop_leftover_postgres(folder / "data")
    shutil.rmtree(folder, ignore_errors=True)


_passed: set[str] = set()


def test_the_walkthrough_runs_as_written_on_a_fresh_system(walkthrough, data_dir, tmp_path):
    blocks = walkthrough["main"]
    with started_system(data_dir, tmp_path / "system.log") as ports:
        outputs = run_blocks(blocks, ports, tmp_path)
    joined = "".join(outputs)
    assert "create_order completed" in joined
    assert "\ndelivered\n" in joined
    assert '"status":"delivered"' in joined
    check_outputs(blocks, outputs)
    _passed.add("main")


def test_the_fault_walkthrough_undoes_the_order(walkthrough, data_dir, tmp_path):
    if "main" not in _passed:
        pytest.skip("runs on the data the main walkthrough leaves (alice signed up)")
    setup = walkthrough["main"][0].script  # API, field and steps, as the README says
    blocks = walkthrough["fault"]
    with started_system(data_dir, tmp_path / "system.log",
                        faults=walkthrough["faults"]) as ports:
        outputs = run_blocks(blocks, ports, tmp_path, prelude=setup)
    joined = "".join(outputs)
    status_lines = [line for line in joined.splitlines() if line.startswith("HTTP/")]
    assert status_lines and " 503 " in status_lines[0], joined
    assert '"sagaStatus":"compensated"' in joined
    assert "create_order compensated" in joined
    assert joined.rstrip().endswith("cancelled\navailable"), joined
    check_outputs(blocks, outputs)
