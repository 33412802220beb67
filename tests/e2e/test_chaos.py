"""A short run of the chaos suite: the real system under load while workers are killed,
Redis restarts and stops, PostgreSQL restarts and crashes, and every message arrives twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from common.settings import PROJECT_ROOT
from petstore.embedded import RABBITMQ_URL

pytestmark = [pytest.mark.slow, pytest.mark.broker]

SEED = 1  # the load's and the fault schedule's choices; the timing still varies
INVARIANTS = ("sagas still running", "2xx answers whose work is missing",
              "pets in two live orders", "sold pets sold again", "events lost",
              "duplicates applied twice", "answers 500", "inventory - pets, available",
              "inventory - pets, pending", "inventory - pets, sold")


def test_the_invariants_hold_under_chaos(tmp_path):
    figures = tmp_path / "figures.json"
    # The run's broker: on RabbitMQ, the suite restarts it as well.
    broker = (["--broker", "rabbitmq", "--rabbitmq-url",
               os.environ.get("PETSTORE_TEST_RABBITMQ_URL", RABBITMQ_URL)]
              if os.environ.get("PETSTORE_TEST_BROKER") == "rabbitmq" else [])
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "chaos.py"), "--duration", "45",
         "--redis-outage", "10", "--settle", "120", "--seed", str(SEED), *broker,
         "--json", str(figures)],
        capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert f"seed {SEED}" in run.stdout
    results = json.loads(figures.read_text())
    assert results["seed"] == SEED
    assert {name: results[name] for name in INVARIANTS} == dict.fromkeys(INVARIANTS, 0)
    # Work happened, and the faults struck: orders went through and orders were refused or
    # undone (races for a pet, injected errors), and killed workers were restarted.
    assert results["sagas completed"] >= 1
    assert results["sagas refused"] + results["sagas compensated"] >= 1
    assert results["worker restarts"] >= 1
