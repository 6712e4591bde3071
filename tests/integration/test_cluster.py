"""The pool seen as a Redis Cluster (issue 14), with redis-py and redis-cli.

- CLUSTER SLOTS / SHARDS / NODES / INFO / MYID / COUNTKEYSINSLOT /
  GETKEYSINSLOT describe the pool's slot table: three contiguous ranges,
  each served by its primary, with pool-replicas 2 the next node as its
  replica; node ids are the same on every node and across restarts.
- redis-py's RedisCluster (set, get, mget_nonatomic, mset_nonatomic,
  delete, pipeline over 10,000 keys) sends every key to its node: no node
  sends a key or a command elsewhere for it (INFO pool_keys_elsewhere and
  pool_commands_forwarded do not move), with and without replicas.
- cluster-redirects yes: a single-key command for a slot another node
  serves answers MOVED (redis-cli -c follows it), multi-key commands are
  still served across slots, READONLY reads of a replica's slots are served
  where they are; `redis-cli --cluster check` sees all 16384 slots covered.
- A node killed shows as failed in CLUSTER NODES; with replicas its range
  moves to the copy serving it in CLUSTER SLOTS, and the client recovers.
- A single node answers CLUSTER (but KEYSLOT) as Redis without cluster mode.
"""

from __future__ import annotations

import subprocess

import pytest
import redis
from redis.cluster import RedisCluster

from conftest import HOST
from pool_util import SlotMap, key_slot
from util import wait_until

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]

N_KEYS = 10_000
REDIS_CLI = "/usr/bin/redis-cli"
RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


def _in_sync(p) -> None:
    wait_until(lambda: all(n.client().info("pool").get("pool_sync_state", "in_sync") == "in_sync"
                           for n in p.nodes), timeout=60, what="every node in sync")


@pytest.fixture(scope="module", params=[1, 2], ids=["replicas1", "replicas2"])
def cluster(request):
    from conftest import Pool
    p = Pool(3, name=f"cluster-r{request.param}", **{"pool-replicas": request.param})
    try:
        p.start()
        _in_sync(p)
    except Exception:
        p.stop()
        raise
    p.replicas = request.param
    yield p
    p.stop()


def _routed(p) -> list:
    """Per node: (keys sent elsewhere, commands forwarded) for clients."""
    out = []
    for n in p.nodes:
        i = n.client().info("pool")
        out.append((i["pool_keys_elsewhere"], i["pool_commands_forwarded"]))
    return out


def _masters(node) -> list:
    """The port of the node serving each range, in slot order (CLUSTER SLOTS)."""
    with node.raw() as raw:
        return [e[2][1] for e in raw.execute("CLUSTER", "SLOTS")]


def _client(p, **kw) -> RedisCluster:
    return RedisCluster(host=HOST, port=p.nodes[0].port, socket_timeout=30, **kw)


def test_slots_shards_nodes_and_info_describe_the_slot_table(cluster):
    p = cluster
    c = p.nodes[1].client()
    ids = [n.client().execute_command("CLUSTER", "MYID").decode() for n in p.nodes]
    assert len(set(ids)) == 3 and all(len(i) == 40 for i in ids), ids
    # [first, last, [host, port, id, {}] of the node serving them, its replicas...]
    with p.nodes[2].raw() as raw:
        entries = raw.execute("CLUSTER", "SLOTS")
        shards = raw.execute("CLUSTER", "SHARDS")
        nodes = raw.execute("CLUSTER", "NODES").decode()
    assert [(e[0], e[1]) for e in entries] == RANGES
    for i, e in enumerate(entries):
        assert e[2] == [HOST.encode(), p.nodes[i].port, ids[i].encode(), []], e
        want = [[HOST.encode(), p.nodes[(i + 1) % 3].port, ids[(i + 1) % 3].encode(), []]]
        assert e[3:] == (want if p.replicas == 2 else []), e
    assert len(shards) == 3
    for i, shard in enumerate(shards):
        sh = dict(zip(shard[::2], shard[1::2]))
        assert sh[b"slots"] == list(RANGES[i])
        members = [dict(zip(n[::2], n[1::2])) for n in sh[b"nodes"]]
        assert members[0][b"id"] == ids[i].encode() and members[0][b"role"] == b"master"
        assert members[0][b"health"] == b"online" and members[0][b"port"] == p.nodes[i].port
        assert [m[b"role"] for m in members[1:]] == [b"replica"] * (p.replicas - 1)
    # <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slots>
    lines = nodes.splitlines()
    assert len(lines) == 3, nodes
    for i, line in enumerate(lines):
        f = line.split()
        assert f[0] == ids[i] and f[1] == f"{HOST}:{p.nodes[i].port}@{p.nodes[i].port + 10000}"
        assert f[2] == ("myself,master" if i == 2 else "master") and f[3] == "-"
        assert f[6] == str(i + 1) and f[7] == "connected" and f[8:] == [f"{RANGES[i][0]}-{RANGES[i][1]}"]
    info = c.execute_command("CLUSTER", "INFO")
    info = info if isinstance(info, dict) else dict(l.split(":", 1) for l in info.decode().split())
    assert str(info["cluster_state"]) == "ok"
    assert int(info["cluster_slots_ok"]) == 16384 and int(info["cluster_slots_fail"]) == 0
    assert int(info["cluster_known_nodes"]) == 3 and int(info["cluster_size"]) == 3
    assert c.info("cluster")["cluster_enabled"] == 1
    assert c.execute_command("READONLY") == b"OK" or c.execute_command("READWRITE")


def test_keys_in_slot_are_counted_on_the_nodes_that_hold_them(cluster):
    p = cluster
    slots = SlotMap.of(p)
    tag = slots.tag_on(2, prefix="inslot")
    slot = key_slot(tag)
    c = p.nodes[0].client()
    c.mset({f"{tag}:{i}": i for i in range(25)})
    owner = p.nodes[2].client()
    assert owner.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 25
    got = owner.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10)
    assert len(got) == 10 and all(k.decode().startswith(tag) for k in got)
    # Node 2 holds none of them (node 1 does with replicas: the range's replica).
    assert p.nodes[1].client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    assert p.nodes[0].client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == \
        (25 if p.replicas == 2 else 0)
    with p.nodes[0].raw() as raw:
        assert raw.execute("CLUSTER", "COUNTKEYSINSLOT", 16384).message == "ERR Invalid slot"
        assert raw.execute("CLUSTER", "GETKEYSINSLOT", 1, -1).message == \
            "ERR Invalid slot or number of keys"
        assert "not supported" in raw.execute("CLUSTER", "ADDSLOTS", 1).message
        assert raw.execute("ASKING") == "OK"
    c.delete(*[f"{tag}:{i}" for i in range(25)])


def test_redis_py_cluster_client_sends_every_key_to_its_node(cluster):
    p = cluster
    rc = _client(p)
    keys = [f"rc:{i}" for i in range(N_KEYS)]
    before = _routed(p)
    for k in keys[:2000]:
        assert rc.set(k, k) is True
    for k in keys[:2000:7]:
        assert rc.get(k) == k.encode()
    assert all(rc.mset_nonatomic({k: k for k in keys[2000:]}))
    got = rc.mget_nonatomic(keys)
    assert got == [k.encode() for k in keys]
    pipe = rc.pipeline()
    for k in keys[:500]:
        pipe.set(k, "piped:" + k)
        pipe.get(k)
    out = pipe.execute()
    assert out[1::2] == [("piped:" + k).encode() for k in keys[:500]]
    assert rc.delete(*keys[:5000]) == 5000
    assert rc.mget_nonatomic(keys[4990:5010]) == [None] * 10 + [k.encode() for k in keys[5000:5010]]
    after = _routed(p)
    assert after == before, f"keys/commands sent elsewhere, per node: {before} -> {after}"
    # The same through one node (the forwarding path) does send them on.
    c = p.nodes[0].client()
    assert c.mget(keys[5000:5100]) == [k.encode() for k in keys[5000:5100]]
    assert _routed(p)[0][0] > after[0][0]
    assert rc.delete(*keys[5000:]) == N_KEYS - 5000
    rc.close()


def test_redirects_moved_and_readonly(cluster):
    p = cluster
    slots = SlotMap.of(p)
    elsewhere = slots.key_on(1, prefix="moved")
    here = slots.key_on(0, prefix="moved")
    for n in p.nodes:
        assert n.client().config_set("cluster-redirects", "yes")
    try:
        with p.nodes[0].raw() as raw:
            assert raw.execute("SET", here, "1") == "OK"
            e = raw.execute("SET", elsewhere, "1")
            assert e.message == f"MOVED {key_slot(elsewhere)} {HOST}:{p.nodes[1].port}"
            assert raw.execute("GET", elsewhere).message.startswith("MOVED ")
            # Multi-key commands are served across slots.
            assert raw.execute("MSET", here, "a", elsewhere, "b") == "OK"
            assert raw.execute("MGET", here, elsewhere) == [b"a", b"b"]
            # Inside MULTI a MOVED aborts the transaction, as in Redis Cluster.
            assert raw.execute("MULTI") == "OK"
            assert raw.execute("GET", elsewhere).message.startswith("MOVED ")
            assert raw.execute("EXEC").message.startswith("EXECABORT")
            # READONLY: a read of a slot this node holds a replica of is served
            # here (node 1 is the replica of node 3's range).
            replica_key = slots.key_on(2, prefix="moved")
            assert raw.execute("SET", replica_key, "r").message.startswith("MOVED ")
            assert raw.execute("READONLY") == "OK"
            if p.replicas == 2:
                assert raw.execute("GET", replica_key) is None
                assert raw.execute("SET", replica_key, "r").message.startswith("MOVED ")
            else:
                assert raw.execute("GET", replica_key).message.startswith("MOVED ")
            assert raw.execute("READWRITE") == "OK"
        cli = [REDIS_CLI, "-h", HOST, "-p", str(p.nodes[0].port), "-c"]
        assert subprocess.run(cli + ["SET", elsewhere, "via-cli"], capture_output=True, text=True,
                              timeout=30).stdout.strip() == "OK"
        assert subprocess.run(cli + ["GET", elsewhere], capture_output=True, text=True,
                              timeout=30).stdout.strip() == "via-cli"
        # A strict cluster client follows the redirects too.
        rc = _client(p)
        assert rc.set(elsewhere, "rc") is True and rc.get(elsewhere) == b"rc"
        rc.close()
        check = subprocess.run([REDIS_CLI, "--cluster", "check", f"{HOST}:{p.nodes[2].port}"],
                               capture_output=True, text=True, timeout=60)
        assert "[OK] All 16384 slots covered." in check.stdout, check.stdout + check.stderr
        assert "[OK] All nodes agree about slots configuration." in check.stdout, check.stdout
    finally:
        for n in p.nodes:
            n.client().config_set("cluster-redirects", "no")
        p.nodes[0].client().delete(here, elsewhere)


def test_a_killed_node_fails_and_the_client_recovers(pool_factory):
    p = pool_factory(3, name="cluster-kill", pool_replicas=2, pool_heartbeat_ms=50,
                     pool_down_after_ms=500, pool_timeout_ms=1000)
    _in_sync(p)
    ids = [n.client().execute_command("CLUSTER", "MYID") for n in p.nodes]
    rc = _client(p)
    keys = [f"kill:{i}" for i in range(1000)]
    assert all(rc.mset_nonatomic({k: k for k in keys}))
    p.kill(1)
    p.wait_state(1, "down")
    with p.nodes[0].raw() as raw:
        nodes = raw.execute("CLUSTER", "NODES").decode()
        line = next(l for l in nodes.splitlines() if l.startswith(ids[1].decode()))
        assert "master,fail" in line and "disconnected" in line, nodes
        # Node 2's range is now served by its replica, node 3.
        assert _masters(p.nodes[0]) == [p.nodes[0].port, p.nodes[2].port, p.nodes[2].port]
        assert "cluster_state:ok" in raw.execute("CLUSTER", "INFO").decode()
    # Every key still reads, through a client that learns the map again.
    rc2 = _client(p)
    assert rc2.mget_nonatomic(keys) == [k.encode() for k in keys]
    p.restart(1)
    _in_sync(p)
    assert p.nodes[1].client().execute_command("CLUSTER", "MYID") == ids[1], "id changed on restart"
    wait_until(lambda: _masters(p.nodes[0]) == [n.port for n in p.nodes], timeout=30,
               what="node 2 serving its range again")
    rc3 = _client(p)
    assert rc3.mget_nonatomic(keys) == [k.encode() for k in keys]
    assert rc3.delete(*keys) == len(keys)
    for c in (rc, rc2, rc3):
        c.close()


def test_a_single_node_is_not_a_cluster(server_factory):
    s = server_factory(name="not-cluster", pool=False)
    with s.raw() as raw:
        assert raw.execute("CLUSTER", "SLOTS").message == "ERR This instance has cluster support disabled"
        assert raw.execute("READONLY").message == "ERR This instance has cluster support disabled"
        assert raw.execute("CLUSTER", "KEYSLOT", "foo") == 12182
    assert s.client().info("cluster")["cluster_enabled"] == 0


def test_announced_addresses_reach_every_node(pool_factory):
    """cluster-announce-ip / -port: the address clients are told to use for
    a node (NAT, containers), in every node's CLUSTER SLOTS / SHARDS / NODES
    and MOVED, learnt from its heartbeats; changed at run time too. Its id
    stays the one derived from pool-nodes."""
    p = pool_factory(3, name="announce", node_args={2: ["--cluster-announce-ip", "10.9.8.7",
                                                        "--cluster-announce-port", "7777"]})
    ids = [n.client().execute_command("CLUSTER", "MYID").decode() for n in p.nodes]

    def third(node):
        with node.raw() as raw:
            return raw.execute("CLUSTER", "SLOTS")[2][2]

    for n in p.nodes:
        wait_until(lambda: third(n) == [b"10.9.8.7", 7777, ids[2].encode(), []], timeout=10,
                   what="node 3's announced address")
    with p.nodes[0].raw() as raw:
        line = raw.execute("CLUSTER", "NODES").decode().splitlines()[2]
        assert line.startswith(f"{ids[2]} 10.9.8.7:7777@"), line
        shards = raw.execute("CLUSTER", "SHARDS")
        member = dict(zip(shards[2][3][0][::2], shards[2][3][0][1::2]))
        assert member[b"ip"] == b"10.9.8.7" and member[b"port"] == 7777
        assert raw.execute("CONFIG", "SET", "cluster-redirects", "yes") == "OK"
        key = SlotMap.of(p).key_on(2, prefix="ann")
        assert raw.execute("GET", key).message == f"MOVED {key_slot(key)} 10.9.8.7:7777"
        assert raw.execute("CONFIG", "SET", "cluster-redirects", "no") == "OK"
    c = p.nodes[2].client()
    assert c.config_set("cluster-announce-ip", "") and c.config_set("cluster-announce-port", "0")
    wait_until(lambda: third(p.nodes[0]) == [HOST.encode(), p.nodes[2].port, ids[2].encode(), []],
               timeout=10, what="node 3's own address again")
    assert p.nodes[2].client().execute_command("CLUSTER", "MYID").decode() == ids[2]
