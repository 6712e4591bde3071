"""Replicas under double faults (pool-replicas 2 on three nodes; issue 13).

- Pause node 1 (SIGSTOP past pool-down-after-ms), kill -9 node 3 and
  restart it empty, resume node 1: the keys whose only copies were on nodes
  3 and 1 must survive. The restarted node may not catch up "from no one"
  while node 1 (which was in sync when last heard of) may hold them: it
  waits for it (INFO says so), and meanwhile writes of those slots are
  refused with an error naming them, reads of them miss, POOL NODES and
  INFO count them unserved. Once node 1 is back, everything converges by
  itself: every key reads back through every node, and POOL COPIES shows
  both copies of them in sync and equal.
- A copy paused again while it catches up, keys deleted while a copy was
  away, and a read that no copy answered (an error, not a local miss).

Concurrent writers and overlapping pauses are in test_replica_writers.py.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from conftest import Pool, stop_all
from pool_util import SlotMap, copies, kvhash64
from util import wait_until
from replica_util import (  # noqa: F401 (pool: a fixture pytest finds by name)
    BATCH, OPTS, forked, in_sync, info_pool, pool, read_all)

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]


def test_pause_one_copy_restart_the_other_loses_nothing(pool):
    p = pool
    c = [n.client() for n in p.nodes]
    expected = {f"df:{i}": f"v:{i}" for i in range(20_000)}
    keys = list(expected)
    for n in range(0, len(keys), BATCH):
        assert c[(n // BATCH) % 3].mset({k: expected[k] for k in keys[n:n + BATCH]})
    # Keys whose copies are node 3 (primary) and node 1 (its replica).
    slots = SlotMap.of(p)
    shared = [k for k in keys if slots.node_of(k) == 2]
    assert len(shared) > 5000

    os.kill(p.nodes[0].proc.pid, signal.SIGSTOP)
    try:
        p.wait_state(0, "down", observers=[1, 2], timeout=10)
        p.kill(2)
        p.nodes[2].restart_same_port()
        # It hears from node 2 that node 1 was in sync: it waits for it
        # rather than catching up from no one.
        wait_until(lambda: p.nodes[0].addr in info_pool(p, 2).get("pool_sync_waiting_for", ""),
                   timeout=30, what="node 3 waiting for node 1")
        # Longer than the old catch-up waited before giving up (~1.2 s).
        time.sleep(3)
        info = info_pool(p, 2)
        assert info["pool_sync_state"] == "syncing", info
        assert info["pool_slots_unserved"] == slots.owner.count(2), info
        # Its slots are unserved: a write is refused, naming them.
        with pytest.raises(redis.ResponseError, match=r"no copy of slots \S+ is in sync"):
            c[1].set(shared[0], "during")
        with pytest.raises(redis.ResponseError, match=r"no copy of slots \S+ is in sync"):
            c[1].mset({shared[1]: "during"})
        with pytest.raises(redis.ResponseError,
                           match=r"no copy of slots \S+ is in sync .*: 1 of 1 keys were not deleted"):
            c[1].delete(shared[2])
        # Its keys read as misses (the documented miss), never a stale value.
        assert c[1].mget(shared[:3]) == [None] * 3
        assert "unserved_slots=" in c[1].execute_command("POOL", "NODES").decode()
        # The other slots are served as usual.
        other = next(k for k in keys if slots.node_of(k) == 1)
        assert c[1].set(other, "during")
        expected[other] = "during"
    finally:
        os.kill(p.nodes[0].proc.pid, signal.SIGCONT)

    wait_until(lambda: all(in_sync(p, i) for i in range(3)), timeout=60, what="all in sync")
    p.wait_all_up()
    c = [n.client() for n in p.nodes]
    for i in range(3):
        lost = read_all([c[i]], expected)
        assert not lost, f"through node {i + 1}: {len(lost)} acknowledged keys lost, e.g. {lost[:5]}"
    assert info_pool(p, 0)["pool_slots_unserved"] == 0
    # Both copies of the shared keys are in sync and hold the same value.
    for k in shared[:200]:
        got = copies(c[1], k)
        want = kvhash64(expected[k].encode())
        assert [e[0] for e in got] == [p.nodes[2].addr, p.nodes[0].addr], got
        assert all(e[1] == "in-sync" and e[3] == want for e in got), (k, got)
    assert info_pool(p, 2)["pool_sync_keys_pulled"] > 0
    # And node 1 alone (node 3's copy was filled from it) holds them all.
    p.kill(0)
    p.wait_state(0, "down", observers=[1, 2], timeout=10)
    lost = read_all([c[1], c[2]], expected)
    assert not lost, f"{len(lost)} keys lost once node 1 was killed, e.g. {lost[:5]}"


def test_a_copy_paused_again_while_catching_up_misses_no_write(pool):
    """A copy that is paused past pool-down-after-ms in the middle of a
    catch-up, after a write of a key was relayed to it, must not keep that
    value: its peer took a newer write of the key alone (acknowledged)
    meanwhile. (It did: the catch-up went on, its scan skipped the key it had
    been relayed, and the newer value lived on one copy only. Found by the
    rolling pauses under TSan.)"""
    p = pool
    slots = SlotMap.of(p)
    key = slots.key_on(0, "midsync")  # copies: node 1 (primary), node 2
    c0 = p.nodes[0].client()
    assert c0.set(key, "v1")

    def pause(i: int) -> None:
        os.kill(p.nodes[i].proc.pid, signal.SIGSTOP)
        p.wait_state(i, "down", observers=[0, 2], timeout=10)
        time.sleep(0.5)  # past pool-down-after-ms plus a heartbeat: it sees its stall

    pause(1)
    os.kill(p.nodes[1].proc.pid, signal.SIGCONT)
    # Back, it catches up again; the scan waits pool-timeout-ms (3 s) first.
    p.wait_state(1, "syncing", observers=[0], timeout=10)
    wait_until(lambda: p.states(1)[0] == "up", timeout=10, what="node 2 seeing node 1")
    assert c0.set(key, "v2")  # relayed to node 2 while it catches up
    pause(1)
    assert c0.set(key, "v3")  # node 1 alone: acknowledged
    os.kill(p.nodes[1].proc.pid, signal.SIGCONT)
    wait_until(lambda: in_sync(p, 1), timeout=30, what="node 2 in sync")
    wait_until(lambda: not forked(c0, [key]), timeout=10,
               what=f"both copies of {key} equal: {copies(c0, key)}")
    want = kvhash64(b"v3")
    assert all(e[3] == want for e in copies(c0, key)), copies(c0, key)
    p.kill(0)
    p.wait_state(0, "down", observers=[1, 2], timeout=10)
    assert p.nodes[1].client().get(key) == b"v3"


def test_keys_deleted_while_a_copy_was_away_stay_deleted(pool):
    """Deletes under the double pause of test_rolling_pauses: keys deleted
    on node 2 while node 1 was paused (node 1 then catches up from no one,
    still holding them), and keys deleted on node 1 while node 2 was paused
    (node 2 still holds them, and node 1 merges from it). None comes back:
    each side remembers its deletes (tombstones) and sends them to the other
    once it is back; the keys not deleted are all there."""
    p = pool
    slots = SlotMap.of(p)
    keys = [k for k in (f"del:{i}" for i in range(3000)) if slots.node_of(k) == 0][:300]
    assert len(keys) == 300  # copies: node 1 (primary) and node 2
    c2 = p.nodes[2].client()
    assert c2.mset({k: "v" for k in keys})

    def pause(i: int, observers: list) -> None:
        os.kill(p.nodes[i].proc.pid, signal.SIGSTOP)
        p.wait_state(i, "down", observers=observers, timeout=10)

    pause(0, [1, 2])
    assert c2.delete(*keys[:100]) == 100  # node 2 alone
    pause(1, [2])
    os.kill(p.nodes[0].proc.pid, signal.SIGCONT)
    wait_until(lambda: in_sync(p, 0) and p.states(2)[0] == "up", timeout=30,
               what="node 1 in sync, as node 3 sees it")
    assert p.nodes[1].addr in info_pool(p, 0).get("pool_sync_merge_pending", "")

    def delete_rest() -> bool:
        try:
            c2.delete(*keys[100:200])  # node 1 alone
            return True
        except redis.ResponseError:  # node 1 caught up again meanwhile: nothing deleted
            return False

    wait_until(delete_rest, timeout=30, what="the second delete")
    os.kill(p.nodes[1].proc.pid, signal.SIGCONT)

    def settled() -> bool:
        infos = [info_pool(p, i) for i in range(3)]
        return all(i.get("pool_sync_state") == "in_sync" and "pool_sync_merge_pending" not in i
                   for i in infos)

    wait_until(settled, timeout=60, what="every node in sync, no merge pending")

    def back() -> list:
        return [k for k in keys[:200] if any(e[2] is not None for e in copies(c2, k))]

    wait_until(lambda: not back(), timeout=10, what=f"deleted keys gone from both copies: {back()[:5]}")
    for i in range(3):
        got = p.nodes[i].client().mget(keys)
        assert got[:200] == [None] * 200, f"through node {i + 1}: deleted keys came back"
        assert got[200:] == [b"v"] * 100, f"through node {i + 1}: kept keys lost"
    assert not forked(c2, keys[200:])


def test_a_read_no_copy_answered_is_an_error_not_a_local_miss():
    """Both copies of a key paused (not yet counted down): a read through the
    third node, which holds no copy, times out on each copy and answers an
    error. It used to fall back to the third node's own store and answer as
    if the key were missing (GETRANGE "" and STRLEN 0 for a key that holds
    a value): a wrong answer, not an error."""
    p = Pool(3, name="nocopy", **{**OPTS, "pool-down-after-ms": 10000, "pool-timeout-ms": 500})
    try:
        p.start()
        wait_until(lambda: all(in_sync(p, i) for i in range(3)), timeout=60, what="all in sync")
        slots = SlotMap.of(p)
        key = next(f"nc:{i}" for i in range(1000) if slots.node_of(f"nc:{i}") == 0)
        c = p.nodes[2].client()
        assert c.set(key, "hello")
        assert c.getrange(key, 0, -1) == b"hello"
        for i in (0, 1):
            os.kill(p.nodes[i].proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(redis.ResponseError):
                c.getrange(key, 0, -1)
            with pytest.raises(redis.ResponseError):
                c.strlen(key)
        finally:
            for i in (0, 1):
                os.kill(p.nodes[i].proc.pid, signal.SIGCONT)
        wait_until(lambda: c.getrange(key, 0, -1) == b"hello", timeout=30, what="read back")
        assert c.strlen(key) == 5
    finally:
        stop_all(p.nodes)
