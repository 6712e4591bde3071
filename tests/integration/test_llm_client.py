"""The LLM KV-cache client (clients/python/kvpool): KVPoolStore's batch API
against a real single node and a real three-node pool.

Aligned results with duplicates, missing keys, empty batches, binary keys,
values up to 64 MiB, batches split by batch_size (one round trip), and a
node killed mid-batch: its keys come back as -1 / b"" while the others are
normal, and no exception leaks out.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
import redis

from conftest import fast_failover_pool

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python"))
from kvpool import KVPoolStore  # noqa: E402

pytestmark = pytest.mark.kvpool_only

MB = 1024 * 1024


def value_for(key: bytes, size: int) -> bytes:
    seed = (key * (size // max(1, len(key)) + 1))[:size]
    return bytes((b + i) & 0xFF for i, b in enumerate(seed[:4096])) + seed[4096:]


@pytest.fixture(scope="module")
def pool():
    yield from fast_failover_pool("llm")


@pytest.fixture(params=["single", "pool"])
def store(request, server, pool):
    target = server if request.param == "single" else pool[1]
    s = KVPoolStore(host=target.host, port=target.port, batch_size=64)
    s._r.flushall()
    yield s
    s.close()


def test_put_get_exist_aligned_with_duplicates_and_missing(store):
    keys = [f"page:{i}".encode() for i in range(200)]
    vals = [value_for(k, 1000 + i) for i, k in enumerate(keys)]
    assert store.put_batch(keys, vals) == 0
    query = [keys[5], b"missing:1", keys[5], keys[199], b"missing:2", keys[0]]
    assert store.batch_is_exist(query) == [1, 0, 1, 1, 0, 1]
    got = store.get_batch(query)
    assert got == [vals[5], b"", vals[5], vals[199], b"", vals[0]]
    # More keys than batch_size (64): split, still aligned.
    assert store.batch_is_exist(keys) == [1] * 200
    assert store.get_batch(keys) == vals


def test_empty_batches(store):
    assert store.put_batch([], []) == 0
    assert store.get_batch([]) == []
    assert store.batch_is_exist([]) == []


def test_bad_arguments(store):
    assert store.put_batch([b"a", b"b"], [b"1"]) < 0


def test_binary_keys_and_values(store):
    keys = [bytes([i, 0, 255 - i, 13, 10]) for i in range(256)]
    vals = [bytes(range(256)) * (i % 4) for i in range(256)]
    assert store.put_batch(keys, vals) == 0
    assert store.get_batch(keys) == vals
    assert store.batch_is_exist(keys) == [1] * 256


def test_str_keys(store):
    assert store.put("prefix/α/0", b"v") == 0
    assert store.get("prefix/α/0") == b"v"
    assert store.is_exist("prefix/α/0") == 1


def test_single_key_calls(store):
    assert store.put(b"k", b"value") == 0
    assert store.is_exist(b"k") == 1
    assert store.get(b"k") == b"value"
    assert store.remove(b"k") == 0
    assert store.is_exist(b"k") == 0
    assert store.get(b"k") == b""
    assert store.remove(b"k") == 0  # absent: still fine


def test_large_values_up_to_64mib(store):
    keys = [b"big:1", b"big:2", b"big:64"]
    vals = [value_for(keys[0], 1 * MB), value_for(keys[1], 4 * MB + 17), value_for(keys[2], 64 * MB)]
    assert store.put_batch(keys, vals) == 0
    got = store.get_batch(keys)
    for k, v, g in zip(keys, vals, got):
        assert len(g) == len(v), k
        assert g == v, k


def test_exist_check_does_not_refresh_ttl(store):
    store._r.set(b"ttl", b"v", px=400)
    for _ in range(5):
        assert store.batch_is_exist([b"ttl"]) == [1]
        time.sleep(0.05)
    time.sleep(0.3)
    assert store.batch_is_exist([b"ttl"]) == [0]


def test_batches_are_one_round_trip(server):
    """A batch of 512 keys with batch_size 64 is eight commands in one
    pipeline: the server sees them, but the client waits once."""
    s = KVPoolStore(host=server.host, port=server.port, batch_size=64)
    try:
        keys = [f"rt:{i}".encode() for i in range(512)]
        before = int(s._r.info("stats")["total_commands_processed"])
        assert s.batch_is_exist(keys) == [0] * 512
        after = int(s._r.info("stats")["total_commands_processed"])
        # 8 POOL MEXISTS + the INFO in between
        assert after - before == 9
    finally:
        s.close()


def test_node_killed_mid_batch(pool):
    """Keys of a node killed during the batches read -1 / b"" (and writes to
    it fail with a negative code); the other keys answer normally; nothing
    raises."""
    s = KVPoolStore(host=pool[0].host, port=pool[0].port, batch_size=128)
    try:
        keys = [f"kill:{i}".encode() for i in range(600)]
        vals = [value_for(k, 2048) for k in keys]
        assert s.put_batch(keys, vals) == 0
        owner = {}
        for k in keys:
            owner[k] = s._r.execute_command("POOL", "KEYNODE", k).decode()
        victim = pool[2]
        victim_addr = f"{victim.host}:{victim.port}"
        assert victim_addr in owner.values()

        stop = threading.Event()
        errors = []

        def hammer():
            while not stop.is_set():
                try:
                    s.batch_is_exist(keys)
                    s.get_batch(keys)
                except Exception as e:  # the contract: nothing escapes
                    errors.append(e)

        t = threading.Thread(target=hammer)
        t.start()
        time.sleep(0.2)
        pool.kill(2)
        time.sleep(0.3)
        stop.set()
        t.join(30)
        assert not errors, errors

        # Once the node is known down, its keys read -1 / b"".
        pool.wait_state(2, "down", observers=[0], timeout=10)
        exist = s.batch_is_exist(keys)
        got = s.get_batch(keys)
        for k, e, g, v in zip(keys, exist, got, vals):
            if owner[k] == victim_addr:
                assert e == -1 and g == b"", k
            else:
                assert e == 1 and g == v, k
        lost = [k for k in keys if owner[k] == victim_addr]
        assert s.put_batch(lost[:3], [b"x"] * 3) < 0
        assert s.put_batch([k for k in keys if owner[k] != victim_addr][:3], [b"y"] * 3) == 0
    finally:
        s.close()
        pool.restart(2)
