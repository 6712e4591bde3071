"""Node.js Redis Cluster clients against a three-node pool: ioredis `Cluster`
and node-redis `createCluster` (tests/clients/node/cluster_client.js).

Each library connects to one node as a cluster client (CLUSTER SLOTS), then
over 10,000 keys spread over all slots: SET and GET each, MGET and MSET per
slot, GETs in one pipeline per node, a MULTI/EXEC on one hashtag, DEL per
slot and a check that every key is gone. Pools with pool-replicas 1 and 2
(one pool per replicas value, shared by the tests), and once more with
cluster-redirects yes on every node.

A cluster client sends each command to the node that owns its slot, so no
node sends a key of these commands elsewhere: INFO pool's
pool_keys_elsewhere and pool_commands_forwarded stay unchanged on every node
while the client runs (INFO itself does not move them).

node and the modules come from scripts/install-deps.sh --test (nodejs, npm)
and `npm ci` in tests/clients/node (scripts/test.sh runs it); either missing
is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import Pool, stop_all
from pool_util import SlotMap, key_slot
from util import err, ok, wait_until

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]

NODE_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "clients", "node"))
SCRIPT = os.path.join(NODE_DIR, "cluster_client.js")
MODULES = ("ioredis", "redis", "cluster-key-slot")
LIBS = ["ioredis", "node-redis"]
NKEYS = 10_000
NKEYS_REDIRECTS = 2_000  # the same again with MOVED on: fewer keys, still every node
COUNTERS = ("pool_keys_elsewhere", "pool_commands_forwarded")


def _node_bin() -> str:
    """node, with the modules installed (checked in each test: a failure, not an error or a skip)."""
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not installed: scripts/install-deps.sh --test installs nodejs and npm", pytrace=False)
    missing = [m for m in MODULES if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", m))]
    if missing:
        pytest.fail(f"node modules {missing} missing in {NODE_DIR}: run `npm ci` there "
                    "(scripts/test.sh does)", pytrace=False)
    return node


def _pool_info(node) -> dict:
    c = node.client()
    try:
        return c.info("pool")
    finally:
        c.close()


@pytest.fixture(scope="module", params=[1, 2], ids=lambda n: f"replicas{n}")
def pool(request):
    """A three-node pool with pool-replicas 1 or 2 (in sync), shared by the module's tests."""
    p = Pool(3, name=f"cluster-r{request.param}", pool_replicas=request.param)
    try:
        p.start()
        wait_until(lambda: all(_pool_info(n).get("pool_sync_state", "in_sync") == "in_sync" for n in p.nodes),
                   timeout=30, what="every node in sync")
    except Exception:
        p.stop()
        raise
    yield p
    died = p.unexpected_deaths()
    stop_all(p.nodes)
    assert not died, [f"{s.name} died (exit code {s.proc.returncode}), log: {s.log_path}" for s in died]


def _counters(pool) -> list:
    return [{k: _pool_info(n)[k] for k in COUNTERS} for n in pool.nodes]


def _run_client(lib, seed, nkeys: int = NKEYS) -> dict:
    """Runs cluster_client.js against `seed`; asserts every node's counters stayed put."""
    pool = seed.pool
    before = _counters(pool)
    argv = [_node_bin(), SCRIPT, lib, seed.host, str(seed.port), str(nkeys)]
    try:
        proc = subprocess.run(argv, cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{lib} client did not finish in 120s:\n{e.stdout}{e.stderr}", pytrace=False)
    assert proc.returncode == 0, f"{lib} client exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    for k in ("set", "get", "mget_keys", "pipeline_gets", "gone"):
        assert counts[k] == nkeys, counts
    assert counts["del"] == nkeys + counts["multi_exec_keys"], counts
    assert counts["nodes"] == 3 and counts["slots"] > nkeys // 2, counts
    after = _counters(pool)
    assert after == before, (f"a node sent keys or commands of the {lib} cluster client elsewhere; "
                             f"INFO pool per node before {before}, after {after}")
    return counts


@pytest.mark.parametrize("lib", LIBS)
def test_cluster_client(pool, lib):
    _run_client(lib, pool.nodes[1])


def _config_all(pool, value: str) -> None:
    for n in pool.nodes:
        with n.raw() as c:
            assert ok(c, "CONFIG", "SET", "cluster-redirects", value) == "OK"


@pytest.mark.parametrize("lib", LIBS)
def test_cluster_client_with_redirects(pool, lib):
    _node_bin()
    foreign = SlotMap.of(pool).key_on(2, "moved")  # owned by node 3
    with pool.nodes[0].raw() as c:
        # Without redirects node 1 serves it from node 3 (and counts the key) ...
        elsewhere = _pool_info(pool.nodes[0])["pool_keys_elsewhere"]
        assert ok(c, "GET", foreign) is None
        assert _pool_info(pool.nodes[0])["pool_keys_elsewhere"] == elsewhere + 1
        _config_all(pool, "yes")
        try:
            # ... with them it answers MOVED, which the client libraries follow.
            assert err(c, "GET", foreign) == f"MOVED {key_slot(foreign)} {pool.nodes[2].addr}"
            _run_client(lib, pool.nodes[0], NKEYS_REDIRECTS)
        finally:
            _config_all(pool, "no")
