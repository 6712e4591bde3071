"""String commands: GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET
MSETNX APPEND STRLEN GETRANGE SETRANGE INCR DECR INCRBY DECRBY INCRBYFLOAT.

Replies are compared with redis-server 7.0. Exact error strings are checked
through raw connections (util.err), because redis-py strips the "ERR " code.
"""

import time

import pytest
import redis

from util import NOT_FLOAT, NOT_INT, SYNTAX, err, wrong_args

INVALID_SET_EXPIRE = "ERR invalid expire time in 'set' command"
OVERFLOW = "ERR increment or decrement would overflow"
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


# --------------------------------------------------------------------- GET/SET

def test_get_set_basic(r):
    assert r.get("missing") is None
    assert r.set("k", "v") is True
    assert r.get("k") == b"v"
    assert r.set("k", "v2") is True
    assert r.get("k") == b"v2"
    assert r.set("empty", "") is True
    assert r.get("empty") == b""
    assert r.exists("empty") == 1


def test_set_ex_px(r):
    r.set("ex", "v", ex=100)
    assert 98 <= r.ttl("ex") <= 100
    r.set("px", "v", px=100_000)
    assert 98_000 <= r.pttl("px") <= 100_000


def test_set_exat_pxat(r):
    now = int(time.time())
    r.set("exat", "v", exat=now + 100)
    assert 98 <= r.ttl("exat") <= 100
    r.set("pxat", "v", pxat=(now + 100) * 1000)
    assert 97_000 <= r.pttl("pxat") <= 100_000
    assert r.expiretime("exat") == now + 100
    assert r.execute_command("PEXPIRETIME", "pxat") == (now + 100) * 1000


def test_set_exat_in_the_past_deletes(r):
    r.set("k", "old")
    assert r.set("k", "v", exat=1) is True
    assert r.exists("k") == 0
    assert r.set("k", "v", pxat=1000) is True
    assert r.get("k") is None


def test_set_nx_xx(r):
    assert r.set("k", "1", xx=True) is None
    assert r.exists("k") == 0
    assert r.set("k", "1", nx=True) is True
    assert r.set("k", "2", nx=True) is None
    assert r.get("k") == b"1"
    assert r.set("k", "3", xx=True) is True
    assert r.get("k") == b"3"


def test_set_clears_ttl_unless_keepttl(r):
    r.set("k", "v", ex=100)
    r.set("k", "v2")
    assert r.ttl("k") == -1
    r.set("k", "v", ex=100)
    assert r.set("k", "v3", keepttl=True) is True
    assert 98 <= r.ttl("k") <= 100
    assert r.get("k") == b"v3"


def test_set_get_option(r):
    assert r.set("k", "a", get=True) is None
    assert r.get("k") == b"a"
    assert r.set("k", "b", get=True) == b"a"
    assert r.get("k") == b"b"
    # Redis 7 allows GET together with NX/XX: returns the old value either way.
    assert r.set("k", "c", nx=True, get=True) == b"b"
    assert r.get("k") == b"b"
    assert r.set("new", "c", xx=True, get=True) is None
    assert r.exists("new") == 0
    assert r.set("k", "d", xx=True, get=True) == b"b"
    assert r.get("k") == b"d"


def test_set_options_are_case_insensitive(raw):
    assert raw.execute("set", "k", "v", "ex", "100", "nx") == "OK"
    assert raw.execute("SET", "k", "w", "Xx", "kEePtTl") == "OK"
    assert 98 <= raw.execute("TTL", "k") <= 100


@pytest.mark.parametrize("args", [
    ("NX", "XX"),
    ("XX", "NX"),
    ("EX", "10", "PX", "100"),
    ("EX", "10", "EXAT", "99999999999"),
    ("PX", "10", "PXAT", "99999999999"),
    ("EX", "10", "KEEPTTL"),
    ("KEEPTTL", "PX", "10"),
    ("EX",),
    ("PX",),
    ("FOO",),
    ("EX", "10", "BAR"),
    ("GET", "GET", "FOO"),
])
def test_set_syntax_errors(raw, args):
    assert err(raw, "SET", "k", "v", *args) == SYNTAX
    assert raw.execute("EXISTS", "k") == 0


@pytest.mark.parametrize("opt,val", [
    ("EX", "0"), ("EX", "-1"), ("PX", "0"), ("PX", "-100"),
    ("EXAT", "0"), ("EXAT", "-5"), ("PXAT", "0"), ("PXAT", "-1"),
    ("EX", str(I64_MAX)), ("PX", str(I64_MAX)), ("EX", "9223372036854775"),
])
def test_set_invalid_expire(raw, opt, val):
    assert err(raw, "SET", "k", "v", opt, val) == INVALID_SET_EXPIRE
    assert raw.execute("EXISTS", "k") == 0


@pytest.mark.parametrize("val", ["abc", "1.5", "", "10abc", "99999999999999999999"])
def test_set_non_integer_expire(raw, val):
    # redis replies "not an integer" (not "invalid expire time") for these.
    assert err(raw, "SET", "k", "v", "EX", val) == NOT_INT
    assert err(raw, "SET", "k", "v", "PX", val) == NOT_INT


def test_get_set_wrong_arity(raw):
    assert err(raw, "GET") == wrong_args("get")
    assert err(raw, "GET", "a", "b") == wrong_args("get")
    assert err(raw, "SET", "k") == wrong_args("set")


# ------------------------------------------------------- SETNX SETEX PSETEX

def test_setnx(r):
    assert r.setnx("k", "1") is True
    assert r.setnx("k", "2") is False
    assert r.get("k") == b"1"


def test_setex_psetex(r, raw):
    assert r.setex("k", 100, "v") is True
    assert r.get("k") == b"v"
    assert 98 <= r.ttl("k") <= 100
    assert r.psetex("p", 100_000, "v") is True
    assert 98_000 <= r.pttl("p") <= 100_000
    # SETEX overwrites an existing value and TTL.
    r.set("k2", "old")
    r.setex("k2", 50, "new")
    assert r.get("k2") == b"new" and 48 <= r.ttl("k2") <= 50


@pytest.mark.parametrize("cmd", ["SETEX", "PSETEX"])
def test_setex_errors(raw, cmd):
    name = cmd.lower()
    assert err(raw, cmd, "k", "0", "v") == f"ERR invalid expire time in '{name}' command"
    assert err(raw, cmd, "k", "-10", "v") == f"ERR invalid expire time in '{name}' command"
    assert err(raw, cmd, "k", "abc", "v") == NOT_INT
    assert err(raw, cmd, "k", "10") == wrong_args(name)
    assert raw.execute("EXISTS", "k") == 0


# ---------------------------------------------------- GETSET GETDEL GETEX

def test_getset(r):
    assert r.getset("k", "a") is None
    assert r.getset("k", "b") == b"a"
    assert r.get("k") == b"b"
    r.expire("k", 100)
    r.getset("k", "c")
    assert r.ttl("k") == -1, "GETSET discards the TTL like SET"


def test_getdel(r):
    assert r.getdel("missing") is None
    r.set("k", "v", ex=100)
    assert r.getdel("k") == b"v"
    assert r.exists("k") == 0
    assert r.getdel("k") is None


def test_getex(r):
    assert r.getex("missing") is None
    assert r.getex("missing", ex=10) is None
    assert r.exists("missing") == 0
    r.set("k", "v")
    assert r.getex("k") == b"v"
    assert r.ttl("k") == -1
    assert r.getex("k", ex=100) == b"v"
    assert 98 <= r.ttl("k") <= 100
    assert r.getex("k", px=50_000) == b"v"
    assert 48_000 <= r.pttl("k") <= 50_000
    now = int(time.time())
    assert r.getex("k", exat=now + 200) == b"v"
    assert 198 <= r.ttl("k") <= 200
    assert r.getex("k", pxat=(now + 300) * 1000) == b"v"
    assert 297 <= r.ttl("k") <= 300
    assert r.getex("k", persist=True) == b"v"
    assert r.ttl("k") == -1
    # No option: TTL untouched.
    r.expire("k", 100)
    r.getex("k")
    assert 98 <= r.ttl("k") <= 100


def test_getex_exat_in_the_past_deletes(r):
    r.set("k", "v")
    assert r.getex("k", exat=1) == b"v"
    assert r.exists("k") == 0


def test_getex_errors(raw):
    raw.execute("SET", "k", "v")
    invalid = "ERR invalid expire time in 'getex' command"
    assert err(raw, "GETEX", "k", "EX", "0") == invalid
    assert err(raw, "GETEX", "k", "PX", "-1") == invalid
    assert err(raw, "GETEX", "k", "EXAT", "0") == invalid
    assert err(raw, "GETEX", "k", "EX", "abc") == NOT_INT
    assert err(raw, "GETEX", "k", "PERSIST", "EX", "10") == SYNTAX
    assert err(raw, "GETEX", "k", "EX", "10", "PX", "100") == SYNTAX
    assert err(raw, "GETEX", "k", "EX") == SYNTAX
    assert err(raw, "GETEX", "k", "FOO") == SYNTAX
    assert err(raw, "GETEX") == wrong_args("getex")
    assert raw.execute("TTL", "k") == -1


# ------------------------------------------------------ MGET MSET MSETNX

def test_mget_alignment_duplicates_missing(r):
    r.mset({"a": "1", "b": "2", "c": ""})
    assert r.mget("a", "x", "b", "a", "c", "y", "a") == [b"1", None, b"2", b"1", b"", None, b"1"]
    assert r.mget("x") == [None]


def test_mget_many_keys(r):
    n = 1000
    r.mset({f"key:{i}": f"val:{i}" for i in range(0, n, 2)})
    keys = [f"key:{i}" for i in range(n)]
    got = r.mget(keys)
    assert got == [f"val:{i}".encode() if i % 2 == 0 else None for i in range(n)]


def test_mset(r):
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b") == [b"1", b"2"]
    # Later pairs win for duplicate keys; MSET discards TTLs like SET.
    r.expire("a", 100)
    assert r.execute_command("MSET", "a", "x", "a", "y", "b", "z") is True
    assert r.mget("a", "b") == [b"y", b"z"]
    assert r.ttl("a") == -1


def test_msetnx(r):
    assert r.msetnx({"a": "1", "b": "2"}) is True
    assert r.msetnx({"b": "x", "c": "3"}) is False, "all or nothing"
    assert r.mget("a", "b", "c") == [b"1", b"2", None]
    assert r.execute_command("MSETNX", "d", "1", "d", "2") == 1
    assert r.get("d") == b"2"


def test_mget_mset_arity(raw):
    assert err(raw, "MGET") == wrong_args("mget")
    assert err(raw, "MSET") == wrong_args("mset")
    assert err(raw, "MSET", "a") == wrong_args("mset")
    assert err(raw, "MSET", "a", "1", "b") == wrong_args("mset")
    assert err(raw, "MSETNX", "a") == wrong_args("msetnx")
    assert err(raw, "MSETNX", "a", "1", "b") == wrong_args("msetnx")
    assert raw.execute("EXISTS", "a") == 0


# ----------------------------------------------------------- APPEND STRLEN

def test_append_strlen(r):
    assert r.strlen("k") == 0
    assert r.append("k", "hello") == 5
    assert r.append("k", " world") == 11
    assert r.append("k", "") == 11
    assert r.get("k") == b"hello world"
    assert r.strlen("k") == 11
    assert r.append("bin", b"\x00\r\n") == 3
    assert r.append("bin", b"\xff") == 4
    assert r.get("bin") == b"\x00\r\n\xff"
    assert r.append("e", "") == 0
    assert r.exists("e") == 1, "APPEND of an empty string still creates the key"


def test_append_keeps_ttl(r):
    r.set("k", "a", ex=100)
    r.append("k", "b")
    assert 98 <= r.ttl("k") <= 100


# -------------------------------------------------------- GETRANGE SETRANGE

@pytest.mark.parametrize("start,end,expected", [
    (0, 3, b"This"),
    (-3, -1, b"ing"),
    (0, -1, b"This is a string"),
    (10, 100, b"string"),
    (5, 1, b""),
    (100, 200, b""),
    (-100, 3, b"This"),
    (-1, -1, b"g"),
    (0, 0, b"T"),
])
def test_getrange(r, start, end, expected):
    r.set("k", "This is a string")
    assert r.getrange("k", start, end) == expected


def test_getrange_entirely_before_start(r):
    # NOTE: redis 7.0 clamps both negative indexes to 0 and returns "T" here,
    # although the range lies wholly before the string; a Redis user would
    # expect "". Both answers are accepted.
    r.set("k", "This is a string")
    assert r.getrange("k", -100, -50) in (b"", b"T")


def test_getrange_missing_and_errors(r, raw):
    assert r.getrange("missing", 0, -1) == b""
    raw.execute("SET", "k", "abc")
    assert err(raw, "GETRANGE", "k", "a", "1") == NOT_INT
    assert err(raw, "GETRANGE", "k", "0") == wrong_args("getrange")


def test_setrange(r):
    r.set("k", "Hello World")
    assert r.setrange("k", 6, "Redis") == 11
    assert r.get("k") == b"Hello Redis"
    assert r.setrange("pad", 5, "x") == 6
    assert r.get("pad") == b"\x00\x00\x00\x00\x00x"
    assert r.setrange("k", 0, "") == 11
    assert r.get("k") == b"Hello Redis"
    # Empty value on a missing key: nothing is created.
    assert r.setrange("none", 10, "") == 0
    assert r.exists("none") == 0
    assert r.setrange("k", 11, "!") == 12
    assert r.get("k") == b"Hello Redis!"


def test_setrange_errors(raw):
    assert err(raw, "SETRANGE", "k", "-1", "x") == "ERR offset is out of range"
    assert err(raw, "SETRANGE", "k", "abc", "x") == NOT_INT
    # 512 MiB is the default proto-max-bulk-len; checked before allocating.
    assert err(raw, "SETRANGE", "k", str(512 * 1024 * 1024), "x") == \
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    assert err(raw, "SETRANGE", "k", str(I64_MAX), "x") == \
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    assert raw.execute("EXISTS", "k") == 0
    assert err(raw, "SETRANGE", "k", "0") == wrong_args("setrange")


# ------------------------------------------------- INCR DECR INCRBY DECRBY

def test_incr_decr(r):
    assert r.incr("n") == 1
    assert r.incr("n") == 2
    assert r.decr("n") == 1
    assert r.decr("m") == -1
    assert r.incrby("n", 10) == 11
    assert r.decrby("n", 20) == -9
    assert r.incrby("n", -1) == -10
    assert r.decrby("n", -10) == 0
    assert r.get("n") == b"0"
    r.set("s", "-5")
    assert r.incr("s") == -4
    assert r.get("s") == b"-4"


def test_incr_keeps_ttl(r):
    # Rate limiters rely on INCR not resetting the TTL.
    r.set("c", "5", ex=100)
    assert r.incr("c") == 6
    assert r.incrby("c", 4) == 10
    assert r.incrbyfloat("c", 0.5) == 10.5
    assert 98 <= r.ttl("c") <= 100


def test_incr_limits(r, raw):
    r.set("n", str(I64_MAX - 1))
    assert r.incr("n") == I64_MAX
    assert err(raw, "INCR", "n") == OVERFLOW
    assert err(raw, "INCRBY", "n", "1") == OVERFLOW
    assert r.get("n") == str(I64_MAX).encode()
    r.set("m", str(I64_MIN + 1))
    assert r.decr("m") == I64_MIN
    assert err(raw, "DECR", "m") == OVERFLOW
    assert err(raw, "DECRBY", "m", "1") == OVERFLOW
    assert err(raw, "INCRBY", "m", "-1") == OVERFLOW
    assert r.get("m") == str(I64_MIN).encode()


def test_decrby_min_int64(raw):
    # Negating INT64_MIN is itself an overflow; redis has a dedicated message.
    assert err(raw, "DECRBY", "k", str(I64_MIN)) == "ERR decrement would overflow"


@pytest.mark.parametrize("value", ["abc", "1.5", " 1", "1 ", "", "9223372036854775808", "-9223372036854775809", "1e3", "0x10"])
def test_incr_non_integer_value(raw, value):
    raw.execute("SET", "k", value)
    for args in (("INCR", "k"), ("DECR", "k"), ("INCRBY", "k", "1"), ("DECRBY", "k", "1")):
        assert err(raw, *args) == NOT_INT
    assert raw.execute("GET", "k") == value.encode()


@pytest.mark.parametrize("incr", ["abc", "1.5", "", "9223372036854775808"])
def test_incrby_non_integer_increment(raw, incr):
    assert err(raw, "INCRBY", "k", incr) == NOT_INT
    assert err(raw, "DECRBY", "k", incr) == NOT_INT
    assert raw.execute("EXISTS", "k") == 0


def test_incr_arity(raw):
    assert err(raw, "INCR") == wrong_args("incr")
    assert err(raw, "INCR", "a", "b") == wrong_args("incr")
    assert err(raw, "INCRBY", "a") == wrong_args("incrby")
    assert err(raw, "DECRBY", "a") == wrong_args("decrby")


# ------------------------------------------------------------- INCRBYFLOAT

def test_incrbyfloat_docs_example(raw):
    # The example from the INCRBYFLOAT documentation; the reply is a bulk string.
    raw.execute("SET", "k", "10.50")
    assert raw.execute("INCRBYFLOAT", "k", "0.1") == b"10.6"
    assert raw.execute("INCRBYFLOAT", "k", "-5") == b"5.6"
    raw.execute("SET", "k", "5.0e3")
    assert raw.execute("INCRBYFLOAT", "k", "2.0e2") == b"5200"
    assert raw.execute("GET", "k") == b"5200"


def test_incrbyfloat_basic(raw, r):
    assert raw.execute("INCRBYFLOAT", "f", "3.0") == b"3"
    assert raw.execute("INCRBYFLOAT", "f", "0.25") == b"3.25"
    assert raw.execute("INCRBYFLOAT", "f", "-3.25") == b"0"
    assert raw.execute("INCRBYFLOAT", "f", "1e2") == b"100"
    raw.execute("SET", "i", "7")
    assert raw.execute("INCRBYFLOAT", "i", "1") == b"8"
    assert r.incr("i") == 9, "an integral float result is stored as an integer string"
    assert r.incrbyfloat("i", 0.5) == 9.5


@pytest.mark.parametrize("value", ["abc", "1.5.5", "", " 1", "1,5"])
def test_incrbyfloat_invalid_value(raw, value):
    raw.execute("SET", "k", value)
    assert err(raw, "INCRBYFLOAT", "k", "1") == NOT_FLOAT
    assert raw.execute("GET", "k") == value.encode()


@pytest.mark.parametrize("incr", ["abc", "", "nan", "1x"])
def test_incrbyfloat_invalid_increment(raw, incr):
    assert err(raw, "INCRBYFLOAT", "k", incr) == NOT_FLOAT
    assert raw.execute("EXISTS", "k") == 0


def test_incrbyfloat_infinity(raw):
    raw.execute("SET", "k", "1")
    assert err(raw, "INCRBYFLOAT", "k", "inf") == "ERR increment would produce NaN or Infinity"
    assert err(raw, "INCRBYFLOAT", "k", "-inf") == "ERR increment would produce NaN or Infinity"
    assert raw.execute("GET", "k") == b"1"


def test_incrbyfloat_arity(raw):
    assert err(raw, "INCRBYFLOAT", "k") == wrong_args("incrbyfloat")


# -------------------------------------------------------------- misc

def test_unknown_command_format(raw):
    # kvpool must format unknown commands exactly like redis (clients match on it).
    assert err(raw, "NOSUCHCMD", "a", "b") == \
        "ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' "
    assert err(raw, "nosuchcmd") == "ERR unknown command 'nosuchcmd', with args beginning with: "


def test_redis_py_sees_plain_errors(r):
    # redis-py strips the "ERR " code and raises ResponseError with the rest.
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.execute_command("SET", "k", "v", "EX", "abc")
    with pytest.raises(redis.ResponseError, match="^syntax error$"):
        r.execute_command("SET", "k", "v", "NX", "XX")
