"""Keyspace commands: DEL UNLINK EXISTS MEXISTS TYPE EXPIRE PEXPIRE EXPIREAT
PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST KEYS SCAN RANDOMKEY RENAME
RENAMENX DBSIZE FLUSHDB FLUSHALL SELECT, and key expiry.

Sleep-based expiry tests use TTLs of ~100 ms and poll with a deadline, so
they are quick and tolerant of a loaded machine.
"""

import time

import pytest

from util import NOT_INT, SYNTAX, err, scan_all, wait_until, wrong_args

# ---------------------------------------------------------------- DEL UNLINK


@pytest.mark.parametrize("cmd", ["DEL", "UNLINK"])
def test_del_unlink(r, cmd):
    r.mset({"a": "1", "b": "2", "c": "3"})
    assert r.execute_command(cmd, "a", "missing", "b") == 2
    assert r.exists("a", "b", "c") == 1
    # A key named twice is deleted (and counted) once.
    assert r.execute_command(cmd, "c", "c") == 1
    assert r.execute_command(cmd, "c") == 0
    assert r.dbsize() == 0


def test_del_arity(raw):
    assert err(raw, "DEL") == wrong_args("del")
    assert err(raw, "UNLINK") == wrong_args("unlink")


# ---------------------------------------------------------------- EXISTS TYPE

def test_exists_counts_duplicates(r):
    r.mset({"a": "1", "b": ""})
    assert r.exists("a") == 1
    assert r.exists("missing") == 0
    assert r.exists("a", "a", "a") == 3
    assert r.exists("a", "b", "missing", "a") == 3


def test_exists_arity(raw):
    assert err(raw, "EXISTS") == wrong_args("exists")


def test_type(r, raw):
    r.set("s", "v")
    assert r.type("s") == b"string"
    assert r.type("missing") == b"none"
    # TYPE answers with a simple string, not a bulk string.
    assert raw.execute("TYPE", "s") == "string"
    assert raw.last_raw == b"+string\r\n"
    assert raw.execute("TYPE", "missing") == "none"
    assert err(raw, "TYPE") == wrong_args("type")


# -------------------------------------------------------------------- MEXISTS

@pytest.mark.kvpool_only
def test_mexists_aligned_with_duplicates(r, raw):
    r.mset({"a": "1", "b": "", "c": "3"})
    assert r.execute_command("MEXISTS", "a", "x", "b", "a", "y", "c", "a") == [1, 0, 1, 1, 0, 1, 1]
    assert r.execute_command("MEXISTS", "missing") == [0]
    # Wire format: an array of integers (not booleans, not a count).
    assert raw.execute("MEXISTS", "a", "nope") == [1, 0]
    assert raw.last_raw == b"*2\r\n:1\r\n:0\r\n"


@pytest.mark.kvpool_only
def test_mexists_case_insensitive_and_arity(raw):
    raw.execute("SET", "k", "v")
    assert raw.execute("mexists", "k") == [1]
    assert raw.execute("MExists", "k", "k") == [1, 1]
    assert err(raw, "MEXISTS") == wrong_args("mexists")


@pytest.mark.kvpool_only
def test_mexists_binary_keys(r):
    keys = [b"", b"\x00", b"a\r\nb", bytes(range(256)), b"\xff" * 1000]
    for i, k in enumerate(keys):
        if i % 2 == 0:
            r.set(k, b"v")
    assert r.execute_command("MEXISTS", *keys) == [1, 0, 1, 0, 1]


@pytest.mark.kvpool_only
def test_mexists_large_batch(r):
    # The HiCache/LMCache pattern: "which of these 512 blocks exist?"
    n = 512
    present = {i for i in range(n) if i % 3 == 0 or i % 7 == 0}
    r.mset({f"block:{i:04d}": b"x" * 64 for i in present})
    keys = [f"block:{i:04d}" for i in range(n)]
    assert r.execute_command("MEXISTS", *keys) == [1 if i in present else 0 for i in range(n)]
    # Same answer as EXISTS key by key, and as MGET's non-nil positions.
    assert sum(r.execute_command("MEXISTS", *keys)) == r.exists(*keys)
    assert [int(v is not None) for v in r.mget(keys)] == r.execute_command("MEXISTS", *keys)


@pytest.mark.kvpool_only
def test_mexists_expired_keys_are_zero(r):
    r.set("short", "v", px=80)
    r.set("long", "v", ex=100)
    r.set("plain", "v")
    assert r.execute_command("MEXISTS", "short", "long", "plain") == [1, 1, 1]
    wait_until(lambda: r.execute_command("MEXISTS", "short", "long", "plain") == [0, 1, 1],
               timeout=3, what="short key to expire")


@pytest.mark.kvpool_only
def test_mexists_respects_select(r):
    r.set("k", "v")
    r.execute_command("SELECT", "5")
    assert r.execute_command("MEXISTS", "k") == [0]
    r.set("k5", "v")
    assert r.execute_command("MEXISTS", "k", "k5") == [0, 1]
    r.execute_command("SELECT", "0")
    assert r.execute_command("MEXISTS", "k", "k5") == [1, 0]


@pytest.mark.kvpool_only
def test_mexists_in_transaction_and_resp3(r, r3):
    # One {hashtag}: the keys of a transaction share a node in a pool.
    r.set("{t}a", "1")
    p = r.pipeline(transaction=True)
    p.execute_command("MEXISTS", "{t}a", "{t}b")
    p.set("{t}b", "2")
    p.execute_command("MEXISTS", "{t}a", "{t}b")
    assert p.execute() == [[1, 0], True, [1, 1]]
    assert r3.execute("MEXISTS", "{t}a", "zz", "{t}b") == [1, 0, 1]
    assert r3.last_raw == b"*3\r\n:1\r\n:0\r\n:1\r\n"


# ------------------------------------------------------- EXPIRE and friends

def test_ttl_pttl_states(r):
    r.set("p", "v")
    assert r.ttl("p") == -1
    assert r.pttl("p") == -1
    assert r.ttl("missing") == -2
    assert r.pttl("missing") == -2
    r.set("t", "v", ex=100)
    assert 98 <= r.ttl("t") <= 100
    assert 98_000 <= r.pttl("t") <= 100_000


def test_expire_pexpire(r):
    r.set("k", "v")
    assert r.expire("k", 100) is True
    assert 98 <= r.ttl("k") <= 100
    assert r.pexpire("k", 50_000) is True
    assert 48_000 <= r.pttl("k") <= 50_000
    assert r.expire("missing", 100) is False
    assert r.pexpire("missing", 100) is False


def test_expireat_pexpireat(r):
    now = int(time.time())
    r.set("k", "v")
    assert r.expireat("k", now + 100) is True
    assert 98 <= r.ttl("k") <= 100
    assert r.expiretime("k") == now + 100
    assert r.pexpireat("k", (now + 200) * 1000) is True
    assert 197_000 <= r.pttl("k") <= 200_000
    assert r.execute_command("PEXPIRETIME", "k") == (now + 200) * 1000
    assert r.expireat("missing", now + 100) is False


def test_expire_in_the_past_deletes(r):
    r.mset({"a": "1", "b": "1", "c": "1", "d": "1", "e": "1"})
    assert r.expire("a", 0) is True
    assert r.expire("b", -10) is True
    assert r.pexpire("c", -1) is True
    assert r.expireat("d", 1) is True
    assert r.pexpireat("e", 1000) is True
    assert r.exists("a", "b", "c", "d", "e") == 0


def test_expire_nx_xx_gt_lt(r):
    r.set("k", "v")
    # No TTL yet: XX fails, GT fails (no TTL counts as infinite), LT succeeds.
    assert r.expire("k", 100, xx=True) is False
    assert r.expire("k", 100, gt=True) is False
    assert r.ttl("k") == -1
    assert r.expire("k", 100, nx=True) is True
    assert r.expire("k", 200, nx=True) is False
    assert 98 <= r.ttl("k") <= 100
    assert r.expire("k", 200, xx=True) is True
    assert 198 <= r.ttl("k") <= 200
    assert r.expire("k", 100, gt=True) is False
    assert r.expire("k", 300, gt=True) is True
    assert 298 <= r.ttl("k") <= 300
    assert r.expire("k", 400, lt=True) is False
    assert r.expire("k", 50, lt=True) is True
    assert 48 <= r.ttl("k") <= 50
    r.persist("k")
    assert r.expire("k", 10, lt=True) is True
    assert 8 <= r.ttl("k") <= 10


def test_pexpire_expireat_options(r):
    now = int(time.time())
    r.set("k", "v")
    assert r.pexpire("k", 100_000, xx=True) is False
    assert r.pexpire("k", 100_000, nx=True) is True
    assert r.pexpire("k", 200_000, gt=True) is True
    assert r.expireat("k", now + 50, gt=True) is False
    assert r.expireat("k", now + 50, lt=True) is True
    assert r.pexpireat("k", (now + 60) * 1000, nx=True) is False
    assert r.pexpireat("k", (now + 60) * 1000, xx=True) is True
    assert r.execute_command("PEXPIRETIME", "k") == (now + 60) * 1000


@pytest.mark.parametrize("cmd", ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"])
def test_expire_errors(raw, cmd):
    raw.execute("SET", "k", "v")
    name = cmd.lower()
    assert err(raw, cmd, "k", "abc") == NOT_INT
    assert err(raw, cmd, "k", "1.5") == NOT_INT
    assert err(raw, cmd, "k", "100", "NX", "XX") == \
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    assert err(raw, cmd, "k", "100", "NX", "GT") == \
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    assert err(raw, cmd, "k", "100", "GT", "LT") == "ERR GT and LT options at the same time are not compatible"
    assert err(raw, cmd, "k", "100", "FOO") == "ERR Unsupported option FOO"
    if cmd != "PEXPIREAT":  # an absolute ms time of INT64_MAX does not overflow
        assert err(raw, cmd, "k", str(2**63 - 1)) == f"ERR invalid expire time in '{name}' command"
    assert err(raw, cmd, "k") == wrong_args(name)
    assert raw.execute("TTL", "k") == -1


def test_expiretime_pexpiretime(r):
    r.set("p", "v")
    assert r.expiretime("p") == -1
    assert r.execute_command("PEXPIRETIME", "p") == -1
    assert r.expiretime("missing") == -2
    assert r.execute_command("PEXPIRETIME", "missing") == -2
    r.set("t", "v", px=100_000)
    now_ms = time.time() * 1000
    pat = r.execute_command("PEXPIRETIME", "t")
    assert abs(pat - (now_ms + 100_000)) < 2_000
    assert r.expiretime("t") in (pat // 1000, (pat + 999) // 1000)


def test_persist(r):
    r.set("k", "v", ex=100)
    assert r.persist("k") is True
    assert r.ttl("k") == -1
    assert r.persist("k") is False
    assert r.persist("missing") is False
    assert r.get("k") == b"v"


def test_keys_expire_after_ttl(r):
    r.set("px", "v", px=100)
    r.psetex("psetex", 100, "v")
    r.set("ex", "v", ex=1)
    r.set("keep", "v", ex=100)
    r.set("getex", "v")
    r.getex("getex", px=100)
    r.set("pexpire", "v")
    r.pexpire("pexpire", 100)
    r.set("pexpireat", "v")
    r.pexpireat("pexpireat", int(time.time() * 1000) + 100)
    assert r.dbsize() == 7
    short = ["px", "psetex", "getex", "pexpire", "pexpireat"]
    wait_until(lambda: r.exists(*short) == 0, timeout=3, what="100 ms keys to expire")
    assert r.mget(short) == [None] * 5
    assert r.ttl("px") == -2
    assert r.exists("keep") == 1
    # The 1 s key: still there shortly after, gone within the tolerance.
    wait_until(lambda: r.exists("ex") == 0, timeout=4, what="1 s key to expire")
    assert r.get("keep") == b"v"


def test_expired_key_is_invisible_everywhere(r):
    r.set("gone", "v", px=50)
    r.set("stay", "v")
    time.sleep(0.15)
    assert r.get("gone") is None
    assert r.exists("gone") == 0
    assert r.type("gone") == b"none"
    assert r.ttl("gone") == -2
    assert r.strlen("gone") == 0
    assert r.keys("*") == [b"stay"]
    assert r.dbsize() in (1, 2)  # DBSIZE may still count an expired, not yet reclaimed key
    assert r.setnx("gone", "new") is True
    assert r.get("gone") == b"new"
    assert r.ttl("gone") == -1


def test_ttl_precision(r):
    r.set("k", "v", px=1500)
    ttl = r.ttl("k")
    assert ttl in (1, 2)
    pttl = r.pttl("k")
    assert 1000 < pttl <= 1500


# ----------------------------------------------------------------------- KEYS

GLOB_KEYS = [b"hello", b"hallo", b"hxllo", b"hllo", b"heeeello", b"h^llo",
             b"a*b", b"axb", b"a?b", b"a[b", b"a\\b", b"user:1", b"user:2", b"user:10"]


@pytest.mark.parametrize("pattern,expected", [
    ("*", GLOB_KEYS),
    ("h?llo", [b"hello", b"hallo", b"hxllo", b"h^llo"]),
    ("h*llo", [b"hello", b"hallo", b"hxllo", b"hllo", b"heeeello", b"h^llo"]),
    ("h[ae]llo", [b"hello", b"hallo"]),
    ("h[^e]llo", [b"hallo", b"hxllo", b"h^llo"]),
    ("h[a-c]llo", [b"hallo"]),
    ("h[a-e]llo", [b"hello", b"hallo"]),
    ("a\\*b", [b"a*b"]),
    ("a\\?b", [b"a?b"]),
    ("a\\[b", [b"a[b"]),
    ("a\\\\b", [b"a\\b"]),
    ("a?b", [b"a*b", b"axb", b"a?b", b"a[b", b"a\\b"]),
    ("user:?", [b"user:1", b"user:2"]),
    ("user:*", [b"user:1", b"user:2", b"user:10"]),
    ("user:[0-1]*", [b"user:1", b"user:10"]),
    ("hello", [b"hello"]),
    ("nomatch*", []),
])
def test_keys_glob(r, pattern, expected):
    r.mset({k: b"v" for k in GLOB_KEYS})
    assert sorted(r.keys(pattern)) == sorted(expected)


def test_keys_empty_db_and_arity(r, raw):
    assert r.keys("*") == []
    assert err(raw, "KEYS") == wrong_args("keys")
    assert err(raw, "KEYS", "a", "b") == wrong_args("keys")


def test_keys_binary(r):
    r.set(b"bin\x00key", "v")
    r.set(b"bin\r\nkey", "v")
    assert sorted(r.keys("bin*")) == [b"bin\x00key", b"bin\r\nkey"]
    assert r.keys("bin?key") == [b"bin\x00key"]


# ----------------------------------------------------------------------- SCAN

def _full_scan(r, **kw):
    seen = []
    cursor = 0
    for _ in range(100_000):
        cursor, keys = r.scan(cursor, **kw)
        seen.extend(keys)
        if cursor == 0:
            return seen
    raise AssertionError("SCAN did not terminate")


def test_scan_full_iteration(r):
    keys = {f"k:{i}".encode() for i in range(1000)}
    r.mset({k: b"v" for k in keys})
    seen = _full_scan(r, count=37)
    assert set(seen) == keys, "every key is returned at least once"
    assert all(isinstance(k, bytes) for k in seen)


def test_scan_match_and_type(r):
    r.mset({f"user:{i}": "v" for i in range(200)})
    r.mset({f"item:{i}": "v" for i in range(200)})
    seen = set(_full_scan(r, match="user:1*", count=50))
    assert seen == {f"user:{i}".encode() for i in range(200) if str(i).startswith("1")}
    assert len(set(_full_scan(r, _type="string", count=100))) == 400
    assert _full_scan(r, _type="list") == []
    assert _full_scan(r, _type="hash", match="user:*") == []
    assert _full_scan(r, match="nomatch*") == []


def test_scan_reply_shape(server, raw):
    raw.execute("MSET", "a", "1", "b", "2")
    reply = raw.execute("SCAN", "0", "COUNT", "1000")
    assert isinstance(reply, list) and len(reply) == 2
    cursor, keys = reply
    assert isinstance(cursor, bytes), "the cursor is a bulk string"
    # One server covers 2 keys in one call; a pool needs at most one call per node.
    calls, keys = scan_all(raw, "COUNT", "1000")
    assert sorted(keys) == [b"a", b"b"]
    assert calls <= len(server.nodes)
    calls, keys = scan_all(raw, "MATCH", "a", "COUNT", "10", "TYPE", "string")
    assert keys == [b"a"] and calls <= len(server.nodes)


def test_scan_empty_db(server, r, raw):
    if len(server.nodes) == 1:
        assert r.scan(0) == (0, [])
    calls, keys = scan_all(raw)
    assert keys == [] and calls <= len(server.nodes)


def test_scan_errors(raw):
    assert err(raw, "SCAN", "abc") == "ERR invalid cursor"
    assert err(raw, "SCAN", "0", "COUNT", "0") == SYNTAX
    assert err(raw, "SCAN", "0", "COUNT", "abc") == NOT_INT
    assert err(raw, "SCAN", "0", "MATCH") == SYNTAX
    assert err(raw, "SCAN", "0", "FOO", "bar") == SYNTAX
    assert err(raw, "SCAN") == wrong_args("scan")


# ------------------------------------------------------------------ RANDOMKEY

def test_randomkey(r, raw):
    assert r.randomkey() is None
    assert raw.execute("RANDOMKEY") is None
    assert raw.last_raw == b"$-1\r\n"
    keys = {f"k{i}".encode() for i in range(20)}
    r.mset({k: "v" for k in keys})
    for _ in range(20):
        assert r.randomkey() in keys
    assert err(raw, "RANDOMKEY", "x") == wrong_args("randomkey")


# ------------------------------------------------------------ RENAME RENAMENX

def test_rename(r, raw):
    r.set("a", "1", ex=100)
    assert r.rename("a", "b") is True
    assert r.get("a") is None
    assert r.get("b") == b"1"
    assert 98 <= r.ttl("b") <= 100, "the TTL moves with the value"
    r.set("c", "3")
    assert r.rename("b", "c") is True, "RENAME overwrites the destination"
    assert r.get("c") == b"1"
    assert 98 <= r.ttl("c") <= 100
    assert r.rename("c", "c") is True
    assert r.get("c") == b"1"
    assert err(raw, "RENAME", "missing", "x") == "ERR no such key"
    assert err(raw, "RENAME", "missing", "missing") == "ERR no such key"
    assert err(raw, "RENAME", "c") == wrong_args("rename")


def test_rename_drops_destination_ttl(r):
    r.set("src", "v")
    r.set("dst", "old", ex=100)
    r.rename("src", "dst")
    assert r.ttl("dst") == -1


def test_renamenx(r, raw):
    r.mset({"a": "1", "b": "2"})
    assert r.renamenx("a", "b") is False
    assert r.mget("a", "b") == [b"1", b"2"]
    assert r.renamenx("a", "c") is True
    assert r.mget("a", "c") == [None, b"1"]
    assert r.renamenx("c", "c") is False
    assert err(raw, "RENAMENX", "missing", "x") == "ERR no such key"


# --------------------------------------------------- DBSIZE FLUSHDB FLUSHALL

def test_dbsize(r, raw):
    assert r.dbsize() == 0
    r.mset({f"k{i}": "v" for i in range(10)})
    assert r.dbsize() == 10
    r.delete("k0")
    assert r.dbsize() == 9
    assert err(raw, "DBSIZE", "x") == wrong_args("dbsize")


def test_flushdb_only_current_db(r):
    r.set("k0", "v")
    r.execute_command("SELECT", "1")
    r.set("k1", "v")
    assert r.flushdb() is True
    assert r.dbsize() == 0
    r.execute_command("SELECT", "0")
    assert r.get("k0") == b"v"


@pytest.mark.parametrize("args", [(), ("ASYNC",), ("SYNC",), ("async",)])
def test_flushall_all_dbs(r, args):
    for db in (0, 3, 15):
        r.execute_command("SELECT", str(db))
        r.mset({f"k{i}": "v" for i in range(5)})
    assert r.execute_command("FLUSHALL", *args) is True
    for db in (0, 3, 15):
        r.execute_command("SELECT", str(db))
        assert r.dbsize() == 0
    r.execute_command("SELECT", "0")


@pytest.mark.parametrize("cmd", ["FLUSHDB", "FLUSHALL"])
def test_flush_options(raw, cmd):
    raw.execute("SET", "k", "v")
    assert raw.execute(cmd, "SYNC") == "OK"
    raw.execute("SET", "k", "v")
    assert raw.execute(cmd, "ASYNC") == "OK"
    assert raw.execute("DBSIZE") == 0
    assert err(raw, cmd, "FOO") == SYNTAX
    assert err(raw, cmd, "ASYNC", "SYNC") == SYNTAX


# --------------------------------------------------------------------- SELECT

def test_select_isolation(r):
    for db in range(16):
        assert r.execute_command("SELECT", str(db)) is True
        r.set("k", f"db{db}")
        r.set(f"only{db}", "x")
    for db in range(16):
        r.execute_command("SELECT", str(db))
        assert r.get("k") == f"db{db}".encode()
        assert r.dbsize() == 2
        assert r.exists(f"only{(db + 1) % 16}") == 0
        assert sorted(r.keys("*")) == sorted([b"k", f"only{db}".encode()])
    r.execute_command("SELECT", "0")


def test_select_applies_to_all_key_commands(r):
    r.execute_command("SELECT", "7")
    r.mset({"a": "1", "b": "2"})
    r.incr("n")
    r.expire("a", 100)
    r.execute_command("SELECT", "0")
    assert r.mget("a", "b", "n") == [None, None, None]
    r.execute_command("SELECT", "7")
    assert r.mget("a", "b", "n") == [b"1", b"2", b"1"]
    assert 98 <= r.ttl("a") <= 100
    r.execute_command("SELECT", "0")


def test_select_per_connection(server, r):
    other = server.client()
    r.execute_command("SELECT", "2")
    r.set("k", "two")
    assert other.get("k") is None, "SELECT changes the current connection only"
    other.execute_command("SELECT", "2")
    assert other.get("k") == b"two"
    other.close()


def test_select_errors(raw):
    assert err(raw, "SELECT", "16") == "ERR DB index is out of range"
    assert err(raw, "SELECT", "-1") == "ERR DB index is out of range"
    assert err(raw, "SELECT", "abc") == NOT_INT
    assert err(raw, "SELECT") == wrong_args("select")
    assert raw.execute("SELECT", "15") == "OK"
    assert raw.execute("SELECT", "0") == "OK"
