"""Whole commands on a value of hundreds of MB through a node that holds no
copy of its key (issue 13, "Large values never stall a node").

GET and SET of a large value move between nodes in steps
(test_large_values.py). Commands the pool runs whole on the key's primary
(GETEX, GETSET, SET ... GET, GETDEL, GETRANGE: kOpOrderedCommand with
replicas, kOpCommand without) move them in steps too: a large argument
goes ahead in chunks (storage/pool/held_args.cc), a large reply stays
pinned on the primary and is fetched in chunks (held_reply.cc).

Here, on three nodes with pool-replicas 2 and one event loop each
(io-threads 1, so a loop busy with the big command is the one the small
reads need), one client runs them through node 1, which holds no copy of
the key, while a second client's loop of small MGETs goes through node 1
as well:

- every command answers right: the value read back whole, GETDEL deletes
  the key on both copies (POOL COPIES); SET ... GET stores the new value
  on both copies with one digest (the second test);
- no small MGET waits long (MAX_WAIT_S; SET ... GET: MAX_WAIT_SET_S) and
  none misses a key;
- no node is counted down or told to catch up meanwhile.

A sanitized server is several times slower: it moves 48 MB instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import SERVER_BINARY, Pool, stop_all
from hardening_util import is_sanitized
from pool_util import SlotMap, copies
from util import wait_until

# serial: the small reads' waits are bounded.
pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool, pytest.mark.serial]

SANITIZED = is_sanitized(SERVER_BINARY)
MB = 1_000_000
SIZE = (48 if SANITIZED else 200) * MB
SMALL_KEYS = 60
# Before the steps, GETEX failed: the primary's loop copied the value in
# one turn for 3.1 s (780 MB of fresh pages), past pool-timeout-ms ("no
# reply from peer"), and small reads through node 1 failed with it. With
# the reply held there and fetched in chunks of 4 MiB: small MGETs waited
# 0.07 to 0.46 s, loops ran at most 40 ms per turn.
MAX_WAIT_S = 3.0 if SANITIZED else 1.0
# SET ... GET still stores its 200 MB on the primary in one turn (the
# store's copy into segment pages it has not touched yet: 0.5 s of page
# faults on this test's VM); everything else moves in steps. Measured
# 1.0 s; before the steps, 3.5 to 6.1 s.
MAX_WAIT_SET_S = 6.0 if SANITIZED else 2.5


def _info(node, section="pool") -> dict:
    return node.client(socket_timeout=30).info(section)


@pytest.fixture
def pool():
    p = Pool(3, name="largecmd", **{"pool-replicas": 2, "pool-down-after-ms": 3000,
                                    "pool-heartbeat-ms": 100, "maxmemory": "2gb",
                                    "io-threads": 1})
    try:
        p.start()
        wait_until(lambda: all(_info(n).get("pool_sync_state") == "in_sync" for n in p.nodes),
                   timeout=60, what="all in sync")
    except Exception:
        p.stop()
        raise
    yield p
    stop_all(p.nodes)


# The reader runs in a process of its own: in this one, redis-py's work on
# a 200 MB reply would hold the GIL and delay its reads.
READER = r"""
import os, sys, time, redis
host, port, out, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
keys = sys.argv[5:]
want = [("v-" + k).encode() for k in keys]
c = redis.Redis(host=host, port=port, socket_timeout=60)
with open(out, "w", buffering=1) as f:
    while not os.path.exists(stop):
        t0 = time.monotonic()
        got = c.mget(keys)
        f.write(f"{t0} {time.monotonic() - t0} {sum(1 for g, w in zip(got, want) if g != w)}\n")
        time.sleep(0.005)
    f.write("end\n")
"""


class SmallReader:
    """A loop of MGETs of small keys through one node, in another process:
    each read's start (time.monotonic, the same clock here), wait and
    misses."""

    def __init__(self, node, small: dict, tmp):
        self.out = str(tmp / "reads.txt")
        self.stop = str(tmp / "stop")
        host, port = node.addr.rsplit(":", 1)
        self.proc = subprocess.Popen([sys.executable, "-c", READER, host, port, self.out, self.stop, *small])
        wait_until(lambda: os.path.exists(self.out) and os.path.getsize(self.out) > 0, timeout=30,
                   what="the reader started")

    def finish(self) -> list:
        """[(start, wait, misses)] of every read."""
        open(self.stop, "w").close()
        assert self.proc.wait(120) == 0
        with open(self.out) as f:
            lines = f.read().split("\n")
        assert "end" in lines, "the reader stopped early"
        return [tuple(map(float, ln.split())) for ln in lines if ln and ln != "end"]


def _value(seed: int) -> bytes:
    block = os.urandom(1 << 20)
    return block * (SIZE >> 20) + bytes([seed]) * (SIZE % (1 << 20))


def test_whole_commands_on_a_large_value_through_a_node_without_a_copy(pool, tmp_path):
    p = pool
    c = [n.client(socket_timeout=120) for n in p.nodes]
    slots = SlotMap.of(p)
    small = {}
    for node in range(3):
        for k in slots.keys_on(node, SMALL_KEYS // 3, prefix=f"small{node}"):
            small[k] = f"v-{k}".encode()
    assert c[0].mset(small)
    # Copies on nodes 2 (primary) and 3; node 1 holds none.
    key = slots.key_on(1, prefix="big")
    first, second = _value(1), _value(2)
    assert c[1].set(key, first) is True
    before = [_info(n) for n in p.nodes]
    for n in p.nodes:
        assert n.client().config_resetstat()
    reader = SmallReader(p.nodes[0], small, tmp_path)
    spans, busy = {}, {}

    def run(name, fn):
        for n in p.nodes:
            assert n.client().config_resetstat()
        t0 = time.monotonic()
        out = fn()
        spans[name] = (t0, time.monotonic())
        busy[name] = [_info(n, "stats")["io_loop_max_busy_ms"] for n in p.nodes]
        return out

    try:
        time.sleep(0.3)
        # Large replies: the whole value comes back from the primary.
        got = run("GETEX", lambda: c[0].getex(key, px=600_000))
        assert got == first, "GETEX through node 1"
        del got
        got = run("GETRANGE", lambda: c[0].getrange(key, 0, -1))
        assert got == first, "GETRANGE through node 1"
        del got
        # A large argument and a large reply: the old value back, the new
        # one stored on both copies.
        got = run("SET GET", lambda: c[0].set(key, second, get=True))
        assert got == first, "SET ... GET through node 1"
        del got
        assert c[0].strlen(key) == len(second)
        got = run("GETSET", lambda: c[0].getset(key, b"small"))
        assert got == second, "GETSET through node 1"
        del got
        assert c[0].get(key) == b"small"
        assert c[1].set(key, first) is True
        got = run("GETDEL", lambda: c[0].getdel(key))
        assert got == first, "GETDEL through node 1"
        del got
        time.sleep(0.2)
    finally:
        reads = reader.finish()
    # A read's wait counts for a command if the read overlapped it.
    waits = {name: max([w for t, w, _ in reads if t < end and t + w > begin], default=0.0)
             for name, (begin, end) in spans.items()}
    print(f"{SIZE // MB} MB through node 1: " +
          "; ".join(f"{k} {spans[k][1] - spans[k][0]:.2f}s, small MGET waited up to {waits[k]:.3f}s, "
                    f"loops ran up to {busy[k]} ms" for k in spans) + f"; {len(reads)} MGETs")
    assert all(m == 0 for _, _, m in reads), f"small keys read as missing: {sum(m for _, _, m in reads)}"
    assert all(any(begin <= t <= end for t, _, _ in reads) for begin, end in spans.values()), \
        "a command ran with no small read beside it"
    slow = {k: w for k, w in waits.items() if w >= (MAX_WAIT_SET_S if k == "SET GET" else MAX_WAIT_S)}
    assert not slow, f"a small MGET through node 1 waited {slow} (bounds {MAX_WAIT_S}s, SET GET {MAX_WAIT_SET_S}s)"
    # GETDEL deleted both copies.
    assert c[0].exists(key) == 0 and c[1].exists(key) == 0 and c[2].exists(key) == 0
    got = copies(c[0], key)
    assert [e[0] for e in got] == [p.nodes[1].addr, p.nodes[2].addr], got
    assert all(e[1] == "in-sync" and e[2] is None and e[3] is None for e in got), got
    after = [_info(n) for n in p.nodes]
    for i in range(3):
        assert after[i]["pool_nodes_up"] == 3, f"node {i + 1}: {after[i]['pool_nodes_up']} up"
        assert after[i]["pool_sync_state"] == "in_sync"
        for field in ("pool_sync_attempts", "pool_catch_up_sent", "pool_catch_up_received"):
            assert after[i][field] == before[i][field], f"node {i + 1} {field}: {before[i][field]} -> {after[i][field]}"


def test_set_get_stores_the_large_value_on_both_copies(pool):
    """SET ... GET of a large value through node 1 leaves one version and
    one digest on both copies, the value's."""
    p = pool
    c = [n.client(socket_timeout=120) for n in p.nodes]
    key = SlotMap.of(p).key_on(1, prefix="big")
    value = _value(3)
    assert c[0].set(key, value, get=True) is None
    got = copies(c[0], key)
    assert all(e[1] == "in-sync" for e in got) and got[0][2:] == got[1][2:], got
    for i in range(3):
        assert c[i].strlen(key) == len(value)
    got = c[0].get(key)
    assert got == value
    del got
    assert c[2].append(key, b"!") == len(value) + 1
    got = c[2].getrange(key, len(value) - 2, -1)
    assert got == value[-2:] + b"!"
