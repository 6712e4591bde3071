"""A node of a real three-node kvpool pool on loopback fails (each test
starts its own pool with short heartbeat and timeout settings).

- kill -9 a node: the others answer within pool-timeout-ms, report it down,
  read its keys as nil / 0 and refuse writes to them naming it; restarted on
  the same port it is up and used again, the others untouched.
- A stopped (SIGSTOP) node, which holds its connections open, is bounded the
  same way, and serves its data again once continued.
"""

from __future__ import annotations

import signal
import time

import pytest
import redis

from pool_util import SlotMap, local_keys
from util import err

# serial: detection times and request times through a failing pool are bounded.
pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool, pytest.mark.serial]

# ------------------------------------------------------------- node failure

TIMEOUT_MS = 1000
MARGIN_S = 1.0  # a loaded machine; still far below "hangs"
FAST = dict(pool_heartbeat_ms=50, pool_down_after_ms=500, pool_timeout_ms=TIMEOUT_MS)


def _timed(fn, *args):
    t0 = time.monotonic()
    try:
        out = fn(*args)
    except redis.ResponseError as e:
        out = e
    return out, time.monotonic() - t0


def _seed(pool, per_node=10):
    slots = SlotMap.of(pool)
    keys = {n: slots.keys_on(n, per_node, "fail") for n in range(3)}
    values = {k: f"value of {k}".encode() for n in keys for k in keys[n]}
    assert pool.nodes[0].client().mset(values) is True
    return slots, keys, values


def _probe_all(pool, alive, keys, values, dead, rounds=1, bound=TIMEOUT_MS / 1000 + MARGIN_S):
    """Reads and writes through every live node; each must return within `bound`.
    Returns the slowest request time."""
    dead_keys = keys[dead]
    live_keys = [k for n in keys if n != dead for k in keys[n]]
    all_keys = [k for n in sorted(keys) for k in keys[n]]
    slowest = 0.0
    for _ in range(rounds):
        for i in alive:
            c = pool.nodes[i].client(socket_timeout=10)
            probes = [
                (c.ping,),
                (c.mget, all_keys),
                (c.execute_command, "MEXISTS", *all_keys),
                (c.get, dead_keys[0]),
                (c.get, live_keys[0]),
                (c.exists, *all_keys),
                (c.set, live_keys[1], values[live_keys[1]]),
                (c.set, dead_keys[1], "x"),
                (c.dbsize,),
            ]
            for p in probes:
                _out, t = _timed(*p)
                assert t < bound, f"{p[0].__name__} through node {i + 1} took {t:.2f}s (bound {bound:.2f}s)"
                slowest = max(slowest, t)
            c.close()
    return slowest


def test_kill_9_a_node_then_restart_it(pool_factory):
    pool = pool_factory(3, name="kill", **FAST)
    slots, keys, values = _seed(pool)
    pids = [n.proc.pid for n in pool.nodes]
    victim, victim_addr = 2, pool.nodes[2].addr
    all_keys = [k for n in range(3) for k in keys[n]]

    pool.kill(victim)
    t_kill = time.monotonic()
    # Until both survivors report it down, keep asking: every answer is bounded.
    slowest = 0.0
    while True:
        slowest = max(slowest, _probe_all(pool, [0, 1], keys, values, victim))
        if all(pool.states(i)[victim] == "down" for i in (0, 1)):
            break
        assert time.monotonic() - t_kill < 2.0, "POOL NODES did not show the killed node down within 2 s"
    detected = time.monotonic() - t_kill
    assert detected < 2.0, f"down after {detected:.2f}s"
    slowest = max(slowest, _probe_all(pool, [0, 1], keys, values, victim))
    print(f"kill -9: reported down after {detected:.2f}s; slowest request {slowest * 1000:.0f} ms")
    for i in (0, 1):
        view = pool.pool_nodes(i)
        assert [d["state"] for d in view] == ["up", "up", "down"]
        with pool.nodes[i].raw() as c:
            text = c.execute("INFO", "pool").decode()
        assert "pool_nodes_up:2" in text, text

    # Reads: its keys are missing, aligned with the others'.
    for i in (0, 1):
        c = pool.nodes[i].client()
        want = [None if slots.node_of(k) == victim else values[k] for k in all_keys]
        assert c.mget(all_keys) == want
        assert c.execute_command("MEXISTS", *all_keys) == [0 if v is None else 1 for v in want]
        # POOL MEXISTS tells "absent" (0) from "its node is down" (-1).
        assert c.execute_command("POOL", "MEXISTS", keys[0][0], keys[victim][0], "nope-%d" % i) == \
            [1, -1, 0 if slots.node_of("nope-%d" % i) != victim else -1]
        assert c.get(keys[victim][0]) is None
        assert c.exists(keys[victim][0]) == 0
        assert c.ttl(keys[victim][0]) == -2
        assert c.strlen(keys[victim][0]) == 0
        assert c.get(keys[i][0]) == values[keys[i][0]]
        c.close()
    # Writes to its keys: an error naming it. Writes elsewhere work.
    for i in (0, 1):
        raw = pool.nodes[i].raw()
        dk = keys[victim][2]
        for cmd in (("SET", dk, "v"), ("INCR", dk), ("APPEND", dk, "x"), ("EXPIRE", dk, "10"),
                    ("DEL", dk), ("MSET", keys[0][3], "ok", dk, "lost")):
            msg = err(raw, *cmd)
            assert msg.startswith("ERR pool node ") and victim_addr in msg and "unavailable" in msg, (cmd, msg)
        assert raw.execute("GET", keys[0][3]) == b"ok", "MSET stores the keys of live nodes (per key)"
        assert raw.execute("SET", keys[1][4], "live") == "OK"
        raw.close()

    # Restart on the same port: up again and used, the others untouched.
    t0 = time.monotonic()
    pool.restart(victim, wait_up=False)
    pool.wait_state(victim, "up", observers=[0, 1], timeout=10)
    pool.wait_all_up(timeout=10)
    assert time.monotonic() - t0 < 10
    assert [n.proc.pid for n in pool.nodes][:2] == pids[:2], "nodes 1 and 2 were not restarted"
    for i in (0, 1):
        c = pool.nodes[i].client()
        k = keys[victim][5 + i]
        assert c.set(k, f"after restart {i}") is True
        assert pool.nodes[victim].client().get(k) == f"after restart {i}".encode()
        assert c.mget(k, keys[0][0]) == [f"after restart {i}".encode(), values[keys[0][0]]]
        assert c.execute_command("MEXISTS", k) == [1]
        c.close()
    assert local_keys(pool.nodes[victim]) == 2, "the restarted node holds the new writes"
    c = pool.nodes[victim].client()
    assert c.get(keys[0][0]) == values[keys[0][0]], "the restarted node reads the others' keys"
    c.close()


def test_stopped_node_requests_stay_bounded(pool_factory):
    # SIGSTOP keeps the node's sockets open but silent: the worst case for a
    # timeout. Requests that need it return within pool-timeout-ms anyway.
    pool = pool_factory(3, name="stop", **FAST)
    slots, keys, values = _seed(pool)
    victim = 1
    proc = pool.nodes[victim].proc
    proc.send_signal(signal.SIGSTOP)
    try:
        t_stop = time.monotonic()
        slowest = 0.0
        while True:
            slowest = max(slowest, _probe_all(pool, [0, 2], keys, values, victim))
            if all(pool.states(i)[victim] == "down" for i in (0, 2)):
                break
            assert time.monotonic() - t_stop < 3.0, "a stopped node was not reported down within 3 s"
        slowest = max(slowest, _probe_all(pool, [0, 2], keys, values, victim, rounds=2))
        print(f"SIGSTOP: reported down after {time.monotonic() - t_stop:.2f}s; "
              f"slowest request {slowest * 1000:.0f} ms")
        c = pool.nodes[0].client()
        assert c.get(keys[victim][0]) is None
        with pytest.raises(redis.ResponseError, match=f"pool node {pool.nodes[victim].addr} is unavailable"):
            c.set(keys[victim][0], "v")
        c.close()
    finally:
        proc.send_signal(signal.SIGCONT)
    pool.wait_all_up(timeout=10)
    c = pool.nodes[0].client()
    assert c.get(keys[victim][0]) == values[keys[victim][0]], "the stopped node kept its data"
    assert c.set(keys[victim][0], "after") is True
    c.close()
