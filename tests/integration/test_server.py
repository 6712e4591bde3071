"""Server commands: INFO, COMMAND, CONFIG GET/SET/RESETSTAT, TIME, MEMORY
USAGE, SHUTDOWN, clean exit on SIGTERM, and unknown commands (including the
other Redis data types, which kvpool does not implement).
"""

import fnmatch
import re
import signal
import time

import pytest
import redis

from resp import Verbatim
from util import SYNTAX, err, wrong_args

# The command set kvpool implements (MEXISTS is checked separately).
COMMANDS = [
    "get", "set", "setnx", "setex", "psetex", "getset", "getdel", "getex", "mget", "mset",
    "msetnx", "append", "strlen", "getrange", "setrange", "incr", "decr", "incrby", "decrby",
    "incrbyfloat", "del", "unlink", "exists", "type", "expire", "pexpire", "expireat",
    "pexpireat", "ttl", "pttl", "expiretime", "pexpiretime", "persist", "keys", "scan",
    "randomkey", "rename", "renamenx", "dbsize", "flushdb", "flushall", "select", "ping",
    "echo", "quit", "reset", "hello", "auth", "client", "multi", "exec", "discard", "watch",
    "unwatch", "info", "command", "config", "time", "memory", "shutdown",
]


def info_dict(text) -> dict:
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


def info_sections(text) -> list:
    if isinstance(text, bytes):
        text = text.decode()
    return [line[2:].strip().lower() for line in text.splitlines() if line.startswith("# ")]


def pairs(flat: list) -> dict:
    return dict(zip(flat[::2], flat[1::2]))


def node_infos(srv, section: str) -> list:
    """INFO <section> of every node of srv's pool ([srv] for one server), parsed.
    Keyspace and stats figures are per node; a test sums them over the pool."""
    out = []
    for node in srv.nodes:
        with node.raw() as c:
            out.append(info_dict(c.execute("INFO", section)))
    return out


def summed(infos: list, field: str) -> int:
    return sum(int(d[field]) for d in infos)


def keyspace_totals(srv) -> dict:
    """INFO keyspace summed over the nodes: {"db0": {"keys": 3, "expires": 1}, ...}."""
    totals: dict = {}
    for d in node_infos(srv, "keyspace"):
        for db, line in d.items():
            fields = dict(kv.split("=") for kv in line.split(","))
            assert {"keys", "expires", "avg_ttl"} <= set(fields), line
            t = totals.setdefault(db, {"keys": 0, "expires": 0})
            t["keys"] += int(fields["keys"])
            t["expires"] += int(fields["expires"])
    return totals


# ---------------------------------------------------------------------- INFO

def test_info_default(raw):
    text = raw.execute("INFO")
    assert isinstance(text, bytes)
    assert b"\r\n" in text, "INFO lines end with CRLF"
    d = info_dict(text)
    assert re.fullmatch(r"\d+\.\d+\.\d+", d["redis_version"]), d.get("redis_version")
    assert d["loading"] == "0"
    for section in ("server", "clients", "memory", "stats", "keyspace"):
        assert section in info_sections(text)


def test_info_server(server, raw):
    text = raw.execute("INFO", "server")
    assert info_sections(text) == ["server"]
    d = info_dict(text)
    assert "redis_version" in d
    assert int(d["tcp_port"]) == server.port
    assert int(d["process_id"]) == server.proc.pid
    assert int(d["uptime_in_seconds"]) >= 0


def test_info_clients(server, raw):
    extra = [server.raw() for _ in range(3)]
    for c in extra:  # accepted and registered before INFO counts them
        assert c.execute("PING") == "PONG"
    d = info_dict(raw.execute("INFO", "clients"))
    assert int(d["connected_clients"]) >= 4
    for c in extra:
        c.close()


def test_info_memory(raw):
    d = info_dict(raw.execute("INFO", "memory"))
    for field in ("used_memory", "used_memory_human", "maxmemory", "maxmemory_policy"):
        assert field in d, field
    assert int(d["used_memory"]) > 0
    assert int(d["maxmemory"]) >= 0


def test_info_stats(server, r, raw):
    before = info_dict(raw.execute("INFO", "stats"))
    for field in ("total_connections_received", "total_commands_processed", "keyspace_hits",
                  "keyspace_misses", "expired_keys", "evicted_keys"):
        assert field in before, field
    # Stats are per node: in a pool a key's hit is counted where the key lives.
    before = node_infos(server, "stats")
    r.set("k", "v")
    r.get("k")
    r.get("missing")
    after = node_infos(server, "stats")
    assert summed(after, "total_commands_processed") >= summed(before, "total_commands_processed") + 3
    assert summed(after, "keyspace_hits") >= summed(before, "keyspace_hits") + 1
    assert summed(after, "keyspace_misses") >= summed(before, "keyspace_misses") + 1


def test_info_keyspace(server, r, raw):
    # INFO keyspace describes the node that answers: in a pool each node lists
    # only the keys it holds, so the figures are summed over the nodes.
    assert info_dict(raw.execute("INFO", "keyspace")) == {}, "empty DBs are not listed"
    assert keyspace_totals(server) == {}
    r.mset({"a": "1", "b": "2", "c": "3"})
    r.expire("a", 100)
    r.execute_command("SELECT", "4")
    r.set("x", "1")
    r.execute_command("SELECT", "0")
    totals = keyspace_totals(server)
    assert set(totals) == {"db0", "db4"}
    assert totals["db0"] == {"keys": 3, "expires": 1}
    assert totals["db4"]["keys"] == 1
    # redis-py parses it too.
    assert sum(n.client().info("keyspace").get("db0", {}).get("keys", 0) for n in server.nodes) == 3


def test_info_redis_py(r):
    info = r.info()
    assert "redis_version" in info
    assert r.info("memory")["used_memory"] > 0


def test_info_multiple_and_unknown_sections(raw):
    text = raw.execute("INFO", "server", "clients")
    assert info_sections(text) == ["server", "clients"]
    assert raw.execute("INFO", "nosuchsection") == b""
    assert "redis_version" in info_dict(raw.execute("INFO", "SERVER")), "section names are case-insensitive"


def test_info_resp3(r3):
    text = r3.execute("INFO", "server")
    assert isinstance(text, bytes)
    if isinstance(text, Verbatim):
        assert text.format == b"txt"
    assert "redis_version" in info_dict(text)


@pytest.mark.kvpool_only
def test_info_pool_section(raw):
    text = raw.execute("INFO", "pool")
    assert info_sections(text) == ["pool"], text
    assert len(info_dict(text)) > 0, "the pool section has fields"


# ------------------------------------------------------------------- COMMAND

def test_command_count_and_list(raw):
    count = raw.execute("COMMAND", "COUNT")
    assert isinstance(count, int) and count >= len(COMMANDS)
    names = {n.decode().lower() for n in raw.execute("COMMAND", "LIST")}
    missing = [c for c in COMMANDS if c not in names]
    assert not missing, f"COMMAND LIST lacks {missing}"
    assert len(raw.execute("COMMAND")) == count


@pytest.mark.parametrize("name,arity,first,last,step,flag", [
    ("get", 2, 1, 1, 1, "readonly"),
    ("set", -3, 1, 1, 1, "write"),
    ("mget", -2, 1, -1, 1, "readonly"),
    ("mset", -3, 1, -1, 2, "write"),
    ("del", -2, 1, -1, 1, "write"),
    ("exists", -2, 1, -1, 1, "readonly"),
    ("rename", 3, 1, 2, 1, "write"),
    ("ping", -1, 0, 0, 0, "fast"),
])
def test_command_info(raw, name, arity, first, last, step, flag):
    (entry,) = raw.execute("COMMAND", "INFO", name)
    assert entry[0] == name.encode()
    assert entry[1] == arity
    assert flag in entry[2]
    assert entry[3:6] == [first, last, step]


@pytest.mark.kvpool_only
def test_command_info_mexists(raw):
    (entry,) = raw.execute("COMMAND", "INFO", "mexists")
    assert entry[0] == b"mexists"
    assert entry[1] == -2
    assert "readonly" in entry[2]
    assert entry[3:6] == [1, -1, 1]
    assert b"mexists" in raw.execute("COMMAND", "LIST")


def test_command_info_multiple_and_unknown(raw):
    reply = raw.execute("COMMAND", "INFO", "get", "nosuchcommand", "SET")
    assert len(reply) == 3
    assert reply[0][0] == b"get"
    assert reply[1] is None
    assert reply[2][0] == b"set"


def test_command_docs(raw):
    reply = raw.execute("COMMAND", "DOCS", "get")
    docs = pairs(reply)
    assert set(docs) == {b"get"}
    fields = pairs(docs[b"get"])
    assert b"summary" in fields and fields[b"summary"]
    assert fields.get(b"group") == b"string"
    assert raw.execute("COMMAND", "DOCS", "nosuchcommand") == []


def test_command_docs_resp3_map(r3):
    reply = r3.execute("COMMAND", "DOCS", "get")
    assert isinstance(reply, dict) and isinstance(reply[b"get"], dict)
    assert reply[b"get"][b"summary"]


def test_command_errors(raw):
    assert err(raw, "COMMAND", "FOO") == "ERR unknown subcommand 'FOO'. Try COMMAND HELP."
    assert err(raw, "COMMAND", "COUNT", "x").startswith("ERR wrong number of arguments")


# -------------------------------------------------------------------- CONFIG

def test_config_get_exact(server, raw):
    assert pairs(raw.execute("CONFIG", "GET", "save")) == {b"save": b""}
    assert pairs(raw.execute("CONFIG", "GET", "appendonly")) == {b"appendonly": b"no"}
    assert pairs(raw.execute("CONFIG", "GET", "port")) == {b"port": str(server.port).encode()}
    assert pairs(raw.execute("CONFIG", "GET", "databases")) == {b"databases": b"16"}
    assert raw.execute("CONFIG", "GET", "nosuchparam") == []


def test_config_get_glob(raw):
    got = pairs(raw.execute("CONFIG", "GET", "maxmemory*"))
    assert {b"maxmemory", b"maxmemory-policy"} <= set(got)
    assert all(fnmatch.fnmatchcase(k.decode(), "maxmemory*") for k in got)
    assert int(got[b"maxmemory"]) >= 0
    everything = pairs(raw.execute("CONFIG", "GET", "*"))
    assert {b"maxmemory", b"save", b"appendonly", b"port", b"databases"} <= set(everything)


def test_config_get_multiple(raw):
    got = pairs(raw.execute("CONFIG", "GET", "maxmemory", "save", "appendonly"))
    assert set(got) == {b"maxmemory", b"save", b"appendonly"}


def test_config_get_resp3_map(r3):
    got = r3.execute("CONFIG", "GET", "maxmemory")
    assert isinstance(got, dict)
    assert r3.last_raw.startswith(b"%1\r\n")
    assert set(got) == {b"maxmemory"}


def test_config_get_redis_py(r):
    cfg = r.config_get("maxmemory*")
    assert b"maxmemory" in cfg or "maxmemory" in cfg


@pytest.fixture
def cfg_server(server_factory):
    return server_factory(name="config")


def test_config_set_maxmemory(cfg_server):
    c = cfg_server.raw()
    assert c.execute("CONFIG", "SET", "maxmemory", "10mb") == "OK"
    assert pairs(c.execute("CONFIG", "GET", "maxmemory")) == {b"maxmemory": b"10485760"}
    assert info_dict(c.execute("INFO", "memory"))["maxmemory"] == "10485760"
    assert c.execute("CONFIG", "SET", "maxmemory", "12345678") == "OK"
    assert pairs(c.execute("CONFIG", "GET", "maxmemory")) == {b"maxmemory": b"12345678"}
    assert c.execute("CONFIG", "SET", "MAXMEMORY", "1gb") == "OK", "parameter names are case-insensitive"
    assert pairs(c.execute("CONFIG", "GET", "maxmemory")) == {b"maxmemory": b"1073741824"}
    assert err(c, "CONFIG", "SET", "maxmemory", "abc").startswith(
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory')")
    assert pairs(c.execute("CONFIG", "GET", "maxmemory")) == {b"maxmemory": b"1073741824"}


def test_config_set_maxmemory_policy(cfg_server):
    c = cfg_server.raw()
    for policy in ("allkeys-lru", "noeviction", "allkeys-random", "volatile-lru"):
        assert c.execute("CONFIG", "SET", "maxmemory-policy", policy) == "OK"
        assert pairs(c.execute("CONFIG", "GET", "maxmemory-policy")) == {b"maxmemory-policy": policy.encode()}
        assert info_dict(c.execute("INFO", "memory"))["maxmemory_policy"] == policy
    assert err(c, "CONFIG", "SET", "maxmemory-policy", "bogus").startswith(
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy')")


def test_config_set_loglevel(cfg_server):
    c = cfg_server.raw()
    for level in ("warning", "notice", "verbose", "debug", "warning"):
        assert c.execute("CONFIG", "SET", "loglevel", level) == "OK"
        assert pairs(c.execute("CONFIG", "GET", "loglevel")) == {b"loglevel": level.encode()}
    assert err(c, "CONFIG", "SET", "loglevel", "chatty").startswith(
        "ERR CONFIG SET failed (possibly related to argument 'loglevel')")


def test_config_set_several_at_once(cfg_server):
    c = cfg_server.raw()
    assert c.execute("CONFIG", "SET", "maxmemory", "20mb", "maxmemory-policy", "allkeys-lru") == "OK"
    assert pairs(c.execute("CONFIG", "GET", "maxmemory", "maxmemory-policy")) == {
        b"maxmemory": b"20971520", b"maxmemory-policy": b"allkeys-lru"}


def test_config_set_errors(cfg_server):
    c = cfg_server.raw()
    assert err(c, "CONFIG", "SET", "nosuchparam", "1") == \
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuchparam'"
    assert err(c, "CONFIG", "SET", "maxmemory").startswith("ERR wrong number of arguments")
    assert err(c, "CONFIG", "GET").startswith("ERR wrong number of arguments")
    assert err(c, "CONFIG", "FOO") == "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
    assert err(c, "CONFIG") == wrong_args("config")


def test_config_resetstat(cfg_server):
    c = cfg_server.raw()
    for i in range(20):
        c.execute("SET", f"k{i}", "v")
        c.execute("GET", f"k{i}")
        c.execute("GET", "missing")
    # Hits are counted where the key lives (any node of a pool).
    assert summed(node_infos(cfg_server, "stats"), "keyspace_hits") >= 20
    assert c.execute("CONFIG", "RESETSTAT") == "OK"
    after = info_dict(c.execute("INFO", "stats"))
    assert after["keyspace_hits"] == "0"
    assert after["keyspace_misses"] == "0"
    assert int(after["total_commands_processed"]) <= 2
    assert c.execute("DBSIZE") == 20, "RESETSTAT does not touch data"
    assert err(c, "CONFIG", "RESETSTAT", "x").startswith("ERR wrong number of arguments")


def test_config_file(server_factory, tmp_path):
    conf = tmp_path / "kvpool.conf"
    conf.write_text("# a redis-style config file\n"
                    "maxmemory 16mb\n"
                    "maxmemory-policy allkeys-lru\n"
                    "\n"
                    "loglevel warning\n")
    srv = server_factory(config_file=str(conf), name="conf-file")
    c = srv.raw()
    got = pairs(c.execute("CONFIG", "GET", "maxmemory*"))
    assert got[b"maxmemory"] == b"16777216"
    assert got[b"maxmemory-policy"] == b"allkeys-lru"
    assert pairs(c.execute("CONFIG", "GET", "loglevel")) == {b"loglevel": b"warning"}
    # Command-line options come after the file, as with redis-server (the
    # harness adds --port/--bind): the server listens where we asked.
    assert pairs(c.execute("CONFIG", "GET", "port")) == {b"port": str(srv.port).encode()}


def test_command_line_overrides_config_file(server_factory, tmp_path):
    conf = tmp_path / "kvpool.conf"
    conf.write_text("maxmemory 16mb\nmaxmemory-policy allkeys-lru\n")
    srv = server_factory("--maxmemory", "8mb", config_file=str(conf), name="conf-override")
    c = srv.raw()
    got = pairs(c.execute("CONFIG", "GET", "maxmemory*"))
    assert got[b"maxmemory"] == b"8388608"
    assert got[b"maxmemory-policy"] == b"allkeys-lru"


# --------------------------------------------------------------------- TIME

def test_time(raw):
    before = time.time()
    reply = raw.execute("TIME")
    after = time.time()
    assert isinstance(reply, list) and len(reply) == 2
    assert all(isinstance(x, bytes) for x in reply), "TIME replies with two bulk strings"
    secs, usecs = int(reply[0]), int(reply[1])
    assert 0 <= usecs < 1_000_000
    t = secs + usecs / 1e6
    assert before - 1 <= t <= after + 1
    assert err(raw, "TIME", "x") == wrong_args("time")


def test_time_redis_py(r):
    secs, usecs = r.time()
    assert abs(secs - time.time()) < 5


# ------------------------------------------------------------- MEMORY USAGE

def test_memory_usage(r, raw):
    r.set("small", "v")
    r.set("big", b"x" * 100_000)
    small = r.memory_usage("small")
    big = r.memory_usage("big")
    assert isinstance(small, int) and small > 0
    assert big >= 100_000
    assert big < 200_000
    assert r.memory_usage("missing") is None
    assert isinstance(raw.execute("MEMORY", "USAGE", "big", "SAMPLES", "5"), int)
    assert err(raw, "MEMORY", "USAGE", "big", "SAMPLES") == SYNTAX
    assert err(raw, "MEMORY", "USAGE").startswith("ERR wrong number of arguments")


# ------------------------------------------------------------------ SHUTDOWN

@pytest.mark.parametrize("args", [(), ("NOSAVE",)])
def test_shutdown(server_factory, args):
    srv = server_factory(name="shutdown")
    c = srv.client()
    c.set("k", "v")
    if args:
        with pytest.raises(redis.ConnectionError):
            c.execute_command("SHUTDOWN", *args)
    else:
        c.shutdown()  # redis-py expects the connection to drop
    assert srv.wait_exit(10) == 0, "the server exits with status 0 after SHUTDOWN"
    with pytest.raises(redis.ConnectionError):
        srv.client(socket_timeout=2, socket_connect_timeout=2).ping()


def test_shutdown_with_requirepass_needs_auth(server_factory):
    srv = server_factory("--requirepass", "pw", name="shutdown-auth")
    c = srv.raw(auth=False)
    assert err(c, "SHUTDOWN") == "NOAUTH Authentication required."
    assert srv.alive()
    c.execute("AUTH", "pw")
    c.send_command("SHUTDOWN")
    assert srv.wait_exit(10) == 0


def test_sigterm_exits_cleanly(server_factory):
    srv = server_factory(name="sigterm")
    c = srv.client()
    c.mset({f"k{i}": "v" * 100 for i in range(1000)})
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.wait_exit(10) == 0, "SIGTERM: graceful exit with status 0"


# ---------------------------------------------------------- unknown commands

def test_unknown_command_formats(raw):
    assert err(raw, "NOSUCH") == "ERR unknown command 'NOSUCH', with args beginning with: "
    assert err(raw, "nosuch", "a", "b c") == "ERR unknown command 'nosuch', with args beginning with: 'a' 'b c' "
    # Arguments are cut after ~128 characters in total.
    assert err(raw, "NOSUCH", "x" * 200, "y") == \
        "ERR unknown command 'NOSUCH', with args beginning with: '" + "x" * 128 + "' "
    assert err(raw, "NOSUCH", "a" * 100, "b" * 100, "c") == \
        "ERR unknown command 'NOSUCH', with args beginning with: '" + "a" * 100 + "' '" + "b" * 25 + "' "
    # CR/LF in the echoed text must not break the error line.
    assert err(raw, "NOSUCH", "a\r\nb", "c") == "ERR unknown command 'NOSUCH', with args beginning with: 'a  b' 'c' "
    assert raw.execute("PING") == "PONG"


OTHER_TYPES = [
    ("lpush", "k", "v"), ("rpush", "k", "v"), ("lpop", "k"), ("lrange", "k", "0", "-1"), ("llen", "k"),
    ("hset", "k", "f", "v"), ("hget", "k", "f"), ("hgetall", "k"), ("hincrby", "k", "f", "1"),
    ("sadd", "k", "m"), ("smembers", "k"), ("spop", "k"), ("sismember", "k", "m"),
    ("zadd", "k", "1", "m"), ("zrange", "k", "0", "-1"), ("zpopmin", "k"), ("zscore", "k", "m"),
    ("xadd", "s", "*", "f", "v"), ("xrange", "s", "-", "+"), ("pfadd", "k", "a"),
    ("setbit", "k", "1", "1"), ("geoadd", "k", "0", "0", "m"),
]


@pytest.mark.kvpool_only
@pytest.mark.parametrize("cmd", OTHER_TYPES, ids=[c[0] for c in OTHER_TYPES])
def test_other_data_types_are_unknown(raw, cmd):
    args = "".join(f"'{a}' " for a in cmd[1:])
    assert err(raw, *cmd) == f"ERR unknown command '{cmd[0]}', with args beginning with: {args}"
    assert raw.execute("EXISTS", cmd[1]) == 0


@pytest.mark.kvpool_only
def test_other_data_types_unknown_keeps_case(raw):
    assert err(raw, "LPUSH", "k", "v") == "ERR unknown command 'LPUSH', with args beginning with: 'k' 'v' "


def test_connection_survives_unknown_commands(raw):
    for _ in range(3):
        err(raw, "NOSUCH", "x")
    raw.execute("SET", "k", "v")
    assert raw.execute("GET", "k") == b"v"
