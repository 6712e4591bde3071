"""A real three-node kvpool pool on loopback (always started here, whatever
KVPOOL_POOL_NODES says): one keyspace served by every node.

- MSET through node 1, MGET through nodes 2 and 3, byte for byte (binary,
  all 256 byte values, empty, MiB-sized and a 64 MiB value); MEXISTS from
  every node gives the same aligned array.
- 10,000 random keys spread within +-10% of even; POOL KEYNODE, CLUSTER
  KEYSLOT and the slot table in POOL NODES agree with where keys went.
- Single-key commands through a non-owner act on the owner; DEL / EXISTS /
  UNLINK across nodes; DBSIZE KEYS SCAN RANDOMKEY FLUSHDB FLUSHALL cover all
  nodes; RENAME / RENAMENX across owners; MULTI/EXEC on a remote owner (and
  WATCH aborted by a write through another node); across owners, an error.
- The hiredis client against pool nodes.

A node that fails (kill -9, SIGSTOP): test_pool_failure.py.
"""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest
import redis

from conftest import Pool, running
from pool_util import SlotMap, iter_chunks, key_slot, local_keys, myself_line
from resp import RespError
from util import err, scan_all, wait_until

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]

MB = 1024 * 1024


def _keynode(c, key) -> str:
    v = c.execute("POOL", "KEYNODE", key)
    assert not isinstance(v, RespError), v
    return v.decode() if isinstance(v, bytes) else str(v)


@pytest.fixture(scope="module")
def pool():
    """One 3-node pool (default timings) shared by the module's non-destructive tests."""
    p = Pool(3, name="tp")
    yield from running(p)
    rcs = [n.returncode for n in p.nodes]
    assert rcs == [0, 0, 0], f"pool nodes exit codes on SIGTERM: {rcs}"


@pytest.fixture
def nodes(pool):
    """redis-py clients on nodes 1, 2, 3 of a flushed pool."""
    pool.ensure_running()
    cs = [n.client() for n in pool.nodes]
    cs[0].flushall()
    yield cs
    for c in cs:
        c.close()
    dead = [n.name for n in pool.nodes if not n.alive()]
    assert not dead, f"pool nodes died during the test: {dead}"


@pytest.fixture
def raws(pool, nodes):
    cs = [n.raw() for n in pool.nodes]
    yield cs
    for c in cs:
        c.close()


@pytest.fixture
def slots(pool):
    return SlotMap.of(pool)


# ------------------------------------------------------------------ topology

def test_pool_nodes_topology(pool):
    expected_ranges = [["0-5460"], ["5461-10922"], ["10923-16383"]]
    for i in range(3):
        view = pool.pool_nodes(i)
        assert [d["index"] for d in view] == [0, 1, 2]
        assert [d["addr"] for d in view] == [n.addr for n in pool.nodes], "same list, same order"
        assert [d["pool_port"] for d in view] == [n.port + 10000 for n in pool.nodes]
        assert [d["myself"] for d in view] == [j == i for j in range(3)]
        assert [d["state"] for d in view] == ["up"] * 3
        assert [d["slots"] for d in view] == expected_ranges, "16384 slots split evenly in list order"
        for d in view:
            for f in ("keys", "used_memory", "maxmemory"):
                assert isinstance(d.get(f), int), (f, d["line"])
            assert "transport" in d


def test_info_pool_section(pool):
    for i, n in enumerate(pool.nodes):
        with n.raw() as c:
            text = c.execute("INFO", "pool").decode()
        d = dict(l.split(":", 1) for l in text.splitlines() if l and not l.startswith("#") and ":" in l)
        assert d["pool_nodes"] == "3"
        assert d["pool_nodes_up"] == "3"
        peers = {k: v for k, v in d.items() if k.startswith("peer")}
        assert len(peers) == 2, peers
        for k, v in peers.items():
            fields = dict(kv.split("=", 1) for kv in v.split(","))
            assert fields["state"] == "up"
            assert fields["addr"] in {m.addr for m in pool.nodes} - {n.addr}
            assert int(fields["calls"]) >= 0


def test_cluster_keyslot(raws):
    c = raws[1]
    assert c.execute("CLUSTER", "KEYSLOT", "foo") == 12182
    assert c.execute("CLUSTER", "KEYSLOT", "{user1000}.following") == \
        c.execute("CLUSTER", "KEYSLOT", "{user1000}.followers") == key_slot("user1000")
    assert c.execute("CLUSTER", "KEYSLOT", "123456789") == 12739
    assert c.execute("CLUSTER", "KEYSLOT", "") == 0
    assert c.execute("CLUSTER", "KEYSLOT", "foo{}{bar}") == key_slot("foo{}{bar}")
    assert c.execute("CLUSTER", "KEYSLOT", "{}foo") == key_slot("{}foo")
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))) for _ in range(500)]
    keys += [b"{" + k + b"}x" for k in keys[:50]]
    got = c.pipeline([("CLUSTER", "KEYSLOT", k) for k in keys])
    assert got == [key_slot(k) for k in keys]


def test_keynode_agrees_with_slot_table(pool, raws, slots):
    keys = [f"kn:{i}" for i in range(300)] + ["foo", "{user1000}.following", ""]
    for c in raws:
        got = c.pipeline([("POOL", "KEYNODE", k) for k in keys])
        got = [g.decode() if isinstance(g, bytes) else str(g) for g in got]
        assert got == [pool.nodes[slots.node_of(k)].addr for k in keys]
    assert _keynode(raws[0], "foo") == pool.nodes[2].addr, "slot 12182 is node 3's"


# ------------------------------------------------------- MSET / MGET / MEXISTS

def _spread_check(slots, keys):
    owners = {slots.node_of(k) for k in keys}
    assert owners == {0, 1, 2}, f"the test keys should live on every node, got {owners}"


def test_mset_node1_mget_nodes_2_and_3_byte_for_byte(nodes, slots):
    rng = random.Random(1)
    all256 = bytes(range(256))
    values = {
        b"nul": b"a\x00b\x00\x00",
        b"all256": all256,
        b"all256-rev": all256[::-1],
        b"crlf": b"\r\n$5\r\n*1\r\n",
        b"empty": b"",
        b"empty2": b"",
        b"high": b"\xff" * 1000,
        b"mib1": os.urandom(1 * MB),
        b"mib3": os.urandom(3 * MB + 7),
        b"mib5": os.urandom(5 * MB + 1),
        b"key\x00with\x00nul": b"v1",
        b"key\r\nwith crlf": b"v2",
        bytes(range(1, 40)): b"binary key",
    }
    for i in range(256):  # every single-byte value, under keys spread over the nodes
        values[b"byte:%d" % i] = bytes([i])
    for i in range(100):
        values[b"rand:%d" % i] = os.urandom(rng.randrange(0, 5000))
    _spread_check(slots, values)
    assert nodes[0].mset(values) is True
    keys = list(values)
    for c in nodes[1:] + nodes[:1]:
        assert c.mget(keys) == [values[k] for k in keys]
        shuffled = keys[:]
        rng.shuffle(shuffled)
        probe = shuffled + [b"missing:1", shuffled[0], b"missing:2", shuffled[-1], b"all256", b"empty"]
        assert c.mget(probe) == [values.get(k) for k in probe]
    # Single-key reads agree with the batch, from every node.
    for c in nodes:
        for k in (b"nul", b"all256", b"empty", b"mib5", b"byte:0", b"byte:255"):
            assert c.get(k) == values[k]
        assert c.strlen(b"mib3") == 3 * MB + 7


@pytest.mark.slow
def test_64mib_value_across_nodes(nodes, slots):
    big = os.urandom(64 * MB)
    owner3 = slots.key_on(2, "big")  # lives on node 3, written through node 1
    small = {slots.key_on(n, "small"): f"s{n}".encode() for n in range(3)}
    assert nodes[0].mset({owner3: big, **small}) is True
    order = [list(small)[0], owner3, list(small)[1], "missing", list(small)[2]]
    want = [small[order[0]], big, small[order[2]], None, small[order[4]]]
    for c in (nodes[1], nodes[2], nodes[0]):
        got = c.mget(order)
        assert [len(v) if v is not None else None for v in got] == [len(v) if v is not None else None for v in want]
        assert got == want
    assert nodes[1].strlen(owner3) == 64 * MB


@pytest.mark.slow
def test_64mib_value_single_key_commands_through_a_non_owner(nodes, raws, slots):
    # A single server takes and returns 64 MiB values with SET/GET/GETDEL
    # (proto-max-bulk-len is 512 MiB); through a non-owner they must work too.
    # Every case is tried; the failures are reported together.
    big = os.urandom(64 * MB)
    problems = []
    k = slots.key_on(2, "big")  # owned by node 3
    assert nodes[2].set(k, big) is True
    got = nodes[0].get(k)
    if got != big:
        problems.append(f"GET through a non-owner returned {None if got is None else len(got)} "
                        f"(owner has STRLEN {nodes[2].strlen(k)})")
    k1 = slots.key_on(0, "big1")  # owned by node 1, written through node 3
    try:
        nodes[2].set(k1, big)
    except redis.ResponseError as e:
        problems.append(f"SET through a non-owner: error {e}")
    if nodes[0].strlen(k1) != 64 * MB:
        problems.append(f"after SET through a non-owner the owner has STRLEN {nodes[0].strlen(k1)}")
    try:
        taken = nodes[0].getdel(k)
    except redis.ResponseError as e:
        taken = e
    if taken != big:
        problems.append(f"GETDEL through a non-owner answered {taken!r:.80}; "
                        f"the key {'still exists' if nodes[2].exists(k) else 'was DELETED'} on its owner")
    assert not problems, "64 MiB values through a non-owner:\n  " + "\n  ".join(problems)


def test_mexists_same_aligned_array_from_every_node(nodes, slots):
    present = {f"mx:{i}" for i in range(0, 300, 3)} | {f"mx:{i}" for i in range(0, 300, 7)}
    nodes[0].mset({k: b"v" for k in present})
    nodes[0].set("mx:empty", b"")
    keys = [f"mx:{i}" for i in range(300)] + ["mx:empty", "mx:0", "mx:0", "nope", "mx:3", "mx:1"]
    _spread_check(slots, keys)
    want = [1 if k in present or k == "mx:empty" else 0 for k in keys]
    answers = [c.execute_command("MEXISTS", *keys) for c in nodes]
    assert answers[0] == answers[1] == answers[2] == want
    for c in nodes:
        assert [int(v is not None) for v in c.mget(keys)] == want
        assert c.exists(*keys) == sum(want)
        assert c.execute_command("MEXISTS", "nope") == [0]


def test_10000_random_keys_spread_evenly(pool, nodes, raws):
    rng = random.Random(2024)
    keys = sorted({"%016x" % rng.getrandbits(64) for _ in range(10_000)})
    assert len(keys) == 10_000
    for chunk in iter_chunks(keys, 1000):
        assert nodes[0].mset({k: b"x" for k in chunk}) is True
    counts = [local_keys(n) for n in pool.nodes]
    assert sum(counts) == 10_000, counts
    for i, n in enumerate(counts):
        assert abs(n - 10_000 / 3) <= 0.10 * 10_000 / 3, f"node {i + 1} holds {n} of 10000 keys: {counts}"
    # POOL NODES reports each node's own count in its 'myself' line.
    assert [myself_line(pool, i)["keys"] for i in range(3)] == counts
    # POOL KEYNODE agrees with where every key's count went.
    addrs = [n.addr for n in pool.nodes]
    owners = raws[1].pipeline([("POOL", "KEYNODE", k) for k in keys])
    per_node = [0, 0, 0]
    for o in owners:
        per_node[addrs.index(o.decode() if isinstance(o, bytes) else str(o))] += 1
    assert per_node == counts
    for c in nodes:
        assert c.dbsize() == 10_000
    # All 10,000 (plus missing ones) in one MGET / MEXISTS through node 3.
    probe = keys + ["missing:%d" % i for i in range(100)]
    rng.shuffle(probe)
    assert nodes[2].mget(probe) == [None if k.startswith("missing") else b"x" for k in probe]
    assert nodes[2].execute_command("MEXISTS", *probe) == [0 if k.startswith("missing") else 1 for k in probe]


def test_mset_larger_than_one_call_per_node_is_published_whole(pool_factory):
    # pool-max-batch 100: each node's ~330 keys go as 4 staged calls, then
    # one publish (atomic on the node); every key arrives, byte for byte.
    p = pool_factory(3, name="staged", pool_max_batch=100)
    c1, c2 = p.nodes[0].client(), p.nodes[1].client()
    kvs = {f"staged:{i}": os.urandom(1 + i % 700) for i in range(1000)}
    assert c1.mset(kvs) is True
    assert c2.mget(list(kvs)) == list(kvs.values())
    assert sum(local_keys(n) for n in p.nodes) == 1000
    # Overwritten the same way, the new values win everywhere.
    kvs = {k: v[::-1] + b"!" for k, v in kvs.items()}
    assert c2.mset(kvs) is True
    assert c1.mget(list(kvs)) == list(kvs.values())


def test_concurrent_batches_through_every_node(pool, nodes):
    # Many clients at once, each through its own node: every reply carries
    # that client's own values in its own key order.
    import threading
    errors = []

    def worker(w):
        try:
            c = pool.nodes[w % 3].client()
            rng = random.Random(w)
            for it in range(40):
                keys = [f"cc:{w}:{rng.randrange(200)}" for _ in range(rng.randrange(1, 60))]
                vals = {k: os.urandom(rng.randrange(0, 3000)) + f"{w}:{it}".encode() for k in keys}
                c.mset(vals)
                probe = keys + [f"cc:none:{w}"] + keys[::-1]
                got = c.mget(probe)
                want = [vals[k] for k in keys] + [None] + [vals[k] for k in keys[::-1]]
                if got != want:
                    errors.append(f"worker {w} iteration {it}: MGET mismatch")
                    return
                if c.execute_command("MEXISTS", *probe) != [0 if v is None else 1 for v in want]:
                    errors.append(f"worker {w} iteration {it}: MEXISTS mismatch")
                    return
            c.close()
        except Exception as e:  # reported below
            errors.append(f"worker {w}: {e!r}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]


# --------------------------------------------------- single-key via non-owner

def test_single_key_commands_through_a_non_owner(pool, nodes, raws, slots):
    k = slots.key_on(2, "one")  # owned by node 3; every command goes through node 1
    c, owner = nodes[0], nodes[2]
    assert c.set(k, "10") is True
    assert [local_keys(n) for n in pool.nodes] == [0, 0, 1], "the value lives on its owner only"
    assert owner.get(k) == b"10" and nodes[1].get(k) == b"10"
    assert c.incr(k) == 11
    assert c.incrby(k, 9) == 20
    assert c.decr(k) == 19
    assert c.decrby(k, 4) == 15
    assert c.incrbyfloat(k, 0.5) == 15.5
    assert owner.get(k) == b"15.5"
    assert c.append(k, "x") == 5
    assert c.strlen(k) == 5
    assert c.getrange(k, 0, 1) == b"15"
    assert c.setrange(k, 0, "AB") == 5
    assert owner.get(k) == b"AB.5x"
    assert c.type(k) == b"string"
    assert c.exists(k) == 1
    # TTLs
    assert c.ttl(k) == -1
    assert c.expire(k, 100) is True
    assert 98 <= owner.ttl(k) <= 100
    assert 98_000 <= c.pttl(k) <= 100_000
    assert c.expiretime(k) >= int(time.time()) + 98
    assert c.persist(k) is True
    assert owner.ttl(k) == -1
    assert c.pexpire(k, 50_000) is True and 48 <= owner.ttl(k) <= 50
    assert c.expireat(k, int(time.time()) + 200) is True and 198 <= owner.ttl(k) <= 200
    # Options and getters
    assert c.set(k, "v", nx=True) is None
    assert c.set(k, "new", xx=True, get=True) == b"AB.5x"
    assert owner.ttl(k) == -1, "SET drops the TTL"
    assert c.getset(k, "gs") == b"new"
    assert c.getex(k, ex=300) == b"gs" and 298 <= owner.ttl(k) <= 300
    assert c.setex(k, 77, "sx") is True and 75 <= owner.ttl(k) <= 77
    assert c.psetex(k, 66_000, "px") is True and 64 <= owner.ttl(k) <= 66
    assert c.getdel(k) == b"px"
    assert owner.exists(k) == 0 and c.get(k) is None
    assert c.setnx(k, "nx") is True and owner.get(k) == b"nx"
    # Errors come back from the owner unchanged.
    assert err(raws[0], "INCR", k) == "ERR value is not an integer or out of range"
    assert err(raws[0], "SET", k, "v", "EX", "0") == "ERR invalid expire time in 'set' command"
    # Expiry happens on the owner and is seen everywhere.
    c.set(k, "short", px=100)
    wait_until(lambda: all(x.get(k) is None for x in nodes), timeout=3, what="remote key to expire")
    assert c.ttl(k) == -2
    assert [local_keys(n) for n in pool.nodes][:2] == [0, 0]


def test_select_db_travels_with_forwarded_commands(nodes, slots):
    k = slots.key_on(1, "sel")
    c = nodes[0]
    c.execute_command("SELECT", "5")
    c.set(k, "five")
    assert nodes[1].get(k) is None, "db 0 on the owner is untouched"
    other = nodes[2]
    other.execute_command("SELECT", "5")
    assert other.get(k) == b"five"
    assert other.execute_command("MEXISTS", k) == [1]
    other.execute_command("SELECT", "0")
    c.execute_command("SELECT", "0")


def test_memory_usage_of_a_remote_key(nodes, slots):
    # MEMORY USAGE is a single-key command like any other.
    k = slots.key_on(1, "mem")
    nodes[0].set(k, b"x" * 100_000)
    for c in nodes:
        usage = c.memory_usage(k)
        assert isinstance(usage, int) and 100_000 <= usage < 200_000, \
            f"MEMORY USAGE through node {nodes.index(c) + 1}: {usage!r}"


# ------------------------------------------------------------ multi-key

def test_del_exists_unlink_across_nodes(nodes, slots):
    keys = [slots.key_on(n, f"d{j}") for j in range(3) for n in range(3)]
    nodes[0].mset({k: b"v" for k in keys})
    c = nodes[1]
    assert c.exists(*keys) == 9
    assert c.exists(keys[0], keys[0], "missing", keys[1]) == 3, "duplicates are counted"
    assert c.delete(keys[0], keys[1], "missing", keys[0]) == 2, "a key named twice is deleted once"
    assert nodes[2].exists(*keys) == 7
    assert nodes[0].unlink(*keys[2:6], "missing") == 4
    assert nodes[2].exists(*keys) == 3
    assert nodes[0].mget(keys) == [None] * 6 + [b"v"] * 3
    assert c.delete(*keys) == 3
    assert nodes[0].dbsize() == 0


def test_dbsize_keys_scan_randomkey_cover_all_nodes(pool, nodes, raws, slots):
    keys = {f"user:{i}".encode() for i in range(300)} | {f"item:{i}".encode() for i in range(200)}
    _spread_check(slots, keys)
    nodes[0].mset({k: b"v" for k in keys})
    assert all(local_keys(n) > 0 for n in pool.nodes)
    for i, c in enumerate(nodes):
        assert c.dbsize() == 500
        assert set(c.keys("*")) == keys and len(c.keys("*")) == 500
        assert set(c.keys("user:1*")) == {k for k in keys if k.startswith(b"user:1")}
        seen = []
        cursor = 0
        while True:
            cursor, batch = c.scan(cursor, count=25)
            seen.extend(batch)
            if cursor == 0:
                break
        assert set(seen) == keys, f"a full SCAN through node {i + 1} returns every key"
        _calls, matched = scan_all(raws[i], "MATCH", "item:*", "COUNT", "50")
        assert set(matched) == {k for k in keys if k.startswith(b"item:")}
        picked = {c.randomkey() for _ in range(60)}
        assert picked <= keys
        assert {slots.node_of(k) for k in picked} == {0, 1, 2}, "RANDOMKEY draws from every node"


def test_scan_over_empty_and_sparse_pool(nodes, raws, slots):
    # A full iteration ends with cursor 0 whichever nodes are empty.
    for c in raws:
        _calls, keys = scan_all(c)
        assert keys == []
    k = slots.key_on(1, "only")
    nodes[0].set(k, "v")
    for c in raws:
        _calls, keys = scan_all(c, "COUNT", "1000")
        assert keys == [k.encode()]


def test_scan_option_errors_in_a_pool(raws):
    # Same errors as a single server: options are checked, not swallowed.
    for c in raws:
        assert err(c, "SCAN", "0", "COUNT", "0") == "ERR syntax error"
        assert err(c, "SCAN", "0", "COUNT", "abc") == "ERR value is not an integer or out of range"
        assert err(c, "SCAN", "0", "MATCH") == "ERR syntax error"
        assert err(c, "SCAN", "0", "FOO", "bar") == "ERR syntax error"
        assert err(c, "SCAN", "abc") == "ERR invalid cursor"


def test_flushdb_flushall_cover_all_nodes(pool, nodes, slots):
    keys = [slots.key_on(n, "f") for n in range(3)]
    for db in (0, 1):
        nodes[0].execute_command("SELECT", str(db))
        nodes[0].mset({k: b"v" for k in keys})
    nodes[0].execute_command("SELECT", "1")
    assert nodes[1].execute_command("SELECT", "1") and nodes[1].flushdb() is True
    assert nodes[0].dbsize() == 0
    nodes[0].execute_command("SELECT", "0")
    nodes[1].execute_command("SELECT", "0")
    assert nodes[2].dbsize() == 3, "FLUSHDB of db 1 left db 0 alone"
    assert [local_keys(n) for n in pool.nodes] == [1, 1, 1]
    assert nodes[2].flushall() is True
    assert [local_keys(n) for n in pool.nodes] == [0, 0, 0]
    assert nodes[0].dbsize() == 0
    nodes[0].execute_command("SELECT", "1")
    assert nodes[0].dbsize() == 0
    nodes[0].execute_command("SELECT", "0")


def test_rename_renamenx_across_owners(nodes, raws, slots):
    a, b, c3 = slots.key_on(0, "ra"), slots.key_on(1, "rb"), slots.key_on(2, "rc")
    value = bytes(range(256)) * 10
    n1, n2, n3 = nodes
    n1.set(a, value, ex=100)
    assert n2.rename(a, b) is True, "node 1 -> node 2, asked through node 2"
    assert n3.get(a) is None and n3.get(b) == value
    assert 98 <= n1.ttl(b) <= 100, "the TTL moves with the value"
    n1.set(c3, "old", ex=500)
    assert n1.rename(b, c3) is True, "overwrites a destination on a third node"
    assert n2.get(c3) == value and n2.exists(b) == 0
    assert 97 <= n2.ttl(c3) <= 100, "the destination's old TTL is replaced"
    n1.set(a, "persistent")
    assert n3.rename(a, b) is True
    assert n1.ttl(b) == -1
    # RENAMENX
    n1.set(a, "src")
    assert n1.renamenx(a, b) is False, "destination exists on another node"
    assert n2.mget(a, b) == [b"src", b"persistent"]
    n1.delete(b)
    assert n3.renamenx(a, b) is True
    assert n1.mget(a, b) == [None, b"src"]
    assert err(raws[0], "RENAME", slots.key_on(1, "missing"), a) == "ERR no such key"
    assert err(raws[0], "RENAMENX", slots.key_on(2, "missing"), a) == "ERR no such key"
    # Both keys on one other node: renamed there.
    x, y = slots.keys_on(2, 2, "same")
    n1.set(x, "xv")
    assert n1.rename(x, y) is True
    assert n3.mget(x, y) == [None, b"xv"]


def test_msetnx_across_nodes(nodes, raws, slots):
    # MSETNX is a single-node command; in a pool it must work from any node
    # on any keys (no CROSSSLOT-like errors), all or nothing.
    a, b, c = slots.key_on(0, "nx"), slots.key_on(1, "nx"), slots.key_on(2, "nx")
    assert err(raws[0], "MSETNX", a, "1", b) == "ERR wrong number of arguments for 'msetnx' command"
    assert nodes[1].msetnx({a: "1", b: "2"}) is True
    assert nodes[2].msetnx({b: "x", c: "3"}) is False, "all or nothing"
    assert nodes[0].mget(a, b, c) == [b"1", b"2", None]


# -------------------------------------------------------------- MULTI/EXEC

def test_multi_exec_on_a_remote_owner(nodes, raws, slots):
    tag = slots.tag_on(2)  # node 3 owns the hashtag; the client talks to node 1
    a, b = f"{tag}a", f"{tag}b"
    c = raws[0]
    assert c.execute("MULTI") == "OK"
    assert c.execute("SET", a, "1") == "QUEUED"
    assert c.execute("INCR", a) == "QUEUED"
    assert c.execute("SET", b, "x") == "QUEUED"
    assert c.execute("MGET", a, b, f"{tag}none") == "QUEUED"
    assert c.execute("INCR", b) == "QUEUED"
    replies = c.execute("EXEC")
    assert replies[:4] == ["OK", 2, "OK", [b"2", b"x", None]]
    assert isinstance(replies[4], RespError) and "not an integer" in replies[4].message
    assert nodes[2].mget(a, b) == [b"2", b"x"]
    # redis-py pipelines too.
    p = nodes[1].pipeline(transaction=True)
    p.incr(a).get(a).delete(b).exists(b)
    assert p.execute() == [3, b"3", 1, 0]


def test_watch_on_remote_owner_aborted_by_write_through_another_node(nodes, raws, slots):
    tag = slots.tag_on(2)
    w, out = f"{tag}w", f"{tag}out"
    c = raws[0]
    nodes[0].set(w, "0")
    # Unchanged: the transaction runs.
    assert c.execute("WATCH", w) == "OK"
    c.execute("MULTI")
    c.execute("SET", out, "first")
    assert c.execute("EXEC") == ["OK"]
    # Changed through node 2 (a non-owner) after WATCH: aborted.
    assert c.execute("WATCH", w) == "OK"
    nodes[1].set(w, "changed by node 2")
    c.execute("MULTI")
    c.execute("SET", out, "second")
    assert c.execute("EXEC") is None
    assert nodes[2].get(out) == b"first"
    # Changed through the owner itself: aborted as well.
    assert c.execute("WATCH", w, out) == "OK"
    nodes[2].delete(out)
    c.execute("MULTI")
    c.execute("SET", w, "third")
    assert c.execute("EXEC") is None
    assert nodes[0].get(w) == b"changed by node 2"
    # redis-py's WatchError path.
    with nodes[0].pipeline() as p:
        p.watch(w)
        p.get(w)
        nodes[1].set(w, "again")
        p.multi()
        p.set(w, "lost")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert nodes[2].get(w) == b"again"


def test_multi_exec_with_keys_on_different_nodes_is_refused(nodes, raws, slots):
    a, b = slots.key_on(0, "tx"), slots.key_on(2, "tx")
    c = raws[1]
    c.execute("MULTI")
    assert c.execute("SET", a, "1") == "QUEUED"
    assert c.execute("SET", b, "2") == "QUEUED"
    reply = c.execute("EXEC")
    assert isinstance(reply, RespError), reply
    msg = reply.message
    assert "MULTI/EXEC" in msg and "hashtag" in msg, msg
    assert nodes[0].exists(a, b) == 0, "nothing ran"
    assert err(c, "EXEC") == "ERR EXEC without MULTI", "the transaction is over"
    assert c.execute("SET", a, "ok") == "OK"
    # WATCH on one node, a transaction on another: refused the same way.
    assert c.execute("WATCH", b) == "OK"
    c.execute("MULTI")
    c.execute("SET", a, "x")
    reply = c.execute("EXEC")
    assert isinstance(reply, RespError) and "hashtag" in reply.message, reply
    assert nodes[1].get(a) == b"ok"
    # redis-py sees a plain ResponseError.
    p = nodes[0].pipeline(transaction=True)
    p.set(a, "1").set(b, "2")
    with pytest.raises(redis.ResponseError, match="MULTI/EXEC"):
        p.execute()


def test_select_inside_multi_on_a_remote_owner(nodes, raws, slots):
    # As on one server: a SELECT inside MULTI stays in effect after EXEC.
    k = slots.key_on(2, "seltx")
    c = raws[0]
    c.execute("MULTI")
    c.execute("SELECT", "5")
    c.execute("SET", k, "five")
    assert c.execute("EXEC") == ["OK", "OK"]
    info = c.execute("CLIENT", "INFO").decode()
    assert " db=5 " in info, f"the connection should now be on db 5: {info}"
    assert c.execute("GET", k) == b"five"
    c.execute("SELECT", "0")


# --------------------------------------------------------------- hiredis

def test_hiredis_client_against_pool_nodes(pool, nodes):
    binary = os.environ.get("KVPOOL_HIREDIS_CLIENT")
    if not binary:
        pytest.fail("KVPOOL_HIREDIS_CLIENT is not set: build the CMake target `hiredis_client` "
                    "(tests/clients) and set KVPOOL_HIREDIS_CLIENT to its path")
    for node in (pool.nodes[1], pool.nodes[2]):
        proc = subprocess.run([binary, node.host, str(node.port)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"hiredis_client against {node.name} exited {proc.returncode}:\n" \
                                     f"{proc.stdout}{proc.stderr}"
        assert proc.stdout.startswith("OK: "), proc.stdout
    # The client spreads its keys over the pool and deletes them all at the end.
    assert nodes[0].dbsize() == 0


# ------------------------------------------------ pipelines through one node

def test_a_pipeline_through_one_node_answers_in_order_and_keeps_each_keys_order(raws, slots):
    """Commands after one answered later (its key is on another node) run
    meanwhile unless they share a key with one outstanding: every reply
    comes in the order sent, and each key sees its commands in order."""
    here, there, far = slots.keys_on(0, 2, "pl0"), slots.keys_on(1, 2, "pl1"), slots.keys_on(2, 2, "pl2")
    cmds, want = [], []
    for i in range(50):
        for k in (here[0], there[0], far[0]):
            cmds.append(("INCR", k))
            want.append(i + 1)
        cmds.append(("APPEND", there[1], f"{i},"))
        want.append(len("".join(f"{j}," for j in range(i + 1))))
        cmds.append(("GET", there[1]))
        want.append("".join(f"{j}," for j in range(i + 1)).encode())
        cmds.append(("MSET", here[1], str(i), far[1], str(i)))
        want.append("OK")
        cmds.append(("MGET", here[1], far[1], there[0]))
        want.append([str(i).encode(), str(i).encode(), str(i + 1).encode()])
        cmds.append(("PING",))  # no keys: waits for every reply before it
        want.append("PONG")
    assert raws[0].pipeline(cmds) == want
    # A transaction in the middle of a pipeline of remote keys: it waits,
    # runs whole, and the commands after it see what it wrote.
    tag = slots.tag_on(1, "pltx")
    got = raws[0].pipeline([("SET", there[0], "a"), ("MULTI",), ("INCR", f"{tag}x"),
                            ("INCR", f"{tag}x"), ("EXEC",), ("GET", f"{tag}x"), ("GET", there[0])])
    assert got == ["OK", "OK", "QUEUED", "QUEUED", [1, 2], b"2", b"a"]

