"""The native client (clients/cpp, kvpool._native) and DistributedStore,
Mooncake Store's API on it, against a real single node and three-node pools.

- batch_put_from / batch_get_into of 0 B .. 4 MiB values, byte-exact, into
  numpy arrays, torch tensors, bytearrays, and values scattered over
  several buffers (_multi_buffers); one result per key: bytes read,
  OBJECT_NOT_FOUND, BUFFER_OVERFLOW (the destination untouched past it).
- batch_is_exist / get_size / remove / remove_all / put_batch (per-key
  results) / get_batch, str and bytes keys, duplicates, empty batches.
- On a pool each key goes straight to its owner: no node forwards a key
  (INFO pool_keys_elsewhere stays put), unlike direct=False.
- A node killed: its keys fail with RPC_FAIL, the others land; with
  pool-replicas 2 the client learns the new map and every key is served.
- The GIL is released during a call; AUTH through a redis:// URL.
"""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
import torch

from conftest import HOST, Pool, fast_failover_pool
from pool_util import SlotMap
from util import wait_until

import kvpool
from kvpool import (BUFFER_OVERFLOW, INVALID_PARAMS, OBJECT_NOT_FOUND, RPC_FAIL,
                    DistributedStore)

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]

KiB, MiB = 1024, 1024 * 1024
SIZES = [0, 1, 100, 4 * KiB, 64 * KiB - 1, 64 * KiB + 3, MiB, 4 * MiB]


def pattern(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=size, dtype=np.uint8)


def _store(node, **kw) -> DistributedStore:
    s = DistributedStore()
    assert s.setup("", "", master_server_addr=f"{node.host}:{node.port}", **kw) == 0, s.last_error()
    return s


@pytest.fixture(scope="module")
def pool():
    yield from fast_failover_pool("native")


@pytest.fixture(params=["single", "pool"])
def store(request, server, pool):
    target = server if request.param == "single" else pool[1]
    s = _store(target)
    s.remove_all()
    s.nodes = 1 if request.param == "single" else 3
    yield s
    s.close()


def test_the_map_names_every_node(store):
    assert store.native.nodes() == store.nodes


def test_put_from_and_get_into_mixed_sizes_byte_exact(store):
    keys = [f"mixed:{i}:{n}" for i, n in enumerate(SIZES * 3)]
    srcs = [pattern(i, n) for i, n in enumerate(SIZES * 3)]
    assert store.batch_put_from(keys, [a.ctypes.data for a in srcs], [a.nbytes for a in srcs]) == [0] * len(keys)
    # Destinations 16 bytes larger, guarded: nothing is written past a value.
    dsts = [np.full(a.nbytes + 16, 0xAB, dtype=np.uint8) for a in srcs]
    got = store.batch_get_into(keys, [d.ctypes.data for d in dsts], [d.nbytes for d in dsts])
    assert got == [a.nbytes for a in srcs]
    for a, d in zip(srcs, dsts):
        assert np.array_equal(d[:a.nbytes], a)
        assert (d[a.nbytes:] == 0xAB).all()
    assert store.batch_get_size(keys) == [a.nbytes for a in srcs]


def test_missing_keys_small_buffers_and_duplicates(store):
    v = pattern(7, 1000)
    assert store.put_from("dup", v.ctypes.data, v.nbytes) == 0
    small = np.full(999, 0x11, dtype=np.uint8)
    big = [np.zeros(1000, dtype=np.uint8) for _ in range(2)]
    keys = ["dup", "absent", "dup", "dup"]
    ptrs = [big[0].ctypes.data, big[1].ctypes.data, small.ctypes.data, big[1].ctypes.data]
    sizes = [1000, 1000, 999, 1000]
    assert store.batch_get_into(keys, ptrs, sizes) == [1000, OBJECT_NOT_FOUND, BUFFER_OVERFLOW, 1000]
    assert (small == 0x11).all(), "a value too large for its buffer must leave it untouched"
    assert np.array_equal(big[0], v) and np.array_equal(big[1], v)
    assert store.batch_is_exist(keys) == [1, 0, 1, 1]
    assert store.get_size("absent") == OBJECT_NOT_FOUND
    assert store.batch_get_into(["a", "b"], [1], [1]) == [INVALID_PARAMS] * 2
    assert store.batch_get_into([], [], []) == [] and store.batch_is_exist([]) == []


def test_multi_buffers_scatter_and_gather(store):
    # A value written from three pieces and read into pieces of other sizes.
    parts = [pattern(1, 5000), pattern(2, 1), pattern(3, 70_000)]
    whole = np.concatenate(parts)
    assert store.batch_put_from_multi_buffers(
        ["multi", "multi2"], [[p.ctypes.data for p in parts], [parts[0].ctypes.data]],
        [[p.nbytes for p in parts], [parts[0].nbytes]]) == [0, 0]
    outs = [np.zeros(n, dtype=np.uint8) for n in (3, 60_000, 20_000)]
    other = np.zeros(6000, dtype=np.uint8)
    got = store.batch_get_into_multi_buffers(
        ["multi", "multi2"], [[o.ctypes.data for o in outs], [other.ctypes.data]],
        [[o.nbytes for o in outs], [other.nbytes]])
    assert got == [whole.nbytes, parts[0].nbytes]
    assert np.array_equal(np.concatenate(outs)[:whole.nbytes], whole)
    assert np.array_equal(other[:5000], parts[0])


def test_torch_tensors_and_buffer_objects(store):
    t = torch.arange(0, 300_000, dtype=torch.float32)
    nbytes = t.numel() * t.element_size()
    assert store.put_from("tensor", t.data_ptr(), nbytes) == 0
    u = torch.empty_like(t)
    assert store.get_into("tensor", u.data_ptr(), nbytes) == nbytes
    assert torch.equal(t, u)
    # Tensors as buffer objects, bf16 too (numpy has no bf16): no copy.
    kv = torch.randn(4, 1024).to(torch.bfloat16)
    assert store.batch_put_from_buffers(["bf16"], [kv]) == [0]
    back = torch.zeros_like(kv)
    assert store.batch_get_into_buffers(["bf16"], [back]) == [kv.numel() * 2]
    assert torch.equal(kv, back)
    # bytes, bytearray, memoryview and numpy values; bytearray into reads.
    vals = [b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview"), np.arange(5, dtype=np.int64)]
    r = store.put_batch(["b0", "b1", "b2", "b3"], vals)
    assert r == 0 and r.results == [0, 0, 0, 0]
    assert store.get_batch(["b0", "b1", "b2", "b3", "nope"]) == [
        b"bytes", b"bytearray", b"memoryview", np.arange(5, dtype=np.int64).tobytes(), b""]
    dst = bytearray(20)
    assert store.batch_get_into_buffers(["b1"], [dst]) == [9] and dst[:9] == b"bytearray"
    assert store.put(b"\x00bin\xff", b"\x01") == 0 and store.get(b"\x00bin\xff") == b"\x01"


def test_remove_and_remove_all(store):
    assert store.put_batch([f"rm:{i}" for i in range(10)], [b"v"] * 10) == 0
    assert store.batch_remove(["rm:0", "rm:1", "rm:nope"]) == [0, 0, OBJECT_NOT_FOUND]
    assert store.remove("rm:0") == OBJECT_NOT_FOUND
    assert store.remove_all() == 8
    assert store.batch_is_exist(["rm:5"]) == [0]


def test_keys_go_straight_to_their_owners(pool):
    """No node sends a key elsewhere for the native client; through one node
    (direct=False, as the pure-Python client does) they do move, so the
    check can fail."""
    def elsewhere():
        return [n.client().info("pool")["pool_keys_elsewhere"] for n in pool.nodes]

    keys = [f"direct:{i}" for i in range(3000)]
    vals = [b"%d" % i for i in range(3000)]
    s = _store(pool[0])
    before = elsewhere()
    assert s.put_batch(keys, vals) == 0
    assert s.get_batch(keys) == vals
    assert s.batch_is_exist(keys) == [1] * len(keys)
    assert elsewhere() == before
    routed = _store(pool[0], direct=False)
    assert routed.get_batch(keys) == vals
    after = elsewhere()
    assert after[0] > before[0] and after[1:] == before[1:]


def test_a_killed_node_fails_only_its_keys(pool):
    m = SlotMap.of(pool)
    keys = [f"kill:{i}" for i in range(300)]
    owner = [m.node_of(k) for k in keys]
    assert set(owner) == {0, 1, 2}
    src = [pattern(i, 10_000) for i in range(len(keys))]
    s = _store(pool[0], timeout_ms=5000)
    assert s.batch_put_from(keys, [a.ctypes.data for a in src], [a.nbytes for a in src]) == [0] * len(keys)
    pool.kill(2)
    try:
        dst = [np.zeros(10_000, dtype=np.uint8) for _ in keys]
        got = s.batch_get_into(keys, [d.ctypes.data for d in dst], [d.nbytes for d in dst])
        for i, g in enumerate(got):
            if owner[i] == 2:
                assert g == RPC_FAIL, (i, g)
            else:
                assert g == 10_000 and np.array_equal(dst[i], src[i]), (i, g)
        put = s.batch_put_from(keys, [a.ctypes.data for a in src], [a.nbytes for a in src])
        assert [p == 0 for p in put] == [o != 2 for o in owner]
        assert all(p < 0 for p, o in zip(put, owner) if o == 2)
    finally:
        pool.restart(2)
    # Back (empty: its keys had one copy): the same client stores and
    # reads every key again.
    wait_until(lambda: s.batch_put_from(keys, [a.ctypes.data for a in src], [a.nbytes for a in src])
               == [0] * len(keys), timeout=20, what="node 3 taking writes")
    assert s.batch_is_exist(keys) == [1] * len(keys)


def test_with_replicas_a_killed_primary_is_replaced_by_its_copy():
    p = Pool(3, "--pool-heartbeat-ms", "50", "--pool-down-after-ms", "500",
             "--pool-timeout-ms", "2000", name="native-r2", **{"pool-replicas": 2})
    try:
        p.start()
        wait_until(lambda: all(n.client().info("pool").get("pool_sync_state") == "in_sync"
                               for n in p.nodes), timeout=60, what="in sync")
        keys = [f"r2:{i}" for i in range(600)]
        vals = [b"v%d" % i for i in range(600)]
        s = _store(p[0], timeout_ms=5000)
        assert s.put_batch(keys, vals) == 0
        p.kill(1)
        p.wait_state(1, "down", observers=[0, 2], timeout=10)
        # The map the client holds names the dead node: it learns the new
        # one (the range served by its copy) and reads every key.
        assert s.get_batch(keys) == vals
        assert s.native.nodes() == 2
    finally:
        p.stop()


def test_the_gil_is_released_during_io():
    """The node here is a Python thread: it can answer only if the native
    call lets go of the GIL while it waits. Held, the call would time out
    (RPC_FAIL) instead of reading the value: no timing involved."""
    lsock = socket.socket()
    lsock.bind((HOST, 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]

    def serve(conn):
        buf = b""
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                # Both commands this client sends have two arguments: five
                # CRLF-ended lines each.
                while buf.count(b"\r\n") >= 5:
                    if buf.startswith(b"*2\r\n$7\r\nCLUSTER"):
                        conn.sendall(b"-ERR This instance has cluster support disabled\r\n")
                    elif buf.startswith(b"*2\r\n$4\r\nMGET"):
                        conn.sendall(b"*1\r\n$5\r\nhello\r\n")
                    else:
                        conn.sendall(b"-ERR unexpected\r\n")
                    buf = b""

    def node():
        # The map is learnt on one connection, the batch runs on another.
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=node, daemon=True).start()
    s = DistributedStore()
    assert s.setup("", "", master_server_addr=f"{HOST}:{port}", timeout_ms=3000) == 0
    dst = bytearray(8)
    assert s.batch_get_into_buffers(["k"], [dst]) == [5]
    assert dst[:5] == b"hello"
    s.close()
    lsock.close()


def test_auth_through_a_url(server_factory):
    srv = server_factory("--requirepass", "s3cret", pool=False)
    s = DistributedStore()
    assert s.setup("", "", master_server_addr=f"redis://:s3cret@{srv.host}:{srv.port}") == 0
    assert s.put("k", b"v") == 0 and s.get("k") == b"v"
    bad = DistributedStore()
    assert bad.setup("", "", master_server_addr=f"redis://:wrong@{srv.host}:{srv.port}") == RPC_FAIL
    assert bad.setup("", "", master_server_addr=f"{srv.host}:1") == RPC_FAIL
    assert kvpool.MooncakeDistributedStore is DistributedStore
