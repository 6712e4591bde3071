"""The LLM workload benchmark (bench/llm_workload.py) in a short --verify
run: every page read back equals what was written, against one node and a
three-node pool. Its speed is measured only by the benchmark itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import KVPOOL_BINARY

pytestmark = pytest.mark.kvpool_only

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "llm_workload.py")


@pytest.mark.parametrize("nodes", [1, 3])
def test_workload_verifies(nodes):
    assert KVPOOL_BINARY, "KVPOOL_SERVER must point at kvpool-server"
    out = subprocess.run(
        [sys.executable, SCRIPT, "--server", KVPOOL_BINARY, "--pool", str(nodes), "--verify",
         "--prefixes", "3", "--pages", "24", "--page-size", str(64 * 1024), "--hit-ratio", "0.5",
         "--concurrency", "2", "--requests", "4", "--maxmemory", "256mb"],
        capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "| kvpool |" in out.stdout
    row = [l for l in out.stdout.splitlines() if l.startswith("| kvpool |")][0]
    assert row.rstrip().endswith("| 0 |"), row  # the errors column
