"""A history check under a nemesis (issue 13): three nodes, pool-replicas 2.

Three clients write (MSET) and read (MGET, MEXISTS) their own keys through
the nodes while a seeded nemesis, round after round, picks a node and either
kills it (kill -9) and restarts it at once, kills it and restarts it once
the others count it down, or pauses it (SIGSTOP past pool-down-after-ms)
and resumes it; where network namespaces can be made (root), a second run
puts each node in its own namespace and also partitions a node from its
peers while clients still reach it (blackhole routes), or cuts its link; it waits for the pool to be whole and in sync before the
next round (a pool of two copies survives one fault at a time). At the
end:
- every key holds its last acknowledged write, or a later write whose
  outcome the client could not know (it failed), through every node;
- no read ever returned a value older than one already acknowledged;
- POOL COPIES shows, for a sample of keys, every copy in sync and holding
  the same value.

KVPOOL_NEMESIS_SEED picks the seed (random otherwise; printed, and named in
every failure), KVPOOL_NEMESIS_ROUNDS the rounds (4).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from conftest import Pool
from netns_pool import NsPool, can_netns
from pool_util import copies, kvhash64
from replica_load import LoadClient, verify_acked
from util import wait_until

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]

OPTS = {"pool-replicas": 2, "pool-down-after-ms": 1000, "pool-heartbeat-ms": 100}
SEED = int(os.environ.get("KVPOOL_NEMESIS_SEED") or random.randrange(1 << 30))
ROUNDS = int(os.environ.get("KVPOOL_NEMESIS_ROUNDS") or 4)


def _all_in_sync(p: Pool) -> bool:
    try:
        return all(p.nodes[i].client().info("pool").get("pool_sync_state") == "in_sync"
                   for i in range(p.n))
    except Exception:
        return False


def _heal(p: Pool) -> None:
    wait_until(lambda: _all_in_sync(p), timeout=90, what=f"all in sync (seed {SEED})")
    p.wait_all_up(timeout=60)


KINDS = ["kill-restart", "kill-wait-restart", "pause"]
PARTITIONS = ["isolate", "cut"]


def _fault(p: Pool, rnd: random.Random, log: list, kind: str) -> None:
    node = rnd.randrange(p.n)
    t0 = time.monotonic()
    if kind == "pause":
        os.kill(p.nodes[node].proc.pid, signal.SIGSTOP)
        time.sleep(rnd.uniform(1.5, 3.0))
        os.kill(p.nodes[node].proc.pid, signal.SIGCONT)
    elif kind in PARTITIONS:
        # Past pool-down-after-ms: the other two count it down and go on
        # without it; it sees itself in a minority and serves nothing.
        (p.isolate if kind == "isolate" else p.cut)(node)
        time.sleep(rnd.uniform(1.5, 3.0))
        (p.rejoin if kind == "isolate" else p.mend)(node)
    else:
        p.kill(node)
        if kind == "kill-wait-restart":
            p.wait_state(node, "down", observers=[n for n in range(p.n) if n != node], timeout=15)
            time.sleep(rnd.uniform(0, 1.5))
        p.nodes[node].restart_same_port()
    _heal(p)
    log.append(f"{kind} node {node + 1} at t={t0:.1f} ({time.monotonic() - t0:.1f}s to heal)")
    time.sleep(rnd.uniform(0.5, 1.5))


def test_nemesis_history():
    _history(Pool(3, name="nemesis", **OPTS), KINDS)


def test_nemesis_history_with_partitions():
    """The same, the nodes in network namespaces: the nemesis also
    partitions a node from its peers (clients still reach it) or cuts its
    link, and the first fault is always a partition."""
    if not can_netns():
        pytest.skip("needs root, ip(8) and permission to create network namespaces")
    _history(NsPool(3, name="nempart", **OPTS), KINDS + PARTITIONS, first="isolate")


def _history(p: Pool, kinds: list, first: str = "") -> None:
    rnd = random.Random(SEED)
    print(f"nemesis seed {SEED} ({ROUNDS} rounds): KVPOOL_NEMESIS_SEED={SEED} to replay")
    log: list = []
    try:
        p.start()
        _heal(p)
        stop = threading.Event()
        clients = [LoadClient(p, cid, 1500, stop, seed=SEED, prefix=f"nem{SEED}") for cid in range(3)]
        for t in clients:
            t.start()
        time.sleep(1.5)
        for r in range(ROUNDS):
            _fault(p, rnd, log, first if r == 0 and first else rnd.choice(kinds))
        stop.set()
        for t in clients:
            t.join(30)
        assert not any(t.is_alive() for t in clients), f"a client hung (seed {SEED}, {log})"
        ops = sum(t.ops for t in clients)
        errors = sum(len(t.errors) for t in clients)
        print(f"seed {SEED}: {ops} requests, {errors} errors; {'; '.join(log)}")

        stale = [s for t in clients for s in t.stale]
        if stale:
            _heal(p)
            where = {s[1]: copies(p.nodes[0].client(), s[1]) for s in stale[:5]}
            raise AssertionError(f"seed {SEED}: {len(stale)} stale reads (t, key, seq read, seq acked, "
                                 f"node read through) {stale[:5]}; their copies {where}; {log}")
        _heal(p)
        conns = [n.client() for n in p.nodes]
        for c in conns:
            try:
                verify_acked(clients, [c])
            except AssertionError as e:
                raise AssertionError(f"seed {SEED}, {log}: {e}") from None
        # Every copy of a sample of keys in sync and equal.
        sample = rnd.sample([k for t in clients for k in t.keys], 150)
        differ = []
        for n, k in enumerate(sample):
            got = copies(conns[n % 3], k)
            value = conns[0].get(k)
            want = None if value is None else kvhash64(value)
            # Ordered writes: both copies also carry the primary's version.
            if (len(got) != 2 or any(e[1] != "in-sync" or e[3] != want for e in got)
                    or got[0][2] != got[1][2]):
                differ.append((k, got, want))
        assert not differ, f"seed {SEED}: copies not in sync or not equal, e.g. {differ[:3]}; {log}"
    finally:
        p.stop()
