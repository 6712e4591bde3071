"""A value of hundreds of MB in a replicated pool (issue 13, scenario 4).

A plain SET of a 300 MB value through a node that holds no copy of its key
(pool-replicas 2 on three nodes, maxmemory 1gb each), while other clients
read small keys through every node:

- the SET answers OK, and GET and MGET of the key through every node return
  the whole value (a large value moves between nodes in steps of 4 MiB, a
  few in flight: never as one forwarded command or one reply frame);
- the small reads meanwhile never miss a key that is there;
- no node is counted down or told to catch up: every node's heartbeats and
  small calls keep being answered while the value moves;
- no event loop of any node is kept busy long by one huge copy: INFO's
  io_loop_max_busy_ms (the part of a 10 ms timer's delay its loop's thread
  spent running) stays near 10 ms, far below the whole transfer's time.
  Before the steps, the node that took the client's SET was late by 0.9 to
  1.2 s; with reads and writes of 4 MiB per turn, 20 to 50 ms running.
  A PING through each node is answered meanwhile (its round trip, measured
  here, includes this test process's own work on 300 MB replies).

A sanitized server is several times slower: it moves 48 MB instead.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from conftest import SERVER_BINARY, Pool, start_server, stop_all
from hardening_util import is_sanitized
from pool_util import SlotMap, copies
from util import wait_until

# serial: io_loop_max_busy_ms and PING times are bounded.
pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool, pytest.mark.serial]

SANITIZED = is_sanitized(SERVER_BINARY)
MB = 1_000_000
SIZE = (48 if SANITIZED else 300) * MB
SMALL_KEYS = 500
# A loop's own work (io_loop_max_busy_ms: its thread's CPU time within the
# delay) is a few reads and copies of at most 1 MiB, and one step's (4 MiB)
# copy: 10 to 21 ms measured, never the whole value's. The wall-clock
# delay (io_loop_max_lag_ms) adds time waiting for a core: on two cores
# shared by three nodes, this test and a neighbour's load, 500 ms was seen
# with 22 ms running, so it is bounded only against a stall.
MAX_BUSY_MS = 1000 if SANITIZED else 100
MAX_LAG_MS = 3000 if SANITIZED else 1000
# Before the steps, a PING waited 7 to 11 s.
MAX_PING_S = 10.0 if SANITIZED else 5.0


def _info(node) -> dict:
    return node.client(socket_timeout=30).info("pool")


@pytest.fixture
def pool():
    p = Pool(3, name="large", **{"pool-replicas": 2, "pool-down-after-ms": 3000,
                                 "pool-heartbeat-ms": 100, "maxmemory": "1gb"})
    try:
        p.start()
        wait_until(lambda: all(_info(n).get("pool_sync_state") == "in_sync" for n in p.nodes),
                   timeout=60, what="all in sync")
    except Exception:
        p.stop()
        raise
    yield p
    stop_all(p.nodes)


class Watchers:
    """Per node: a reader of small keys (MGET, counts the misses) and a
    pinger (keeps the slowest round trip)."""

    def __init__(self, pool: Pool, small: dict):
        self.stop = threading.Event()
        self.misses = [0] * len(pool.nodes)
        self.reads = [0] * len(pool.nodes)
        self.slowest = [0.0] * len(pool.nodes)
        self.errors: list = []
        self.threads = []
        keys = list(small)
        for i, node in enumerate(pool.nodes):
            self.threads.append(threading.Thread(target=self._read, args=(i, node, keys, small), daemon=True))
            self.threads.append(threading.Thread(target=self._ping, args=(i, node), daemon=True))
        for t in self.threads:
            t.start()

    def _read(self, i, node, keys, small):
        try:
            c = node.client(socket_timeout=60)
            while not self.stop.is_set():
                got = c.mget(keys)
                self.reads[i] += 1
                self.misses[i] += sum(1 for k, v in zip(keys, got) if v != small[k])
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(f"reader {i}: {e!r}")

    def _ping(self, i, node):
        try:
            c = node.client(socket_timeout=60)
            while not self.stop.is_set():
                t0 = time.monotonic()
                assert c.ping() is True
                self.slowest[i] = max(self.slowest[i], time.monotonic() - t0)
                time.sleep(0.02)
        except Exception as e:  # noqa: BLE001
            self.errors.append(f"pinger {i}: {e!r}")

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(120)


def test_large_value_through_a_node_without_a_copy(pool):
    p = pool
    c = [n.client(socket_timeout=120) for n in p.nodes]
    small = {f"small:{i}": f"v{i}".encode() for i in range(SMALL_KEYS)}
    assert c[0].mset(small)
    # A key whose copies are nodes 2 and 3 (primary 2, its replica 3).
    key = SlotMap.of(p).key_on(1, prefix="big")
    before = [_info(n) for n in p.nodes]
    for n in p.nodes:
        assert n.client().config_resetstat()
    value = os.urandom(1 << 20) * (SIZE >> 20) + os.urandom(SIZE % (1 << 20))
    w = Watchers(p, small)
    try:
        t0 = time.monotonic()
        assert c[0].set(key, value) is True
        took_set = time.monotonic() - t0
        took_get = []
        for i in range(3):
            t0 = time.monotonic()
            got = c[i].get(key)
            took_get.append(time.monotonic() - t0)
            assert got is not None and len(got) == len(value), f"GET through node {i + 1}"
            assert got == value, f"GET through node {i + 1} returned other bytes"
            del got
        got = c[0].mget([key, "small:0"])
        assert got[0] == value and got[1] == b"v0"
        del got
    finally:
        w.finish()
    stats = [n.client().info("stats") for n in p.nodes]
    lag = [st["io_loop_max_lag_ms"] for st in stats]
    busy = [st["io_loop_max_busy_ms"] for st in stats]
    print(f"loop lag ms {lag} (running {busy}); SET {SIZE // MB} MB {took_set:.2f}s, GET " + ", ".join(f"{t:.2f}s" for t in took_get) +
          f"; slowest PING " + ", ".join(f"{s:.2f}s" for s in w.slowest) +
          f"; small MGETs {w.reads}")
    assert not w.errors, w.errors
    assert w.misses == [0, 0, 0], f"small keys read as missing while the value moved: {w.misses}"
    assert all(r > 0 for r in w.reads)
    assert max(w.slowest) < MAX_PING_S, f"a PING waited {max(w.slowest):.2f}s"
    assert max(busy) < MAX_BUSY_MS, f"an event loop ran one turn for {max(busy)} ms: {busy}"
    assert max(lag) < MAX_LAG_MS, f"an event loop was late by {max(lag)} ms: {lag}"
    after = [_info(n) for n in p.nodes]
    for i in range(3):
        assert after[i]["pool_nodes_up"] == 3
        assert after[i]["pool_sync_state"] == "in_sync"
        for field in ("pool_sync_attempts", "pool_catch_up_sent", "pool_catch_up_received"):
            assert after[i][field] == before[i][field], f"node {i + 1} {field}: {before[i][field]} -> {after[i][field]}"
    # Its two copies, on nodes 2 and 3, are in sync with one version and one
    # digest (the bytes were compared above through every node).
    got = copies(c[0], key)
    assert [e[0] for e in got] == [p.nodes[1].addr, p.nodes[2].addr], got
    assert all(e[1] == "in-sync" for e in got), got
    assert got[0][2:] == got[1][2:], got


def test_rename_of_a_large_value_across_nodes(pool):
    """RENAME moves a large value between nodes as MGET reads it and MSET
    stores it, in steps: before, as one forwarded GET and SET, 300 MB kept
    each loop on its way busy for 1.4 to 1.7 s. Its TTL goes with it, and
    RENAMENX onto a key that exists leaves both keys as they were."""
    p = pool
    c = [n.client(socket_timeout=120) for n in p.nodes]
    slots = SlotMap.of(p)
    src = slots.key_on(1, prefix="big")  # copies on nodes 2 and 3
    dst = slots.key_on(0, prefix="moved")  # copies on nodes 1 and 2
    taken = slots.key_on(2, prefix="taken")  # copies on nodes 3 and 1
    value = os.urandom(1 << 20) * (SIZE >> 20) + os.urandom(SIZE % (1 << 20))
    assert c[0].set(src, value) is True
    assert c[0].pexpire(src, 600_000) is True
    assert c[0].set(taken, b"small") is True
    for n in p.nodes:
        assert n.client().config_resetstat()
    t0 = time.monotonic()
    assert c[2].rename(src, dst) is True
    took = time.monotonic() - t0
    busy = [n.client().info("stats")["io_loop_max_busy_ms"] for n in p.nodes]
    print(f"RENAME of {SIZE // MB} MB across nodes {took:.2f}s, loops running {busy} ms")
    assert max(busy) < MAX_BUSY_MS, f"an event loop ran one turn for {max(busy)} ms: {busy}"
    assert c[1].exists(src) == 0
    assert 0 < c[1].pttl(dst) <= 600_000
    for i in (0, 2):
        got = c[i].get(dst)
        assert got is not None and len(got) == len(value) and got == value, f"GET through node {i + 1}"
        del got
    got = copies(c[0], dst)
    assert all(e[1] == "in-sync" for e in got) and got[0][2:] == got[1][2:], got
    # NX onto a key that exists: refused, nothing moved.
    assert c[2].renamenx(dst, taken) is False
    assert c[0].get(taken) == b"small"
    assert c[0].strlen(dst) == len(value)


def test_large_values_on_a_single_node_are_stored_in_steps():
    """A single node copies a huge SET or MSET into its store a step per
    loop turn (1 MiB), published at once: before, a 300 MB SET held the loop
    for a second (the kernel zeroing the pages the copy faulted in). A
    pipeline behind it gets every reply, in order, and sees its write."""
    node = start_server("--maxmemory", "1gb", name="large-single", pool=False)
    try:
        c = node.client(socket_timeout=60)
        big = bytes(range(256)) * (SIZE // 256)
        assert c.set("one:big", big)
        # The huge value last: a request whose input buffer must grow past a
        # huge argument already read copies it (a known limit, see RESULTS).
        assert c.mset({"one:c": b"small", "one:a": b"a" * 100, "one:b": big[:SIZE // 2]})
        pipe = c.pipeline(transaction=False)
        pipe.set("one:d", big[:5 * MB]).get("one:d").append("one:d", b"!").strlen("one:d")
        assert pipe.execute() == [True, big[:5 * MB], 5 * MB + 1, 5 * MB + 1]
        assert c.get("one:big") == big
        assert c.get("one:b") == big[:SIZE // 2] and c.get("one:c") == b"small"
        busy = c.info("stats")["io_loop_max_busy_ms"]
        print(f"single node, SET and MSET of {SIZE // MB} MB: loops running {busy} ms")
        assert busy < MAX_BUSY_MS, f"an event loop ran one turn for {busy} ms"
    finally:
        stop_all([node])
