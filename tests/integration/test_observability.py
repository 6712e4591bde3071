"""INFO commandstats / errorstats / latencystats and SLOWLOG as Redis 7
reports them, read with redis-py's own parsers (issue 18). Runs against
redis-server too (KVPOOL_REFERENCE=redis): the same assertions hold.
"""

import re

import pytest
import redis

from conftest import SERVER_BINARY, USE_REDIS


def test_commandstats_errorstats_latencystats(server_factory):
    srv = server_factory(pool=False)
    c = srv.client()
    c.config_resetstat()
    c.set("k", "v")
    for _ in range(3):
        c.get("k")
    try:
        c.execute_command("INCR", "k")
    except redis.ResponseError:
        pass
    try:
        c.execute_command("GET")
    except redis.ResponseError:
        pass
    cs = c.info("commandstats")
    assert cs["cmdstat_get"]["calls"] == 3
    assert cs["cmdstat_get"]["rejected_calls"] == 1
    assert cs["cmdstat_get"]["failed_calls"] == 0
    assert cs["cmdstat_incr"]["failed_calls"] == 1
    assert cs["cmdstat_set"]["calls"] == 1
    assert cs["cmdstat_set"]["usec"] >= 0 and "usec_per_call" in cs["cmdstat_set"]
    # redis-py leaves a lone "count=N" unparsed.
    assert c.info("errorstats")["errorstat_ERR"] in ("count=2", {"count": 2})
    assert c.info("stats")["total_error_replies"] == 2
    lat = c.info("latencystats")["latency_percentiles_usec_get"]
    assert set(lat) == {"p50", "p99", "p99.9"} and 0 <= lat["p50"] <= lat["p99"] <= lat["p99.9"]
    assert "cmdstat_get" not in c.info(), "commandstats is not a default section"
    assert "errorstat_ERR" in c.info()
    c.config_resetstat()
    assert "cmdstat_get" not in c.info("commandstats")


def test_slowlog(server_factory):
    srv = server_factory(pool=False)
    c = srv.client()
    c.config_set("slowlog-log-slower-than", 0)
    c.config_set("slowlog-max-len", 5)
    c.slowlog_reset()
    c.client_setname("watcher")
    c.set("key", "x" * 300)
    entries = c.slowlog_get(10)
    assert 1 <= len(entries) <= 5
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True), "newest first"
    set_entry = next(e for e in entries if e["command"].startswith(b"SET key"))
    assert set_entry["command"].endswith(b"... (172 more bytes)")
    assert set_entry["duration"] >= 0 and set_entry["start_time"] > 1_700_000_000
    # redis-py 4.3 drops the last two fields: read them raw.
    raw = c.execute_command("SLOWLOG", "GET", "10")
    mine = next(e for e in raw if e[0] == set_entry["id"])
    assert mine[4].startswith(b"127.0.0.1:") and mine[5] == b"watcher"
    for i in range(10):
        c.get(f"k{i}")
    assert c.slowlog_len() == 5
    c.config_set("slowlog-log-slower-than", -1)
    c.slowlog_reset()
    c.get("k")
    assert c.slowlog_len() == 0


def test_latency_monitor_and_histogram(server_factory):
    # redis-server allows DEBUG only when told to.
    srv = server_factory(*(["--enable-debug-command", "yes"] if USE_REDIS else []), pool=False)
    c = srv.client()
    c.config_set("latency-monitor-threshold", 10)
    c.execute_command("LATENCY", "RESET")
    c.execute_command("DEBUG", "SLEEP", "0.02")
    latest = c.execute_command("LATENCY", "LATEST")
    assert len(latest) == 1
    name, when, last_ms, max_ms = latest[0]
    assert name == b"command" and when > 1_700_000_000 and 20 <= last_ms <= max_ms
    hist = c.execute_command("LATENCY", "HISTORY", "command")
    assert len(hist) == 1 and hist[0][1] == last_ms
    for _ in range(10):
        c.set("k", "v")
    reply = c.execute_command("LATENCY", "HISTOGRAM", "set")
    # RESP2: [name, [b"calls", n, b"histogram_usec", [bound, cumulative, ...]]]
    assert reply[0] == b"set"
    fields = dict(zip(reply[1][::2], reply[1][1::2]))
    assert fields[b"calls"] == 10
    pairs = fields[b"histogram_usec"]
    bounds, counts = pairs[::2], pairs[1::2]
    assert bounds == sorted(bounds) and all(b & (b - 1) == 0 for b in bounds), bounds
    assert counts == sorted(counts) and counts[-1] == 10
    assert c.execute_command("LATENCY", "RESET", "command") == 1
    assert c.execute_command("LATENCY", "LATEST") == []


def test_monitor_streams_every_command(server_factory):
    srv = server_factory(pool=False)
    mon = srv.raw()
    assert mon.execute("MONITOR") == "OK"
    c = srv.client()
    c.set("k", b"a\"b\n\x01")
    c.get("k")
    c.execute_command("SELECT", 2)
    c.execute_command("PING")
    lines = []
    while len(lines) < 4:
        lines.append(mon._readline().decode())
    pat = re.compile(r'^\+\d+\.\d{6} \[(\d+) 127\.0\.0\.1:\d+\] (.*)$')
    parsed = [pat.match(l) for l in lines]
    assert all(parsed), lines
    # As the client sent them (redis-py: upper case).
    assert [m.group(2) for m in parsed] == ['"SET" "k" "a\\"b\\n\\x01"', '"GET" "k"', '"SELECT" "2"', '"PING"'], lines
    # The db after the command ran, as Redis shows it.
    assert [m.group(1) for m in parsed] == ["0", "0", "2", "2"]
    mon.close()


def _instrumented() -> bool:
    """True for a server under ASan or TSan: its RSS holds shadow memory."""
    if USE_REDIS:
        return False
    with open(SERVER_BINARY, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def test_used_memory_counts_what_the_node_holds(server_factory):
    """used_memory is the allocator's bytes in use, not the items alone: an
    empty node holds its heap (528 B was reported once, a fragmentation
    ratio of 17,594), and with data RSS / used_memory is near 1."""
    srv = server_factory("--maxmemory", "256mb", pool=False)
    c = srv.client()
    m = c.info("memory")
    assert m["used_memory"] >= 256 * 1024, m
    assert m["used_memory"] == m["used_memory_overhead"] + m["used_memory_dataset"], m
    empty = m["used_memory"]
    value = b"v" * (1 << 20)
    for i in range(32):
        c.set(f"big:{i}", value)
    m = c.info("memory")
    assert m["used_memory"] - empty >= 32 << 20, m
    assert m["used_memory_dataset"] >= 32 << 20, m
    stats = c.memory_stats()
    assert stats["total.allocated"] >= m["used_memory"] - (1 << 20), stats
    if not _instrumented():
        assert 0.7 <= m["mem_fragmentation_ratio"] <= 2.0, m


def test_memory_purge_and_malloc_stats(server_factory):
    """MEMORY PURGE answers OK (Redis asks jemalloc to purge; kvpool asks
    glibc to give its free pages back) and takes no argument; MEMORY
    MALLOC-STATS answers the allocator's figures as text; HELP lists both."""
    srv = server_factory(pool=False)
    c = srv.client()
    assert c.execute_command("MEMORY", "PURGE") in (b"OK", "OK", True)
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        c.execute_command("MEMORY", "PURGE", "now")
    text = c.execute_command("MEMORY", "MALLOC-STATS")
    assert isinstance(text, (bytes, str)) and len(text) > 0
    lines = [x if isinstance(x, bytes) else x.encode() for x in c.execute_command("MEMORY", "HELP")]
    assert any(x.startswith(b"PURGE") for x in lines) and any(x.startswith(b"MALLOC-STATS") for x in lines)
