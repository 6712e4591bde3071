"""Hardening: bad input from clients never takes a node down.

One server (started by this module, always a single process) receives
malformed and hostile input: bad array and bulk lengths, missing CRLF,
nested arrays, truncated frames, absurd announced sizes, random bytes,
wrong arity, wrong argument types, huge integers, absurd SCAN counts and
pathological glob patterns. Expected
replies are Redis's error texts (checked against redis-server 7.0); a
protocol error gets its error line and then the connection is closed.

After EVERY case (the autouse fixture `after_each`), on a new connection:
  - the server answers PING;
  - used_memory is back within USED_ALLOWANCE of the baseline taken when the
    module started (the cases write only to db 1, which is flushed first);
  - resident memory (VmRSS of the process) is within RSS_ALLOWANCE of that
    baseline (RSS_ALLOWANCE_ASAN for an ASan build, whose quarantine keeps up
    to 256 MiB of freed memory resident by design).
Both are polled for up to 10 s, since a closed connection's buffers are
freed by its I/O thread a moment later. The server, the bounds and the
helpers are hardening_util.py's; stalled clients, clients that never read
and the query buffer limit are test_hardening_limits.py's.

kvpool only (skipped with KVPOOL_REFERENCE=redis): the INFO counter
protocol_errors (redis 7.0 has none), the "logged once" lines,
proto-max-args (redis 7.0 has no such limit and waits for 10 million
arguments), and the CRLF check after a bulk (redis 7.0 skips two bytes there
without looking at them).
"""

from __future__ import annotations

import os
import random
import re
import time

import pytest

from conftest import SERVER_BINARY
from hardening_util import (  # noqa: F401 (srv, health, after_each: fixtures pytest finds by name)
    MiB, POPULATED_KEYS, after_each, closed_by_server, expect_error_then_close, health,
    is_sanitized, never_reader, others_unaffected, raw_socket, send_and_close, sender, srv, stat)
from resp import RespError, encode_command
from util import NOT_INT, SYNTAX, wrong_args

# serial: a good client's round trips (others_unaffected), SCAN and KEYS are timed.
pytestmark = pytest.mark.serial


# --------------------------------------------------- protocol errors: close

INVALID_MBULK = "ERR Protocol error: invalid multibulk length"
INVALID_BULK = "ERR Protocol error: invalid bulk length"

PROTOCOL_ERRORS = [
    # array lengths
    ("mbulk-alpha", b"*abc\r\n", INVALID_MBULK),
    ("mbulk-leading-plus", b"*+1\r\n$4\r\nPING\r\n", INVALID_MBULK),
    ("mbulk-space-before", b"* 1\r\n$4\r\nPING\r\n", INVALID_MBULK),
    ("mbulk-space-after", b"*1 \r\n$4\r\nPING\r\n", INVALID_MBULK),
    ("mbulk-leading-zero", b"*01\r\n$4\r\nPING\r\n", INVALID_MBULK),
    ("mbulk-int64-overflow", b"*9223372036854775808\r\n", INVALID_MBULK),
    ("mbulk-25-digits", b"*9999999999999999999999999\r\n", INVALID_MBULK),
    ("mbulk-hex", b"*0x10\r\n", INVALID_MBULK),
    ("mbulk-lf-only", b"*1\n$4\r\nPING\r\n", INVALID_MBULK),
    ("mbulk-empty", b"*\r\n", INVALID_MBULK),
    # bulk lengths
    ("bulk-negative", b"*1\r\n$-3\r\n", INVALID_BULK),
    ("bulk-null-argument", b"*2\r\n$4\r\nECHO\r\n$-1\r\n", INVALID_BULK),
    ("bulk-alpha", b"*1\r\n$x\r\n", INVALID_BULK),
    ("bulk-empty", b"*1\r\n$\r\n", INVALID_BULK),
    ("bulk-leading-plus", b"*1\r\n$+4\r\nPING\r\n", INVALID_BULK),
    ("bulk-space-before", b"*1\r\n$ 4\r\nPING\r\n", INVALID_BULK),
    ("bulk-space-after", b"*1\r\n$4 \r\nPING\r\n", INVALID_BULK),
    ("bulk-float", b"*1\r\n$4.0\r\nPING\r\n", INVALID_BULK),
    ("bulk-uint64-overflow", b"*1\r\n$18446744073709551616\r\n", INVALID_BULK),
    ("bulk-int64-max", b"*1\r\n$9223372036854775807\r\n", INVALID_BULK),
    ("bulk-1GiB-header", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n", INVALID_BULK),
    # not a bulk where one must be
    ("nested-array", b"*1\r\n*1\r\n$4\r\nPING\r\n", "ERR Protocol error: expected '$', got '*'"),
    ("nested-100k-deep", b"*1\r\n" * 100_000, "ERR Protocol error: expected '$', got '*'"),
    ("integer-argument", b"*2\r\n$4\r\nECHO\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
    ("resp3-map-argument", b"*1\r\n%1\r\n", "ERR Protocol error: expected '$', got '%'"),
    # over-long lines
    ("mbulk-count-70KB", b"*" + b"1" * 70_000, "ERR Protocol error: too big mbulk count string"),
    ("bulk-count-70KB", b"*1\r\n$" + b"9" * 70_000, "ERR Protocol error: too big bulk count string"),
    ("inline-70KB", b"SET k " + b"v" * 70_000, "ERR Protocol error: too big inline request"),
    # inline quoting
    ("inline-unbalanced-double", b'SET k "abc\r\n', "ERR Protocol error: unbalanced quotes in request"),
    ("inline-unbalanced-single", b"SET k 'abc\r\n", "ERR Protocol error: unbalanced quotes in request"),
    ("inline-quote-then-char", b'SET k "a"b\r\n', "ERR Protocol error: unbalanced quotes in request"),
]


@pytest.mark.parametrize("payload,message", [p[1:] for p in PROTOCOL_ERRORS],
                         ids=[p[0] for p in PROTOCOL_ERRORS])
def test_protocol_error_replies_and_closes(srv, payload, message):
    expect_error_then_close(srv, payload, message)


def test_replies_before_the_error_are_delivered(srv):
    expect_error_then_close(srv, b"PING\r\n" + encode_command("ECHO", "x") + b"*1\r\n$-2\r\n",
                            INVALID_BULK, before=b"+PONG\r\n$1\r\nx\r\n")


@pytest.mark.kvpool_only
def test_ten_million_arguments_announced(srv):
    # proto-max-args (1048576): refused at the header, nothing reserved.
    # redis 7.0 accepts the count and waits for the arguments.
    expect_error_then_close(srv, b"*10000000\r\n$4\r\nPING\r\n", INVALID_MBULK)


@pytest.mark.kvpool_only
@pytest.mark.parametrize("payload", [b"*1\r\n$4\r\nPINGXX", b"*1\r\n$4\r\nPING\n\n", b"*1\r\n$4\r\nPING\r\r"],
                         ids=["no-crlf", "lf-only", "cr-cr"])
def test_missing_crlf_after_bulk(srv, payload):
    expect_error_then_close(srv, payload, "ERR Protocol error: expected CRLF after bulk")


# ------------------------------------------------ odd but valid: no close

def test_non_positive_array_lengths_are_ignored(srv):
    with srv.raw() as c:
        c.send_raw(b"*0\r\n*-1\r\n*-5\r\n*-9223372036854775808\r\nPING\r\n")
        assert c.read_reply() == "PONG"


def test_blank_lines_are_ignored(srv):
    with srv.raw() as c:
        c.send_raw(b"\r\n" * 1000 + b"\n" * 1000 + b"PING\r\n")
        assert c.read_reply() == "PONG"


def test_nul_bytes_in_keys_and_values(srv):
    key, value = b"k\x00\x00k", b"\x00v\x00" * 1000
    with srv.raw() as c:
        c.execute("SELECT", "1")
        assert c.execute("SET", key, value) == "OK"
        assert c.execute("GET", key) == value
        assert c.execute("GET", b"k") is None and c.execute("GET", b"k\x00") is None
        assert c.execute("STRLEN", key) == len(value)
        assert c.execute("APPEND", key, b"\x00") == len(value) + 1


def test_nul_byte_in_an_inline_command(srv):
    # redis stops an inline line at the NUL ("a"); kvpool keeps it ("a\0b").
    with srv.raw() as c:
        c.send_raw(b"ECHO a\x00b\r\nPING\r\n")
        assert c.read_reply() in (b"a", b"a\x00b")
        assert c.read_reply() == "PONG"


# ----------------------------------------------- truncated frames, then close

@pytest.mark.parametrize("payload", [
    b"*3\r\n$3\r\nSE",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc",
    b"*2\r\n$4\r\nECHO\r\n$5\r\nhel",
    b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r",
    b"*2\r\n",
    b"*",
    b"GET k",
    b'SET k "unterminated',
], ids=["in-name", "in-value", "in-arg", "before-lf", "after-count", "star-only", "inline", "inline-quote"])
def test_truncated_frame_then_close(srv, payload):
    send_and_close(srv, payload)
    with srv.client(db=1) as c:
        assert c.exists("k") == 0


def test_truncated_10MB_value_then_close(srv, health):
    s = raw_socket(srv)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10485760\r\n" + os.urandom(5 * MiB))
    time.sleep(0.2)
    s.close()
    with srv.client(db=1) as c:
        assert c.exists("k") == 0


def test_million_arguments_announced_three_sent(srv, health):
    s = raw_socket(srv)
    s.sendall(b"*1000000\r\n" + encode_command("SET", "k", "v")[4:])
    time.sleep(0.3)
    assert health.rss_growth() < health.rss_allowance, "announcing 1M arguments grew the server"
    others_unaffected(srv, "a client that announced 1M arguments")
    s.close()


# ---------------------------------------------------------------- random bytes

@pytest.mark.parametrize("seed", range(6))
def test_random_bytes(srv, seed):
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(64 * 1024))
    if seed % 2:
        data = b"*" + data  # multibulk parser first
    s = raw_socket(srv)
    t = sender(s, data)
    closed_by_server(s, 2)  # an error and a close, or replies: either is fine
    s.close()
    t.join(5)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_commands(srv, seed):
    # Valid commands with a few bytes flipped, dropped or duplicated.
    rnd = random.Random(1000 + seed)
    names = [b"SET", b"GET", b"MSET", b"MGET", b"INCRBY", b"EXPIRE", b"SETRANGE", b"GETRANGE",
             b"SCAN", b"MEXISTS", b"DEL", b"APPEND", b"TTL", b"ECHO", b"GETSET", b"PSETEX"]
    stream = bytearray(encode_command("SELECT", "1"))
    for _ in range(2000):
        args = [rnd.choice(names)] + [str(rnd.choice([0, 1, -1, 2 ** 31, 2 ** 63 - 1, rnd.randint(-9, 99)])).encode()
                                      if rnd.random() < 0.5 else b"k%d" % rnd.randint(0, 9)
                                      for _ in range(rnd.randint(0, 4))]
        cmd = bytearray(encode_command(*args))
        for _ in range(rnd.choice([0, 0, 0, 1, 2])):
            i = rnd.randrange(len(cmd))
            op = rnd.random()
            if op < 0.4:
                cmd[i] = rnd.getrandbits(8)
            elif op < 0.7:
                del cmd[i]
            else:
                cmd[i:i] = cmd[i:i + rnd.randint(1, 8)]
        stream += cmd
    s = raw_socket(srv)
    t = sender(s, bytes(stream))
    closed_by_server(s, 2)
    s.close()
    t.join(5)


# ------------------------------------------------------ wrong arity and types

ARITY = ["GET", "SET k", "SETEX k 10", "INCRBY k", "EXPIRE k", "SETRANGE k 1", "GETRANGE k 0",
         "MSET k", "MSET a 1 b", "MGET", "DEL", "APPEND k", "SELECT", "ECHO", "TTL", "STRLEN"]


@pytest.mark.parametrize("cmd", ARITY)
def test_wrong_arity(srv, cmd):
    with srv.raw() as c:
        c.execute("SELECT", "1")
        args = cmd.split()
        assert c.execute(*args) == wrong_args(args[0].lower())
        assert c.execute("PING") == "PONG"


TYPE_ERRORS = [
    ("INCRBY k abc", NOT_INT),
    ("INCRBY k 1.5", NOT_INT),
    ("INCRBY k 99999999999999999999", NOT_INT),
    ("DECRBY k 0x10", NOT_INT),
    ("EXPIRE k abc", NOT_INT),
    ("EXPIRE k 1.5", NOT_INT),
    ("SETRANGE k abc x", NOT_INT),
    ("SETRANGE k -1 x", "ERR offset is out of range"),
    ("GETRANGE k a b", NOT_INT),
    ("SET k v EX abc", NOT_INT),
    ("SET k v EX 0", "ERR invalid expire time in 'set' command"),
    ("SET k v EX -5", "ERR invalid expire time in 'set' command"),
    ("SET k v EX 10 PX 10", SYNTAX),
    ("SET k v NX XX", SYNTAX),
    ("SETEX k abc v", NOT_INT),
    ("SETEX k -1 v", "ERR invalid expire time in 'setex' command"),
    ("INCRBYFLOAT k abc", "ERR value is not a valid float"),
    ("SELECT abc", NOT_INT),
    ("SELECT 99999", "ERR DB index is out of range"),
    ("SCAN abc", "ERR invalid cursor"),
    ("SCAN 0 COUNT 0", SYNTAX),
    ("SCAN 0 COUNT -1", SYNTAX),
    ("SCAN 0 COUNT abc", NOT_INT),
    ("SCAN 0 BOGUS 1", SYNTAX),
]


@pytest.mark.parametrize("cmd,message", TYPE_ERRORS, ids=[t[0] for t in TYPE_ERRORS])
def test_wrong_argument_types(srv, cmd, message):
    with srv.raw() as c:
        c.execute("SELECT", "1")
        c.execute("SET", "k", "10")
        reply = c.execute(*cmd.split())
        assert isinstance(reply, RespError) and reply.message == message, reply
        assert c.execute("GET", "k") == b"10", "a failed command changed the key"


def test_values_of_the_wrong_kind(srv):
    with srv.raw() as c:
        c.execute("SELECT", "1")
        c.execute("SET", "s", "not a number")
        c.execute("SET", "big", "9223372036854775807")
        assert c.execute("INCR", "s") == NOT_INT
        assert c.execute("DECR", "s") == NOT_INT
        assert c.execute("INCRBYFLOAT", "s", "1") == "ERR value is not a valid float"
        assert c.execute("INCR", "big") == "ERR increment or decrement would overflow"
        assert c.execute("GET", "s") == b"not a number" and c.execute("GET", "big") == b"9223372036854775807"


HUGE_INTEGERS = [
    ("INCRBY k 9223372036854775807", "ERR increment or decrement would overflow"),
    ("DECRBY k -9223372036854775808", "ERR decrement would overflow"),
    ("INCRBY k -9223372036854775808", None),  # 10 - 2^63 fits
    ("EXPIRE k 9223372036854775807", "ERR invalid expire time in 'expire' command"),
    ("PEXPIRE k 9223372036854775807", "ERR invalid expire time in 'pexpire' command"),
    ("EXPIREAT k 9223372036854775807", "ERR invalid expire time in 'expireat' command"),
    ("SET k v EX 9223372036854775807", "ERR invalid expire time in 'set' command"),
    ("SET k v PX 9223372036854775807", "ERR invalid expire time in 'set' command"),
    ("SETEX k 9223372036854775807 v", "ERR invalid expire time in 'setex' command"),
    ("SETRANGE k 536870912 x", "ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
    ("SETRANGE k 4294967296 x", "ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
    ("SETRANGE k 9223372036854775807 x", "ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
    ("GETRANGE k 0 9223372036854775807", None),
    ("GETRANGE k -9223372036854775808 9223372036854775807", None),
]


@pytest.mark.parametrize("cmd,message", HUGE_INTEGERS, ids=[t[0] for t in HUGE_INTEGERS])
def test_huge_integers(srv, cmd, message):
    with srv.raw() as c:
        c.execute("SELECT", "1")
        c.execute("SET", "k", "10")
        reply = c.execute(*cmd.split())
        if message is None:
            assert not isinstance(reply, RespError), reply
        else:
            assert isinstance(reply, RespError) and reply.message == message, reply
        assert c.execute("PING") == "PONG"


def test_setrange_just_under_the_limit_then_delete(srv, health):
    # A 64 MB string made from an offset: allowed, and freed by DEL.
    with srv.raw() as c:
        c.execute("SELECT", "1")
        assert c.execute("SETRANGE", "k", 64 * MiB - 1, "x") == 64 * MiB
        assert c.execute("STRLEN", "k") == 64 * MiB
        assert c.execute("DEL", "k") == 1


# ---------------------------------------------------- SCAN and KEYS on db 0

def test_scan_absurd_count_finishes(srv):
    with srv.raw(timeout=30) as c:
        t0 = time.monotonic()
        cursor, keys = c.execute("SCAN", "0", "COUNT", "9223372036854775807")
        assert time.monotonic() - t0 < 5
        assert isinstance(keys, list) and len(keys) <= POPULATED_KEYS
        # The cursor still works afterwards.
        cursor2, _ = c.execute("SCAN", cursor, "COUNT", "10")
        assert isinstance(cursor2, bytes)


def test_scan_cursor_garbage(srv):
    with srv.raw() as c:
        # (An empty cursor is 0 to redis-server 7.0, whose strtoul accepts it.)
        for cur in ("18446744073709551616", "1e3", " 0", "0x10"):
            reply = c.execute("SCAN", cur)
            assert isinstance(reply, RespError) and reply.message == "ERR invalid cursor", (cur, reply)
        # Any in-range number is a valid cursor, even one never handed out.
        reply = c.execute("SCAN", "18446744073709551615", "COUNT", "100")
        assert isinstance(reply, list) and len(reply) == 2


PATHOLOGICAL = [
    "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
    "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*?b",
    "*" * 1000 + "b",
    "[" * 500 + "a",
    "*[a-" + "\\" * 300,
]


@pytest.mark.parametrize("pattern", PATHOLOGICAL, ids=["stars-a", "a-stars-q", "1000-stars", "brackets", "open-range"])
def test_keys_pathological_pattern_is_fast(srv, pattern):
    # Backtracking blow-up would take minutes; matching is linear in the
    # pattern per key. An -O0 ASan build is ~10x slower than release.
    limit = 3 * (8 if is_sanitized(SERVER_BINARY) else 1)
    with srv.raw(timeout=60 * 8) as c:
        t0 = time.monotonic()
        reply = c.execute("KEYS", pattern)
        took = time.monotonic() - t0
        assert isinstance(reply, list), reply
        assert took < limit, f"KEYS {pattern[:30]!r}... took {took:.1f}s on {POPULATED_KEYS} keys"
        t0 = time.monotonic()
        reply = c.execute("SCAN", "0", "MATCH", pattern, "COUNT", "100000")
        assert isinstance(reply, list) and time.monotonic() - t0 < limit


# ------------------------------------------------------------- odd commands

def test_unknown_command_with_a_100KB_name(srv):
    with srv.raw() as c:
        reply = c.execute("X" * 100_000, "arg")
        assert isinstance(reply, RespError) and reply.message.startswith("ERR unknown command '")
        assert len(reply.message) < 1024, "the error echoes the whole name back"


def test_hello_with_absurd_version(srv):
    with srv.raw() as c:
        for v in ("4", "0", "-1", "99999999999999999999"):
            reply = c.execute("HELLO", v)
            assert isinstance(reply, RespError), (v, reply)
            assert reply.code in ("NOPROTO", "ERR"), reply
        assert c.execute("PING") == "PONG"


def test_client_setname_with_bad_characters(srv):
    with srv.raw() as c:
        for name in ("a b", "a\nb", "\x00"):
            reply = c.execute("CLIENT", "SETNAME", name)
            assert reply == "ERR Client names cannot contain spaces, newlines or special characters."


def test_config_set_garbage(srv):
    with srv.raw() as c:
        for opt, val in (("maxclients", "-1"), ("maxclients", "abc"), ("proto-max-bulk-len", "-5"),
                         ("client-output-buffer-limit", "normal x y z"), ("timeout", "1e9999"),
                         ("no-such-option", "1")):
            reply = c.execute("CONFIG", "SET", opt, val)
            assert isinstance(reply, RespError), (opt, val, reply)
        assert c.execute("CONFIG", "GET", "maxclients")[1] != b"-1"


def test_multi_abuse(srv):
    with srv.raw() as c:
        assert c.execute("EXEC") == "ERR EXEC without MULTI"
        assert c.execute("DISCARD") == "ERR DISCARD without MULTI"
        assert c.execute("MULTI") == "OK"
        assert c.execute("MULTI") == "ERR MULTI calls can not be nested"
        for _ in range(10_000):
            c.send_command("SET", "k", "v")
        for _ in range(10_000):
            assert c.read_reply() == "QUEUED"
        assert c.execute("DISCARD") == "OK"


# ------------------------------------------------------- limits logged once

@pytest.mark.kvpool_only
def test_each_limit_is_logged_once(srv):
    # Trigger every limit a few more times; each kind appears once in the log.
    for _ in range(3):
        expect_error_then_close(srv, b"*1\r\n$-1\r\n", INVALID_BULK)
    with srv.raw() as c:
        assert c.execute("CONFIG", "SET", "client-query-buffer-limit", "1mb") == "OK"
    try:
        for _ in range(3):
            s = raw_socket(srv)
            t = sender(s, b"*2\r\n$4\r\nECHO\r\n$3000000\r\n" + b"x" * 3_000_000)
            assert closed_by_server(s, 10)
            s.close()
            t.join(10)
    finally:
        with srv.raw() as c:
            c.execute("CONFIG", "SET", "client-query-buffer-limit", "1gb")
    for _ in range(2):
        never_reader(srv, "small", 8 * 1024, 20_000, wait=10)
    log = open(srv.log_path, "rb").read().decode("utf-8", "replace")
    kinds = {
        "protocol error": r"protocol error from client",
        "query buffer": r"client-query-buffer-limit",
        "output buffer": r"client-output-buffer-limit[;)]",
    }
    for kind, pattern in kinds.items():
        n = len([line for line in log.splitlines() if re.search(pattern, line) and "logged once" in line])
        assert n == 1, f"the {kind} limit was logged {n} times (want exactly once):\n{srv.log_tail(30)}"
    assert stat(srv, "protocol_errors") >= len(PROTOCOL_ERRORS) + 3
