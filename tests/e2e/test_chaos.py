"""A short run of the chaos suite: the real system under load while workers are killed,
Redis restarts and stops, PostgreSQL restarts and crashes, and every message arrives twice."""

from __future__ import annotations

import json
import subprocess
import sys

from petstore.settings import PROJECT_ROOT


def test_the_invariants_hold_under_chaos(tmp_path):
    figures = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "chaos.py"), "--duration", "45",
         "--redis-outage", "10", "--settle", "120", "--json", str(figures)],
        capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    results = json.loads(figures.read_text())
    assert results["sagas started"] > 50
    assert results["sagas completed"] > 0 and results["sagas compensated"] > 0
    assert results["worker restarts"] >= 1
    for invariant in ("sagas still running", "2xx answers whose work is missing",
                      "pets in two live orders", "sold pets sold again", "events lost",
                      "duplicates applied twice", "answers 500"):
        assert results[invariant] == 0, invariant
