"""The wire protocol: RESP3 via HELLO 3, inline commands, pipelining,
incremental parsing, large and binary values, protocol errors, many
connections. Also a self-test of the resp.py reply parser used everywhere.
"""

import os
import random
import socket
import threading

import pytest

from resp import (BigNumber, Push, RespConnection, RespError, RespSet, Status,
                  Verbatim, encode_command)
from conftest import ServerProcess
from util import err, scan_all

MiB = 1024 * 1024


def expect_protocol_error(server, payload: bytes, message: str, before: bytes = b"", allow_reset=False):
    """Send `payload` on a fresh connection: expect `before`, then the error
    line, then the server closes the connection; a new connection still works.

    allow_reset: the payload is larger than what the server must read before
    giving up; closing with unread input makes the kernel send a RST, which
    may destroy the error reply before the client reads it."""
    c = server.raw(timeout=10)
    c.send_raw(payload)
    try:
        data = c.read_until_close(timeout=10)
    except socket.timeout:
        pytest.fail(f"the server did not close the connection within 10 s after {payload[:40]!r}")
    except ConnectionResetError:
        if not allow_reset:
            pytest.fail(f"the connection was reset (RST) after {payload[:40]!r}: the server closed it "
                        "without reading all input, and the error reply may be lost")
        data = None
    if data is not None:
        assert data == before + b"-" + message.encode() + b"\r\n", data[:300]
    c.close()
    with server.raw() as c2:
        assert c2.execute("PING") == "PONG"


# ---------------------------------------------------------------------- RESP3

def test_resp3_nulls(r3):
    assert r3.execute("GET", "nokey") is None
    assert r3.last_raw == b"_\r\n"
    r3.execute("SET", "a", "1")
    assert r3.execute("MGET", "a", "nokey") == [b"1", None]
    assert r3.last_raw == b"*2\r\n$1\r\n1\r\n_\r\n"
    assert r3.execute("SET", "new", "v", "GET") is None
    assert r3.last_raw == b"_\r\n"
    assert r3.execute("GETDEL", "nokey") is None and r3.last_raw == b"_\r\n"
    assert r3.execute("GETEX", "nokey") is None and r3.last_raw == b"_\r\n"
    assert r3.execute("SET", "a", "2", "NX") is None and r3.last_raw == b"_\r\n"
    assert r3.execute("CLIENT", "GETNAME") is None and r3.last_raw == b"_\r\n"
    assert r3.execute("MEMORY", "USAGE", "nokey") is None and r3.last_raw == b"_\r\n"
    r3.execute("FLUSHALL")
    assert r3.execute("RANDOMKEY") is None and r3.last_raw == b"_\r\n"


def test_resp3_maps(r3):
    hello = r3.execute("HELLO", "3")
    assert r3.last_raw.startswith(b"%")
    assert hello[b"proto"] == 3
    cfg = r3.execute("CONFIG", "GET", "maxmemory*")
    assert r3.last_raw.startswith(b"%")
    assert b"maxmemory" in cfg and b"maxmemory-policy" in cfg


def test_resp3_scalar_replies_unchanged(server, r3):
    assert r3.execute("SET", "k", "10") == "OK"
    assert r3.last_raw == b"+OK\r\n"
    assert r3.execute("INCR", "k") == 11 and r3.last_raw == b":11\r\n"
    assert r3.execute("GET", "k") == b"11" and r3.last_raw == b"$2\r\n11\r\n"
    assert r3.execute("EXISTS", "k", "k") == 2
    assert r3.execute("TTL", "k") == -1
    assert r3.execute("INCRBYFLOAT", "k", "0.5") == b"11.5"
    assert r3.execute("PING") == "PONG"
    assert r3.execute("TYPE", "k") == "string"
    # SCAN keeps its RESP2 shape: [bulk cursor, array]; a pool may need a call per node.
    calls, keys = scan_all(r3, "COUNT", "100")
    assert keys == [b"k"] and calls <= len(server.nodes)
    assert err(r3, "INCR", "k") == "ERR value is not an integer or out of range"


def test_resp3_pipeline(r3):
    replies = r3.pipeline([("SET", f"k{i}", str(i)) for i in range(100)] +
                          [("GET", f"k{i}") for i in range(100)] + [("GET", "nokey")])
    assert replies[:100] == ["OK"] * 100
    assert replies[100:200] == [str(i).encode() for i in range(100)]
    assert replies[200] is None


# -------------------------------------------------------------------- inline

def test_inline_commands(raw):
    raw.send_raw(b"PING\r\n")
    assert raw.read_reply() == "PONG"
    raw.send_raw(b'SET k "a b"\r\n')
    assert raw.read_reply() == "OK"
    raw.send_raw(b"GET k\r\n")
    assert raw.read_reply() == b"a b"
    raw.send_raw(b"  PING   hello  \r\n")
    assert raw.read_reply() == b"hello"
    raw.send_raw(b"ping\n")  # a bare LF ends an inline command too
    assert raw.read_reply() == "PONG"


def test_inline_quoting(raw):
    raw.send_raw(b'SET k "\\x00\\xff\\n\\t\\"q"\r\nGET k\r\n')
    assert raw.read_reply() == "OK"
    assert raw.read_reply() == b"\x00\xff\n\t\"q"
    raw.send_raw(b"SET k 'it\\'s'\r\nGET k\r\n")
    assert raw.read_reply() == "OK"
    assert raw.read_reply() == b"it's"
    raw.send_raw(b'SET "" ""\r\nSTRLEN ""\r\nEXISTS ""\r\n')
    assert [raw.read_reply() for _ in range(3)] == ["OK", 0, 1]


def test_inline_and_multibulk_mixed_and_blank_lines(raw):
    raw.send_raw(b"\r\n\r\n" + encode_command("SET", "k", "abc") + b"GET k\r\n\n" +
                 encode_command("GET", "k") + b"*0\r\nSTRLEN k\r\n")
    assert [raw.read_reply() for _ in range(4)] == ["OK", b"abc", b"abc", 3]


def test_inline_unbalanced_quotes(server, r):
    expect_protocol_error(server, b'SET k "a\r\n', "ERR Protocol error: unbalanced quotes in request")


def test_inline_too_big(server, r):
    expect_protocol_error(server, b"a" * 70000, "ERR Protocol error: too big inline request", allow_reset=True)


# ---------------------------------------------------------- protocol errors

@pytest.mark.parametrize("payload,message", [
    (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*2\r\n$3\r\nGET\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*1\r\n$600000000\r\n", "ERR Protocol error: invalid bulk length"),  # > proto-max-bulk-len
    (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*1\r\nPING\r\n", "ERR Protocol error: expected '$', got 'P'"),
    (b"*1\r\n+PING\r\n", "ERR Protocol error: expected '$', got '+'"),
    (b"*" + b"1" * 70000, "ERR Protocol error: too big mbulk count string"),
    (b"*1\r\n$" + b"1" * 70000, "ERR Protocol error: too big bulk count string"),
], ids=["neg-bulk", "alpha-bulk", "null-bulk-arg", "huge-bulk", "alpha-mbulk", "no-dollar",
        "plus-in-array", "long-mbulk-count", "long-bulk-count"])
def test_protocol_errors_close_connection(server, r, payload, message):
    expect_protocol_error(server, payload, message, allow_reset=len(payload) > 65536)


def test_replies_before_protocol_error_are_delivered(server, r):
    expect_protocol_error(server, b"PING\r\n" + encode_command("SET", "k", "v") + b"*1\r\n$-5\r\n",
                          "ERR Protocol error: invalid bulk length", before=b"+PONG\r\n+OK\r\n")
    assert r.get("k") == b"v"


def test_protocol_error_does_not_affect_other_connections(server, raw):
    raw.execute("SET", "k", "v")
    bad = server.raw()
    bad.send_raw(b"*1\r\n$-5\r\n")
    assert bad.is_closed_by_peer()
    assert raw.execute("GET", "k") == b"v"


def test_empty_and_null_multibulk_are_ignored(raw):
    raw.send_raw(b"*0\r\n*-1\r\nPING\r\n")
    assert raw.read_reply() == "PONG"


def test_empty_command_name(raw):
    assert err(raw, "") == "ERR unknown command '', with args beginning with: "


def test_client_disconnect_mid_command(server, raw):
    for partial in (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc", b"*2\r\n$3\r\nGE", b"GET k"):
        s = socket.create_connection((server.host, server.port))
        s.sendall(partial)
        s.close()
    assert raw.execute("PING") == "PONG"
    assert raw.execute("EXISTS", "k") == 0


# ---------------------------------------------------------------- pipelining

def test_redis_py_pipeline_10000(r):
    n = 10_000
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.set(f"key:{i}", f"value:{i}")
    assert p.execute() == [True] * n
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.get(f"key:{i}")
    assert p.execute() == [f"value:{i}".encode() for i in range(n)]
    assert r.dbsize() == n


def test_pipeline_mixed_commands_in_order(r):
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.incr("ctr")
        p.append("log", "x")
        p.get("ctr")
    res = p.execute()
    assert res[0::3] == list(range(1, 2001))
    assert res[1::3] == list(range(1, 2001))
    assert res[2::3] == [str(i).encode() for i in range(1, 2001)]


def test_split_writes_at_every_byte(server, raw):
    # One command delivered a byte at a time; the parser must resume anywhere.
    stream = encode_command("SET", "split", "hello world") + b"GET split\r\n"
    s = socket.create_connection((server.host, server.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = RespConnection(sock=s)
    for b in stream:
        s.sendall(bytes([b]))
    assert c.read_reply() == "OK"
    assert c.read_reply() == b"hello world"
    c.close()


def test_random_chunking_of_a_long_pipeline(server, raw):
    rnd = random.Random(1234)
    cmds = [("SET", f"c{i}", os.urandom(rnd.randint(0, 300))) for i in range(500)]
    stream = b"".join(encode_command(*c) for c in cmds)
    s = socket.create_connection((server.host, server.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = RespConnection(sock=s)
    pos = 0
    while pos < len(stream):
        n = rnd.randint(1, 700)
        s.sendall(stream[pos:pos + n])
        pos += n
    assert [c.read_reply() for _ in cmds] == ["OK"] * len(cmds)
    got = c.pipeline([("GET", f"c{i}") for i in range(500)])
    assert got == [v for _, _, v in cmds]
    c.close()


def test_big_replies_without_reading(server, raw):
    # Many large replies queued while the client is not reading (output
    # back-pressure: past 16 MiB of replies the server holds requests back).
    # Repeated on fresh connections: the server once stalled when the client
    # read as fast as it wrote, so that one write drained the whole backlog
    # and nothing resumed the requests held back (seen 1 run in ~3).
    value = os.urandom(100_000)
    raw.execute("SET", "big", value)
    n = 300
    for _ in range(15):
        conn = server.raw(timeout=10)
        conn.send_raw(encode_command("GET", "big") * n)
        for _ in range(n):
            assert conn.read_reply() == value
        assert conn.execute("PING") == "PONG"
        conn.close()


# ------------------------------------------------------- large/binary values

@pytest.mark.slow
def test_64mib_value_round_trip(r):
    value = os.urandom(64 * MiB)
    assert r.set("huge", value) is True
    assert r.strlen("huge") == len(value)
    got = r.get("huge")
    assert len(got) == len(value)
    assert got == value, "64 MiB value differs"
    assert r.getrange("huge", -10, -1) == value[-10:]
    assert r.getdel("huge") == value
    assert r.exists("huge") == 0


@pytest.mark.slow
def test_64mib_value_raw_connection(raw):
    value = bytes(range(256)) * (64 * MiB // 256)
    assert raw.execute("SET", "huge", value) == "OK"
    assert raw.execute("GET", "huge") == value
    assert raw.execute("MGET", "huge", "nokey") == [value, None]


def test_several_megabyte_values_in_mset_mget(r):
    values = {f"v{i}": os.urandom(4 * MiB + i) for i in range(4)}
    r.mset(values)
    assert r.mget(list(values)) == list(values.values())


def test_binary_keys_and_values(r):
    all_bytes = bytes(range(256))
    pairs = {
        b"\x00": b"nul key",
        b"a\x00b": b"\x00\x00\x00",
        b"\r\n": b"\r\n",
        b"$3\r\nfoo\r\n": b"*1\r\n$4\r\nPING\r\n",
        all_bytes: all_bytes[::-1],
        b"\xff\xfe": all_bytes * 10,
        b"": b"empty key",
        b"utf8:\xc3\xa9": "\u00e9\u4e2d\U0001F600".encode(),
    }
    r.mset(pairs)
    assert r.mget(list(pairs)) == list(pairs.values())
    for k, v in pairs.items():
        assert r.get(k) == v
        assert r.strlen(k) == len(v)
        assert r.exists(k) == 1
        assert r.type(k) == b"string"
    assert sorted(r.keys("*")) == sorted(pairs)
    assert r.append(b"\r\n", b"\x00") == 3
    assert r.getrange(all_bytes, 0, 255) == all_bytes[::-1]
    assert r.rename(all_bytes, b"renamed\x00") is True
    assert r.get(b"renamed\x00") == all_bytes[::-1]
    assert r.delete(*pairs) == len(pairs) - 1


def test_every_single_byte_key(r):
    keys = [bytes([b]) for b in range(256)]
    r.mset({k: k * 3 for k in keys})
    assert r.dbsize() == 256
    assert r.mget(keys) == [k * 3 for k in keys]
    assert r.exists(*keys) == 256


def test_large_key(r):
    key = b"k" * (1 * MiB)
    r.set(key, "v")
    assert r.get(key) == b"v"
    assert r.exists(key) == 1


# --------------------------------------------------------- many connections

def test_many_concurrent_connections(server, r):
    conns = [server.raw(timeout=10) for _ in range(200)]
    for i, c in enumerate(conns):
        c.send_command("SET", f"conn:{i}", str(i))
    for c in conns:
        assert c.read_reply() == "OK"
    for i, c in enumerate(conns):
        assert c.execute("GET", f"conn:{(i + 1) % 200}") == str((i + 1) % 200).encode()
    for c in conns:
        c.close()
    assert r.dbsize() == 200


def test_parallel_clients_increment(server, r):
    threads, n_threads, n_incr = [], 8, 500
    errors = []

    def work():
        try:
            c = server.raw()
            replies = c.pipeline([("INCR", "shared")] * n_incr)
            assert all(isinstance(x, int) for x in replies)
            c.close()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    for _ in range(n_threads):
        t = threading.Thread(target=work)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert r.get("shared") == str(n_threads * n_incr).encode()


@pytest.mark.kvpool_only  # INFO io_threads is kvpool's
def test_io_threads_auto_is_one_below_four_cores():
    """io-threads 0 (the default): one loop below 4 cores, else one per core
    but one (the suite's servers run 2 loops; this one takes the default)."""
    cores = os.cpu_count()
    srv = ServerProcess(name="io-threads-auto")
    srv.default_io_threads = True
    srv.start()
    try:
        with srv.raw() as c:
            info = c.execute("INFO", "server").decode()
        fields = dict(line.split(":", 1) for line in info.split("\r\n") if ":" in line)
        expected = 1 if cores < 4 else cores - 1
        assert int(fields["io_threads"]) == expected, (cores, fields["io_threads"])
        assert fields["io_threads_active"] == ("1" if expected > 1 else "0")
    finally:
        srv.stop()
    # Given explicitly, as many as asked.
    srv = ServerProcess("--io-threads", "3", name="io-threads-3")
    srv.start()
    try:
        with srv.raw() as c:
            info = c.execute("INFO", "server").decode()
        assert "io_threads:3\r\n" in info and "io_threads_active:1\r\n" in info
    finally:
        srv.stop()


def test_io_threads_server(server_factory):
    srv = server_factory("--io-threads", "2", "--loglevel", "warning", name="io-threads")
    errors = []
    n_threads, rounds = 6, 25

    def work(t):
        try:
            c = srv.raw()
            for i in range(rounds):
                keys = [f"t{t}:{i}:{j}" for j in range(50)]
                vals = [os.urandom(random.randint(0, 2000)) for _ in keys]
                assert c.execute("MSET", *[x for kv in zip(keys, vals) for x in kv]) == "OK"
                assert c.execute("MGET", *keys) == vals
                assert c.execute("INCR", "shared") > 0
            c.close()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with srv.raw() as c:
        assert c.execute("GET", "shared") == str(n_threads * rounds).encode()
        assert c.execute("DBSIZE") == n_threads * rounds * 50 + 1


# ------------------------------------------------------- resp.py self-test

def _parse_all(data: bytes) -> list:
    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.close()
        c = RespConnection(sock=b)
        out = []
        while True:
            try:
                out.append(c.read_reply())
            except Exception:
                return out
    finally:
        b.close()


def test_resp_parser_all_types():
    data = (b"+OK\r\n-ERR bad\r\n:42\r\n$3\r\nfoo\r\n$-1\r\n*-1\r\n*2\r\n:1\r\n$0\r\n\r\n_\r\n"
            b",3.5\r\n,inf\r\n,-inf\r\n#t\r\n#f\r\n!5\r\nERR x\r\n=7\r\ntxt:abc\r\n(12345678901234567890\r\n"
            b"%2\r\n$1\r\na\r\n:1\r\n*1\r\n:2\r\n$1\r\nb\r\n~2\r\n:1\r\n$1\r\nx\r\n>2\r\n$7\r\nmessage\r\n:1\r\n"
            b"|1\r\n+ttl\r\n:3\r\n:7\r\n$?\r\n;2\r\nab\r\n;1\r\nc\r\n;0\r\n*?\r\n:1\r\n:2\r\n.\r\n")
    got = _parse_all(data)
    assert got[0] == "OK" and isinstance(got[0], Status)
    assert isinstance(got[1], RespError) and got[1].message == "ERR bad"
    assert got[2:7] == [42, b"foo", None, None, [1, b""]]
    assert got[7] is None
    assert got[8:11] == [3.5, float("inf"), float("-inf")]
    assert got[11] is True and got[12] is False
    assert isinstance(got[13], RespError) and got[13].blob and got[13].message == "ERR x"
    assert got[14] == b"abc" and isinstance(got[14], Verbatim) and got[14].format == b"txt"
    assert got[15] == 12345678901234567890 and isinstance(got[15], BigNumber)
    assert got[16] == {b"a": 1, (2,): b"b"}
    assert isinstance(got[17], RespSet) and list(got[17]) == [1, b"x"]
    assert isinstance(got[18], Push) and list(got[18]) == [b"message", 1]
    assert got[19] == 7
    assert got[20] == b"abc"
    assert got[21] == [1, 2]
    assert len(got) == 22


def test_resp_encoder():
    assert encode_command("SET", b"k\x00", 5) == b"*3\r\n$3\r\nSET\r\n$2\r\nk\x00\r\n$1\r\n5\r\n"
    assert encode_command() == b"*0\r\n"
