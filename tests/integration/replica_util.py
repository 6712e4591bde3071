"""What the replica fault tests (test_replica_faults.py,
test_replica_writers.py) share: the pool's options, a fresh pool of three
per test, reads of everything acknowledged and POOL COPIES checks."""

from __future__ import annotations

import pytest

from conftest import Pool, stop_all
from util import wait_until

OPTS = {"pool-replicas": 2, "pool-down-after-ms": 1000, "pool-heartbeat-ms": 100}
BATCH = 1000


def info_pool(p: Pool, i: int) -> dict:
    return p.nodes[i].client().info("pool")


def in_sync(p: Pool, i: int) -> bool:
    return info_pool(p, i).get("pool_sync_state") == "in_sync"


@pytest.fixture
def pool():
    p = Pool(3, name="faults", **OPTS)
    try:
        p.start()
        wait_until(lambda: all(in_sync(p, i) for i in range(3)), timeout=60, what="all in sync")
    except Exception:
        p.stop()
        raise
    yield p
    stop_all(p.nodes)


def read_all(clients, expected: dict) -> list:
    keys = list(expected)
    lost = []
    for n in range(0, len(keys), BATCH):
        part = keys[n:n + BATCH]
        got = clients[(n // BATCH) % len(clients)].mget(part)
        lost += [k for k, v in zip(part, got) if v is None or v.decode() != expected[k]]
    return lost


def forked(c, keys) -> list:
    """Keys whose copies are not both in sync with one value and one version."""
    pipe = c.pipeline(transaction=False)
    for k in keys:
        pipe.execute_command("POOL", "COPIES", k)
    bad = []
    for k, got in zip(keys, pipe.execute()):
        got = [[f.decode() if isinstance(f, bytes) else f for f in e] for e in got]
        if (len(got) != 2 or any(e[1] != "in-sync" or e[2] is None for e in got)
                or len({(e[2], e[3]) for e in got}) != 1):
            bad.append((k, got))
    return bad
