"""maxmemory and eviction, each test on its own small server.

allkeys-lru: writing far more than maxmemory keeps the server answering,
keeps used_memory near the limit, counts evictions and keeps hot keys.
noeviction: writes fail with the OOM error, reads and deletes still work.

In pool mode (KVPOOL_POOL_NODES) each "server" is a pool whose every node has
the small maxmemory: memory figures (used_memory, evicted_keys) are per node,
so they are checked on every node (`srv.nodes`), and the amounts written are
multiplied by the number of nodes so each node sees the same pressure as the
single server does. Keys written together in one MSET share a {hashtag}.
"""

import os
import time

import pytest

from conftest import USE_REDIS
from util import err, parse_info

pytestmark = pytest.mark.slow

MB = 1024 * 1024
OOM = "OOM command not allowed when used memory > 'maxmemory'."
# The INFO field maxmemory bounds: Redis's used_memory; kvpool's dataset
# (items + index), as its used_memory also counts the process heap.
BOUNDED = "used_memory" if USE_REDIS else "used_memory_dataset"


def mem(c) -> dict:
    return parse_info(c.execute("INFO", "memory") + c.execute("INFO", "stats"))


def node_mems(srv) -> list:
    """mem() of every node of srv's pool ([srv] for a single server)."""
    out = []
    for node in srv.nodes:
        with node.raw(timeout=60) as c:
            out.append(mem(c))
    return out


def total(mems: list, field: str) -> int:
    return sum(int(m[field]) for m in mems)


def fill(c, prefix: str, total_bytes: int, value_size: int = 10 * 1024, batch: int = 100,
         hot_keys=(), check=None):
    """SET total_bytes worth of value_size values in pipelined batches.
    Returns the replies (a reply per SET). Touches `hot_keys` between batches."""
    base = os.urandom(value_size)
    n = total_bytes // value_size
    replies = []
    for start in range(0, n, batch):
        cmds = [("SET", f"{prefix}:{i}", base[:-8] + i.to_bytes(8, "little"))
                for i in range(start, min(n, start + batch))]
        if hot_keys:
            cmds.append(("MGET", *hot_keys))
        out = c.pipeline(cmds)
        replies.extend(out[:len(cmds) - (1 if hot_keys else 0)])
        if check:
            check(start)
    return replies


def test_allkeys_lru_eviction(server_factory):
    maxmemory = 32 * MB
    srv = server_factory(maxmemory="32mb", maxmemory_policy="allkeys-lru", name="lru")
    nodes = len(srv.nodes)
    c = srv.raw(timeout=60)
    peaks = []

    def check(start):
        if start % 2000 == 0:
            assert c.execute("PING") == "PONG", "the server keeps answering while evicting"
            peaks.append(max(int(m[BOUNDED]) for m in node_mems(srv)))

    # 200 MB of 10 KB values into 32 MB: every write succeeds, old keys go.
    # (A pool holds 32 MB per node; 200 MB still overfills 3 nodes twice.)
    total_mb = max(200, 2 * 32 * nodes)
    replies = fill(c, "cold", total_mb * MB, check=check)
    assert all(x == "OK" for x in replies), {repr(x) for x in replies if x != "OK"}
    mems = node_mems(srv)
    for i, m in enumerate(mems):
        used = int(m[BOUNDED])
        assert used <= maxmemory * 1.1, f"node {i + 1}: used_memory {used} > maxmemory*1.1"
        assert int(m["maxmemory"]) == maxmemory
        assert m["maxmemory_policy"] == "allkeys-lru"
    assert max(peaks) <= maxmemory * 1.1, f"peak used_memory {max(peaks)} > maxmemory*1.1"
    assert total(mems, "evicted_keys") > 0
    n_written = total_mb * MB // (10 * 1024)
    dbsize = c.execute("DBSIZE")
    assert 0 < dbsize <= nodes * maxmemory // (10 * 1024)
    assert c.execute("EXISTS", f"cold:{n_written - 1}") == 1, "the newest key survives"
    v = c.execute("GET", f"cold:{n_written - 1}")
    assert len(v) == 10 * 1024 and v[-8:] == (n_written - 1).to_bytes(8, "little")
    c.close()


def test_allkeys_lru_keeps_recently_used_keys(server_factory):
    # Redis keeps LRU time with 1 s resolution, hence the sleep: the hot keys
    # must be measurably more recent than the bulk of the keyspace.
    srv = server_factory(maxmemory="32mb", maxmemory_policy="allkeys-lru", name="lru-hot")
    nodes = len(srv.nodes)
    c = srv.raw(timeout=60)
    n_old = nodes * 40 * MB // (10 * 1024)
    n_new = nodes * 12 * MB // (10 * 1024)
    fill(c, "old", nodes * 40 * MB)
    hot = [f"hot:{i}" for i in range(50 * nodes)]
    assert c.pipeline([("SET", k, "h" * 1000) for k in hot]) == ["OK"] * len(hot)
    time.sleep(1.1)
    c.execute("MGET", *hot)          # touch the hot keys
    fill(c, "new", nodes * 12 * MB)  # forces ~12 MB of evictions (per node)
    present = c.execute("EXISTS", *hot)
    assert present >= 0.8 * len(hot), f"only {present}/{len(hot)} recently used keys survived allkeys-lru"
    old_left = c.execute("EXISTS", *[f"old:{i}" for i in range(n_old)])
    new_left = c.execute("EXISTS", *[f"new:{i}" for i in range(n_new)])
    assert new_left > 0.8 * n_new, "fresh keys were evicted before old ones"
    assert old_left < n_old
    c.close()


def test_noeviction_rejects_writes_but_serves_reads(server_factory):
    srv = server_factory(maxmemory="32mb", maxmemory_policy="noeviction", name="noevict")
    nodes = len(srv.nodes)
    c = srv.raw(timeout=60)
    c.execute("SET", "early", "still here")
    replies = fill(c, "fill", nodes * 64 * MB)
    oom = [x for x in replies if x != "OK"]
    assert oom, "writing 64 MB into 32 MB with noeviction must fail at some point"
    assert all(x == OOM for x in oom), {repr(x) for x in oom}
    stored = replies.index(oom[0])
    assert stored > 0
    # Writes that need memory fail now (2 MB is more than any headroom left).
    big = b"x" * (2 * MB)
    assert err(c, "SET", "new", big) == OOM
    assert err(c, "MSET", "{m}a", "1", "{m}b", big) == OOM
    assert err(c, "APPEND", "early", big) == OOM
    assert err(c, "SETEX", "new", "100", big) == OOM
    assert c.execute("EXISTS", "new", "{m}a", "{m}b") == 0
    assert c.execute("GET", "early") == b"still here"
    # Reads and metadata work.
    assert c.execute("GET", "early") == b"still here"
    assert len(c.execute("GET", "fill:0")) == 10 * 1024
    assert c.execute("MGET", "early", "nokey") == [b"still here", None]
    assert c.execute("EXISTS", "early", "fill:0") == 2
    assert c.execute("PING") == "PONG"
    assert c.execute("DBSIZE") >= stored
    mems = node_mems(srv)
    assert total(mems, "evicted_keys") == 0
    assert max(int(m[BOUNDED]) for m in mems) <= 32 * MB * 1.1
    # Deleting frees memory and writes work again.
    assert c.execute("DEL", *[f"fill:{i}" for i in range(stored // 2)]) == stored // 2
    assert c.execute("SET", "after-del", "x" * 10240) == "OK"
    assert c.execute("FLUSHALL") == "OK"
    assert c.execute("SET", "after-flush", "v") == "OK"
    c.close()


def test_volatile_lru_spares_persistent_keys(server_factory):
    srv = server_factory(maxmemory="32mb", maxmemory_policy="volatile-lru", name="volatile")
    nodes = len(srv.nodes)
    c = srv.raw(timeout=60)
    persistent = [f"keep:{i}" for i in range(500 * nodes)]
    c.pipeline([("SET", k, "p" * 10240) for k in persistent])  # ~5 MB without TTL (per node)
    base = os.urandom(10240)
    # ~100 MB of keys with a TTL; for a pool 50 MB per node, still well over maxmemory.
    n_volatile = 10000 if nodes == 1 else 5000 * nodes
    for start in range(0, n_volatile, 100):
        out = c.pipeline([("SET", f"vol:{i}", base, "EX", "3600") for i in range(start, start + 100)])
        assert all(x == "OK" for x in out), {repr(x) for x in out if x != "OK"}
    mems = node_mems(srv)
    for i, m in enumerate(mems):
        assert int(m["evicted_keys"]) > 0, f"node {i + 1} evicted nothing"
        assert int(m[BOUNDED]) <= 32 * MB * 1.1, f"node {i + 1}: used_memory {m[BOUNDED]}"
    assert c.execute("EXISTS", *persistent) == len(persistent), "volatile-lru evicted a key without TTL"
    c.close()


def test_lowering_maxmemory_at_runtime_evicts(server_factory):
    srv = server_factory(maxmemory="64mb", maxmemory_policy="allkeys-lru", name="shrink")
    nodes = len(srv.nodes)
    c = srv.raw(timeout=60)
    n_keys = nodes * 30 * MB // (10 * 1024)
    fill(c, "k", nodes * 30 * MB)
    assert total(node_mems(srv), "evicted_keys") == 0
    assert c.execute("DBSIZE") == n_keys
    # CONFIG SET changes the node it is sent to: in a pool, every node.
    for node in srv.nodes:
        with node.raw() as nc:
            assert nc.execute("CONFIG", "SET", "maxmemory", "8mb") == "OK"
    # Eviction happens as commands arrive; a few writes trigger it.
    for i in range(20 * nodes):
        assert c.execute("SET", f"after:{i}", "v") == "OK"
    mems = node_mems(srv)
    for i, m in enumerate(mems):
        assert int(m["evicted_keys"]) > 0, f"node {i + 1} evicted nothing"
        assert int(m[BOUNDED]) <= 8 * MB * 1.1, f"node {i + 1}: used_memory {m[BOUNDED]}"
    assert c.execute("DBSIZE") < n_keys
    c.close()


def test_redis_py_sees_oom_error(server_factory):
    import redis
    srv = server_factory(maxmemory="8mb", maxmemory_policy="noeviction", name="oom-py")
    r = srv.client()
    value = b"x" * 100_000
    with pytest.raises(redis.ResponseError, match="^OOM command not allowed when used memory > 'maxmemory'.$"):
        for i in range(200 * len(srv.nodes)):
            r.set(f"k{i}", value)
    assert r.get("k0") == value


@pytest.mark.single_node
def test_rss_comes_back_after_bursts_on_every_io_thread(server_factory):
    """Six clients that never read their replies, one after another (so on
    both I/O threads), each leaving tens of MB of replies buffered until it
    closes: once they are gone RSS comes back down, whichever thread's
    allocator arena held the buffers. glibc's malloc_trim never shrinks the
    top of a thread's arena, so with a high trim threshold each I/O thread
    kept its burst resident for good (RSS 95 MiB against 9 at the start)."""
    from hardening_util import SERVER_BINARY, never_reader, sanitizer_rss_extra
    from util import rss_bytes
    srv = server_factory("--client-output-buffer-limit", "normal 0 0 0", name="bursts", pool=False)
    base = rss_bytes(srv)
    peaks = [never_reader(srv, f"burst{i}", 8 * 1024, 20_000, wait=2)[1] for i in range(6)]
    # What may stay: up to 16 MiB at the top of each I/O thread's arena,
    # kept for reuse (main.cc); a sanitizer's allocator keeps its own pools.
    allowance = 32 * MB + sanitizer_rss_extra(SERVER_BINARY)
    deadline = time.monotonic() + 5
    while rss_bytes(srv) - base > allowance and time.monotonic() < deadline:
        time.sleep(0.2)
    grown = rss_bytes(srv) - base
    assert grown <= allowance, (f"RSS stayed {grown >> 20} MiB above its start after the bursts "
                                f"(peaks {[p >> 20 for p in peaks]} MiB)")
