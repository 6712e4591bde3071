"""Replicas and concurrent writers (pool-replicas 2 on three nodes; issue 13).

- Two writers of the same keys at the same instant through different
  nodes, with MSET, with pipelined SET and with pipelined MULTI/EXEC (SET and
  APPEND under one hash tag): every write of a slot is ordered
  by its primary, so both copies of every key end with the same value and
  version, and every node reads that value.
- Overlapping pauses of two nodes while three writers write through them:
  no acknowledged write is lost.

Split from test_replica_faults.py so that the two run on different
pytest-xdist workers (each test starts its own pool).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import redis

from conftest import Pool, stop_all
from util import wait_until
from replica_util import (  # noqa: F401 (pool: a fixture pytest finds by name)
    BATCH, OPTS, forked, in_sync, info_pool, pool)

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]


def _multi_exec_writes(c, groups: int, tag: str) -> None:
    """Pipelined MULTI/EXEC, one per hash tag: SET {g}:s, APPEND {g}:a.
    APPEND does not commute: copies that ran two writers' transactions in
    different orders end with different values."""
    pipe = c.pipeline(transaction=False)
    for g in range(groups):
        pipe.execute_command("MULTI")
        pipe.execute_command("SET", f"{{race:{g}}}:s", f"{tag}:{g}")
        pipe.execute_command("APPEND", f"{{race:{g}}}:a", f"{tag};")
        pipe.execute_command("EXEC")
    for i, r in enumerate(pipe.execute(raise_on_error=False)):
        if i % 4 == 3:
            assert isinstance(r, list) and len(r) == 2, r


@pytest.mark.parametrize("how", ["mset", "pipelined-set", "multi-exec"])
def test_two_writers_of_the_same_keys_never_fork_them(pool, how):
    p = pool
    groups = 800
    keys = ([f"{{race:{g}}}:{f}" for g in range(groups) for f in "sa"] if how == "multi-exec"
            else [f"race:{i}" for i in range(3000)])
    errors = []

    def writer(node: int, tag: str, barrier: threading.Barrier) -> None:
        try:
            c = p.nodes[node].client()
            barrier.wait()
            if how == "mset":
                c.mset({k: f"{tag}:{k}" for k in keys})
            elif how == "multi-exec":
                _multi_exec_writes(c, groups, tag)
            else:
                pipe = c.pipeline(transaction=False)
                for k in keys:
                    pipe.set(k, f"{tag}:{k}")
                pipe.execute()
        except Exception as e:  # reported below
            errors.append(repr(e))

    clients = [n.client() for n in p.nodes]
    for rnd in range(3):
        barrier = threading.Barrier(2)
        ts = [threading.Thread(target=writer, args=(0, f"a{rnd}", barrier)),
              threading.Thread(target=writer, args=(1, f"b{rnd}", barrier))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not errors, errors
        seen = [c.mget(keys) for c in clients]
        for k, a, b, c in zip(keys, *seen):
            assert a is not None and a == b == c, (k, a, b, c)
            if how == "multi-exec":
                g = k[len("{race:"):k.index("}")]
                if k.endswith(":s"):
                    assert a.decode() in (f"a{rnd}:{g}", f"b{rnd}:{g}"), (k, a)
                else:  # both writers' appends of this round, in one order
                    assert a.decode().endswith((f"a{rnd};b{rnd};", f"b{rnd};a{rnd};")), (k, a)
            else:
                assert a.decode() in (f"a{rnd}:{k}", f"b{rnd}:{k}"), (k, a)
        bad = forked(clients[2], keys)
        assert not bad, f"round {rnd}: {len(bad)} of {len(keys)} keys forked, e.g. {bad[:3]}"


def test_rolling_pauses_lose_no_acknowledged_write():
    """Pauses past pool-down-after-ms that overlap, while three writers
    overwrite keys and write new ones: node a paused, then node b, a
    resumed, then b. a catches up without b (the writes a missed are on b
    only) and merges from it once it is back, while b, catching up from a
    node that missed writes, keeps its own: every key ends with its last
    acknowledged value (or a later one whose reply was an error), through
    every node, on both copies. (Before merges, b dropped its keys and
    refilled from a: the writes a missed were lost.)"""
    p = Pool(3, name="rolling", **{**OPTS, "pool-down-after-ms": 500, "pool-heartbeat-ms": 50})
    try:
        p.start()
        wait_until(lambda: all(in_sync(p, i) for i in range(3)), timeout=60, what="all in sync")
        writers, per_writer, batch = 3, 3000, 50
        acked = [{} for _ in range(writers)]   # key -> last acknowledged value
        later = [{} for _ in range(writers)]   # key -> values sent after it, with an error
        stop = threading.Event()
        counts = [0, 0]  # batches acknowledged, failed

        def writer(w: int) -> None:
            c = p.nodes[w].client(socket_timeout=20)
            seq = 0
            while not stop.is_set():
                for start in range(0, per_writer, batch):
                    if stop.is_set():
                        return
                    seq += 1
                    # Half overwrites, half keys written once (a lost write
                    # of those is never hidden by a later one).
                    vals = {f"roll:{w}:{i}": f"{w}:{seq}:{i}" for i in range(start, start + batch)}
                    vals.update({f"once:{w}:{seq}:{i}": f"{w}:{seq}" for i in range(batch)})
                    try:
                        c.mset(vals)
                    except (redis.RedisError, OSError):
                        counts[1] += 1
                        for k, v in vals.items():
                            later[w].setdefault(k, set()).add(v)
                        continue
                    counts[0] += 1
                    for k, v in vals.items():
                        acked[w][k] = v
                        later[w].pop(k, None)

        ts = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
        for t in ts:
            t.start()
        try:
            # Node a paused (b takes the writes of the slots they share),
            # then b; a resumes and catches up with b still away (serving,
            # in sync, taking writes of those slots alone), then b resumes.
            for a in (0, 1):
                b = a + 1
                time.sleep(0.5)
                os.kill(p.nodes[a].proc.pid, signal.SIGSTOP)
                p.wait_state(a, "down", observers=[n for n in range(3) if n != a])
                time.sleep(1)
                os.kill(p.nodes[b].proc.pid, signal.SIGSTOP)
                time.sleep(1)
                os.kill(p.nodes[a].proc.pid, signal.SIGCONT)
                wait_until(lambda: in_sync(p, a), timeout=30, what=f"node {a + 1} in sync")
                time.sleep(1)
                os.kill(p.nodes[b].proc.pid, signal.SIGCONT)
                wait_until(lambda: in_sync(p, b), timeout=30, what=f"node {b + 1} in sync")
            # Writes go on until enough were acknowledged: with two of three
            # nodes paused nothing is, and under ASan the pauses' catch-ups
            # are slow (CI saw 63 acknowledged, 104 failed by this point).
            wait_until(lambda: counts[0] > 100, timeout=90, what=f"100 batches acknowledged {counts}")
        finally:
            for i in range(3):
                os.kill(p.nodes[i].proc.pid, signal.SIGCONT)
            stop.set()
            for t in ts:
                t.join(60)
        assert counts[0] > 100, counts

        def settled() -> bool:
            infos = [info_pool(p, i) for i in range(3)]
            return all(i.get("pool_sync_state") == "in_sync" and "pool_sync_merge_pending" not in i
                       for i in infos)

        wait_until(settled, timeout=90, what="every node in sync, no merge pending")
        c = [n.client() for n in p.nodes]
        keys = [k for w in range(writers) for k in acked[w]]
        assert len(keys) > writers * per_writer
        for i in range(3):
            bad = []
            for n in range(0, len(keys), BATCH):
                part = keys[n:n + BATCH]
                for k, v in zip(part, c[i].mget(part)):
                    w = int(k.split(":")[1])  # roll:w:i, once:w:seq:i
                    got = v.decode() if v is not None else None
                    if got != acked[w][k] and got not in later[w].get(k, ()):
                        bad.append((k, acked[w][k], got))
            assert not bad, (f"through node {i + 1}: {len(bad)} of {len(keys)} keys lost their "
                             f"last acknowledged write, e.g. {bad[:5]}")
        bad = forked(c[0], keys[::25])
        assert not bad, f"{len(bad)} keys forked, e.g. {bad[:3]}"
    finally:
        stop_all(p.nodes)
