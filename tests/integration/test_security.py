"""Security of the client port (issue 7): requirepass, protected mode and
disabled commands.

- requirepass: before AUTH, each of ~30 commands (reads, writes, MSET and
  MEXISTS, KEYS and SCAN, CONFIG GET/SET, FLUSHALL/FLUSHDB, INFO, DBSIZE,
  POOL NODES, CLIENT LIST/KILL, SELECT, MULTI/EXEC, SHUTDOWN, ...) is
  answered "-NOAUTH Authentication required.", one by one and pipelined, on
  every node of the pool; afterwards an authenticated client finds every
  key, value, TTL and setting exactly as before and the server still up.
  After AUTH the same commands work.
- protected mode: a server bound to a non-loopback address (one end of a
  veth pair) with no password refuses a client in another network namespace
  with Redis's "-DENIED Redis is running in protected mode ..." and closes
  the connection; what such a client sent is not executed; a loopback
  client is served. With requirepass, with --protected-mode no, or after
  CONFIG SET protected-mode no (from loopback) the same client is served.
  The namespace is created with `ip netns` (root needed); if that fails the
  test FAILS, it does not skip.
- disabled commands: FLUSHALL, KEYS, CONFIG and SHUTDOWN switched off with
  `rename-command NAME ""` (config file) or `disable-commands` answer Redis's
  "ERR unknown command '...', with args beginning with: ..." in any case,
  also inside MULTI (then EXEC aborts), and the data is untouched.
- cross-protocol scripting: an HTTP request (POST, or a Host: header line)
  closes the connection unanswered; commands in its body never run; the
  attempt is logged once.

Node-to-node authentication (pool-secret: a fake peer without the secret
can neither join, nor read a value, nor learn the secret) is covered by
test_pool_security.py over TCP (wrong-secret nodes, a fake node listening in
place of a peer, hostile raw clients on the pool port); the RDMA transport
runs that same file in the RDMA job (tests/rdma/run.sh,
KVPOOL_POOL_TRANSPORT=rdma). It is not repeated here.

The requirepass and disabled-command tests follow the mode of the suite (a
pool of KVPOOL_POOL_NODES nodes, every node checked); protected mode is
about one process's accept path and always starts single servers.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
import sys
import time

import pytest

from conftest import USE_REDIS, ServerProcess
from resp import RespError, encode_command

NOAUTH = "NOAUTH Authentication required."
# redis-server 7.0 words a refused EXEC this way (kvpool: plain NOAUTH).
EXEC_NOAUTH = "EXECABORT Transaction discarded because of: " + NOAUTH
PASSWORD = "sec-" + os.urandom(6).hex()

# kvpool's text (server/server.cc), the one of Redis 7.2+; redis-server 7.0
# words point 4 "Setup a an authentication password".
DENIED = (
    "-DENIED Redis is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted from "
    "the loopback interface. If you want to connect from external computers to Redis you "
    "may adopt one of the following solutions: 1) Just disable protected mode sending the "
    "command 'CONFIG SET protected-mode no' from the loopback interface by connecting to "
    "Redis from the same host the server is running, however MAKE SURE Redis is not "
    "publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change "
    "permanent. 2) Alternatively you can just disable the protected mode by editing the "
    "Redis configuration file, and setting the protected mode option to 'no', and then "
    "restarting the server. 3) If you started the server manually just for testing, "
    "restart it with the '--protected-mode no' option. 4) Set up an authentication "
    "password for the default user. NOTE: You only need to do one of the above things in "
    "order for the server to start accepting connections from the outside.\r\n").encode()
DENIED_REDIS70 = DENIED.replace(b"4) Set up an", b"4) Setup a an")


def unknown(name: str, *args: str) -> str:
    """Redis 7's unknown-command error text."""
    return f"ERR unknown command '{name}', with args beginning with: " + "".join(f"'{a}' " for a in args)


# --------------------------------------------------------------- requirepass

def _commands_before_auth() -> list:
    cmds = [
        ("PING",), ("ECHO", "hi"),
        ("GET", "sec:a"), ("SET", "sec:new", "x"), ("SET", "sec:a", "overwritten"),
        ("MGET", "sec:a", "sec:b"), ("MSET", "sec:new", "1", "sec:a", "2"), ("MSETNX", "sec:new2", "1"),
        ("DEL", "sec:a"), ("UNLINK", "sec:b"), ("EXISTS", "sec:a"), ("INCR", "sec:n"),
        ("APPEND", "sec:a", "more"), ("GETDEL", "sec:b"), ("EXPIRE", "sec:a", "1"),
        ("PERSIST", "sec:ttl"), ("RENAME", "sec:a", "sec:renamed"), ("TYPE", "sec:a"), ("TTL", "sec:ttl"),
        ("KEYS", "*"), ("SCAN", "0"), ("DBSIZE",), ("RANDOMKEY",),
        ("CONFIG", "GET", "maxmemory"), ("CONFIG", "SET", "maxmemory", "1mb"),
        ("CONFIG", "SET", "requirepass", ""),
        ("FLUSHALL",), ("FLUSHDB",), ("INFO",), ("INFO", "keyspace"),
        ("CLIENT", "LIST"), ("CLIENT", "KILL", "TYPE", "normal"), ("CLIENT", "SETNAME", "x"),
        ("SELECT", "1"), ("MULTI",), ("EXEC",), ("WATCH", "sec:a"),
        ("SHUTDOWN", "NOSAVE"), ("SHUTDOWN",),
    ]
    if not USE_REDIS:
        cmds += [("MEXISTS", "sec:a", "sec:b"), ("POOL", "NODES")]
    return cmds


def _noauth(cmd: tuple, reply) -> bool:
    ok = (NOAUTH, EXEC_NOAUTH) if cmd[0] == "EXEC" else (NOAUTH,)
    return isinstance(reply, RespError) and reply.message in ok


def _snapshot(srv: ServerProcess) -> dict:
    """Everything the commands above could change, read by authenticated clients."""
    with srv.raw() as c:
        keys = sorted(c.execute("KEYS", "*"))
        values = c.execute("MGET", *keys) if keys else []
        ttl = c.execute("TTL", "sec:ttl")
        db1 = c.execute("SELECT", "1") and c.execute("DBSIZE")
    conf = {}
    for n in srv.nodes:
        with n.raw() as c:
            conf[n.name] = (c.execute("CONFIG", "GET", "maxmemory"), c.execute("CONFIG", "GET", "requirepass"))
    return {"keys": keys, "values": values, "ttl_set": 0 < ttl <= 1000, "db1": db1, "config": conf}


def test_no_command_works_before_auth(server_factory):
    srv = server_factory("--requirepass", PASSWORD, name="requirepass")
    with srv.raw() as c:
        assert c.execute("MSET", "sec:a", "va", "sec:b", "vb", "sec:n", "41") == "OK"
        assert c.execute("SET", "sec:ttl", "vt", "EX", "1000") == "OK"
        assert c.execute("SELECT", "1") == "OK" and c.execute("SET", "sec:db1", "v1") == "OK"
    before = _snapshot(srv)
    watcher = srv.raw()
    assert watcher.execute("PING") == "PONG"
    cmds = _commands_before_auth()

    for node in srv.nodes:
        # One by one, then all pipelined in a single write.
        c = node.raw(auth=False)
        for cmd in cmds:
            reply = c.execute(*cmd)
            assert _noauth(cmd, reply), f"{node.name}: {' '.join(cmd)} before AUTH answered {reply!r}"
        replies = c.pipeline(cmds)
        bad = [(cmd, r) for cmd, r in zip(cmds, replies) if not _noauth(cmd, r)]
        assert not bad, f"{node.name}: pipelined before AUTH: {bad[:5]}"
        # A wrong password changes nothing either.
        reply = c.execute("AUTH", "not-" + PASSWORD)
        assert isinstance(reply, RespError) and reply.message.startswith("WRONGPASS"), reply
        reply = c.execute("FLUSHALL")
        assert isinstance(reply, RespError) and reply.message == NOAUTH, reply
        c.close()
        assert node.alive(), f"{node.name} exited after an unauthenticated SHUTDOWN"

    assert watcher.execute("PING") == "PONG", "CLIENT KILL before AUTH killed an authenticated client"
    watcher.close()
    after = _snapshot(srv)
    assert after == before, f"state changed by unauthenticated commands:\nbefore {before}\nafter  {after}"

    # After AUTH the same commands work (the destructive ones last).
    c = srv.raw(auth=False)
    assert c.execute("AUTH", PASSWORD) == "OK"
    assert c.execute("PING") == "PONG"
    assert c.execute("GET", "sec:a") == b"va"
    assert c.execute("SET", "sec:new", "x") == "OK"
    assert c.execute("MGET", "sec:a", "sec:new") == [b"va", b"x"]
    assert c.execute("MSET", "sec:m1", "1", "sec:m2", "2") == "OK"
    assert c.execute("INCR", "sec:n") == 42
    assert c.execute("EXPIRE", "sec:a", "100") == 1
    assert c.execute("TTL", "sec:a") > 0
    assert c.execute("RENAME", "sec:m1", "sec:renamed") == "OK"
    assert b"sec:renamed" in c.execute("KEYS", "sec:*")
    assert isinstance(c.execute("SCAN", "0"), list)
    assert c.execute("DBSIZE") == len(before["keys"]) + 3
    assert c.execute("CONFIG", "GET", "maxmemory")[0] == b"maxmemory"
    assert b"# Keyspace" in c.execute("INFO")
    assert b"id=" in c.execute("CLIENT", "LIST")
    if not USE_REDIS:
        assert c.execute("MEXISTS", "sec:a", "sec:nope", "sec:renamed") == [1, 0, 1]
        assert b"myself" in c.execute("POOL", "NODES")
    assert c.execute("MULTI") == "OK" and c.execute("INCR", "sec:n") == "QUEUED"
    assert c.execute("EXEC") == [43]
    assert c.execute("FLUSHALL") == "OK"
    assert c.execute("DBSIZE") == 0
    c.close()


# ------------------------------------------------------------ protected mode

_CLIENT = r"""
import json, socket, sys
host, port, payload, wait = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), float(sys.argv[4])
out = {"connected": False, "data": "", "closed": False, "error": None}
try:
    s = socket.create_connection((host, port), timeout=10)
    out["connected"] = True
    if payload:
        s.sendall(payload)
    s.settimeout(wait)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                out["closed"] = True
                break
            data += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        out["closed"] = "reset"
    out["data"] = data.hex()
except OSError as e:
    out["error"] = repr(e)
print(json.dumps(out))
"""


class NetNs:
    """A network namespace joined to this one by a veth pair:
    host end `host_ip`, namespace end `ns_ip` (a /30 of 10.x.y.z)."""

    def __init__(self):
        tag = f"kvs{os.getpid()}"
        self.ns, self.host_if, self.ns_if = tag, tag + "h", tag + "n"
        self.created = []

    def _ip(self, *args, ns: bool = False) -> None:
        argv = (["ip", "netns", "exec", self.ns] if ns else []) + ["ip", *args]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv)}` failed ({p.returncode}): {p.stderr.strip()}")

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        nets = [ipaddress.ip_interface(tok).network for line in used.splitlines()
                for i, tok in enumerate(line.split()) if line.split()[i - 1] == "inet"]
        rnd = random.Random(os.getpid() ^ int(time.time()))
        for _ in range(200):
            net = ipaddress.ip_network(f"10.{rnd.randint(200, 250)}.{rnd.randint(0, 255)}.{rnd.randrange(0, 256, 4)}/30")
            if not any(net.overlaps(n) for n in nets):
                return net
        raise RuntimeError("no free 10.x.y.z/30 subnet found")

    def create(self) -> "NetNs":
        net = self._pick_subnet()
        self.host_ip, self.ns_ip = str(net.network_address + 1), str(net.network_address + 2)
        self._ip("netns", "add", self.ns)
        self.created.append("ns")
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self.created.append("veth")
        self._ip("link", "set", self.ns_if, "netns", self.ns)
        self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if, ns=True)
        self._ip("link", "set", self.ns_if, "up", ns=True)
        self._ip("link", "set", "lo", "up", ns=True)
        return self

    def destroy(self) -> None:
        # Deleting the namespace deletes its veth end, and with it the pair.
        if "veth" in self.created:
            subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        if "ns" in self.created:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        self.created = []

    def client(self, port: int, payload: bytes = b"", wait: float = 5.0) -> dict:
        """Connect from inside the namespace to host_ip:port, send payload,
        read until the server closes or `wait` seconds of silence."""
        argv = ["ip", "netns", "exec", self.ns, sys.executable, "-c", _CLIENT,
                self.host_ip, str(port), payload.hex(), str(wait)]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60 + wait)
        assert p.returncode == 0, f"client in namespace {self.ns} failed: {p.stderr.strip()}"
        out = json.loads(p.stdout)
        assert out["connected"], f"client in {self.ns} could not connect to {self.host_ip}:{port}: {out['error']}"
        out["data"] = bytes.fromhex(out["data"])
        return out


@pytest.fixture(scope="module")
def netns():
    if os.geteuid() != 0:
        pytest.fail("protected-mode tests need root to create a network namespace (ip netns add); "
                    "run the suite as root", pytrace=False)
    ns = NetNs()
    try:
        ns.create()
    except Exception as e:
        ns.destroy()
        pytest.fail(f"could not set up a network namespace joined by a veth pair: {e}", pytrace=False)
    yield ns
    ns.destroy()


def _bound_server(netns: NetNs, *args: str, name: str) -> ServerProcess:
    # The later --bind wins over the harness's loopback one: both addresses.
    s = ServerProcess("--bind", f"{netns.host_ip} 127.0.0.1", *args, name=name)
    return s.start()


@pytest.fixture
def bound(netns):
    started = []

    def start(*args: str, name: str = "protected") -> ServerProcess:
        s = _bound_server(netns, *args, name=name)
        started.append(s)
        return s

    yield start
    died = [s for s in started if not s.alive()]
    for s in started:
        s.stop()
    assert not died, f"{[s.name for s in died]} died during the test"


PING_QUIT = encode_command("PING") + encode_command("QUIT")


def _assert_denied(out: dict, what: str) -> None:
    ok = (DENIED, DENIED_REDIS70) if USE_REDIS else (DENIED,)
    assert out["data"] in ok, f"{what}: expected the DENIED reply, got {out['data'][:200]!r}"
    assert out["closed"], f"{what}: the connection was not closed after DENIED"


def test_protected_mode_refuses_a_client_from_another_namespace(netns, bound):
    srv = bound(name="protected")
    # Loopback is served.
    with srv.raw() as c:
        assert c.execute("PING") == "PONG"
        assert c.execute("SET", "pm:k", "v") == "OK"
    # From the other namespace: DENIED, then closed, without sending anything.
    _assert_denied(netns.client(srv.port), "a non-loopback client")
    # What a refused client sends is never executed.
    netns.client(srv.port, encode_command("SET", "pm:intruder", "x") + encode_command("FLUSHALL"), wait=2)
    with srv.raw() as c:
        assert c.execute("EXISTS", "pm:intruder") == 0, "a refused client's SET was executed"
        assert c.execute("GET", "pm:k") == b"v", "a refused client's FLUSHALL was executed"
        if not USE_REDIS:
            stats = c.execute("INFO", "stats").decode()
            assert "protected_mode_rejections:2" in stats, stats
    assert srv.alive()

    # Redis's first way out: CONFIG SET protected-mode no from loopback.
    with srv.raw() as c:
        assert c.execute("CONFIG", "SET", "protected-mode", "no") == "OK"
    out = netns.client(srv.port, PING_QUIT)
    assert out["data"] == b"+PONG\r\n+OK\r\n" and out["closed"], out
    with srv.raw() as c:
        assert c.execute("CONFIG", "SET", "protected-mode", "yes") == "OK"
    _assert_denied(netns.client(srv.port), "after CONFIG SET protected-mode yes")


def test_protected_mode_no_serves_the_client(netns, bound):
    srv = bound("--protected-mode", "no", name="unprotected")
    out = netns.client(srv.port, encode_command("SET", "pm:from-ns", "1") + PING_QUIT)
    assert out["data"] == b"+OK\r\n+PONG\r\n+OK\r\n" and out["closed"], out
    with srv.raw() as c:
        assert c.execute("GET", "pm:from-ns") == b"1"


def test_protected_mode_with_requirepass_serves_the_client(netns, bound):
    srv = bound("--requirepass", PASSWORD, name="protected-pass")
    # Served (not DENIED): the password protects it, so NOAUTH until AUTH.
    out = netns.client(srv.port, encode_command("GET", "k") + encode_command("AUTH", PASSWORD) + PING_QUIT)
    assert out["data"] == b"-" + NOAUTH.encode() + b"\r\n+OK\r\n+PONG\r\n+OK\r\n" and out["closed"], out
    with srv.raw() as c:
        assert c.execute("PING") == "PONG"
    # A password set at run time opens the door as well; removing it closes it.
    plain = bound(name="protected-later")
    _assert_denied(netns.client(plain.port), "before CONFIG SET requirepass")
    with plain.raw() as c:
        assert c.execute("CONFIG", "SET", "requirepass", PASSWORD) == "OK"
    out = netns.client(plain.port, encode_command("AUTH", PASSWORD) + PING_QUIT)
    assert out["data"] == b"+OK\r\n+PONG\r\n+OK\r\n", out
    with plain.raw(auth=False) as c:
        assert c.execute("AUTH", PASSWORD) == "OK"
        assert c.execute("CONFIG", "SET", "requirepass", "") == "OK"
    _assert_denied(netns.client(plain.port), "after CONFIG SET requirepass \"\"")


# --------------------------------------------------------- disabled commands

DISABLED = ("FLUSHALL", "KEYS", "CONFIG", "SHUTDOWN")


@pytest.fixture(params=["rename-command", "disable-commands"])
def locked(request, server_factory, tmp_path):
    if request.param == "rename-command":
        conf = tmp_path / "locked.conf"
        conf.write_text("".join(f'rename-command {c} ""\n' for c in DISABLED))
        return server_factory(config_file=str(conf), name="renamed")
    if USE_REDIS:
        pytest.skip("disable-commands is kvpool's; redis-server has rename-command only")
    return server_factory("--disable-commands", " ".join(c.lower() for c in DISABLED), name="disabled")


def test_disabled_commands_are_unknown(locked):
    srv = locked
    with srv.raw() as c:
        data = {f"dc:{i}": f"value-{i}" for i in range(50)}
        assert c.execute("MSET", *[x for kv in data.items() for x in kv]) == "OK"
        assert c.execute("SET", "dc:ttl", "t", "EX", "1000") == "OK"
    calls = [("FLUSHALL",), ("FLUSHALL", "ASYNC"), ("flushall",), ("KEYS", "*"), ("keys", "dc:*"),
             ("CONFIG", "GET", "maxmemory"), ("CONFIG", "SET", "maxmemory", "1mb"), ("config", "resetstat"),
             ("SHUTDOWN",), ("SHUTDOWN", "NOSAVE"), ("shutdown", "now")]
    for node in srv.nodes:
        with node.raw() as c:
            for call in calls:
                reply = c.execute(*call)
                assert isinstance(reply, RespError) and reply.message == unknown(*call), \
                    f"{node.name}: {' '.join(call)} answered {reply!r}"
            # Inside MULTI: refused when queued, and EXEC aborts.
            assert c.execute("MULTI") == "OK"
            assert c.execute("SET", "dc:0", "changed") == "QUEUED"
            reply = c.execute("FLUSHALL")
            assert isinstance(reply, RespError) and reply.message == unknown("FLUSHALL"), reply
            reply = c.execute("EXEC")
            assert isinstance(reply, RespError) and reply.message.startswith("EXECABORT"), reply
            assert node.alive(), f"{node.name} exited after a disabled SHUTDOWN"
    with srv.raw() as c:
        # The data is untouched and other commands still work.
        assert c.execute("MGET", *data) == [v.encode() for v in data.values()]
        assert 0 < c.execute("TTL", "dc:ttl") <= 1000
        assert c.execute("DBSIZE") == len(data) + 1
        assert c.execute("PING") == "PONG"
        assert b"maxmemory:" in c.execute("INFO", "memory")
        assert c.execute("FLUSHDB") == "OK"  # not disabled
        assert c.execute("DBSIZE") == 0


# ---------------------------------------------------------------------------
# cross-protocol scripting (issue 13): a browser page that POSTs to the
# cache's port sends an HTTP request whose lines would each run as an inline
# command. As Redis, a command POST or Host: closes the connection unanswered,
# so the body's commands never run; it is logged once per process.
# ---------------------------------------------------------------------------

def _send_and_read_all(srv: ServerProcess, payload: bytes, timeout: float = 5.0) -> bytes:
    import socket
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        s.sendall(payload)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return out  # closed by the server
            out += chunk
        raise AssertionError(f"the server kept the connection open; it answered {out!r:.200}")
    finally:
        s.close()


@pytest.mark.parametrize("first_line", [b"POST / HTTP/1.1", b"post /x HTTP/1.0", b"Host: 127.0.0.1"])
def test_http_request_closes_the_connection_and_runs_nothing(server, r, first_line):
    key = "xproto:" + os.urandom(4).hex()
    body = f"SET {key} pwned\r\nFLUSHALL\r\n".encode()
    request = (first_line + b"\r\nHost: 127.0.0.1:6379\r\nContent-Type: text/plain\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    r.set("xproto:kept", "1")
    out = _send_and_read_all(server, request)
    assert out == b"", f"answered an HTTP request with {out!r:.200}"
    assert r.get(key) is None, "a command in the HTTP body ran"
    assert r.get("xproto:kept") == b"1", "FLUSHALL in the HTTP body ran"
    assert r.ping()
    if not USE_REDIS:
        logs = "".join(n.log_tail(2000) for n in server.nodes)
        assert logs.count("possible SECURITY ATTACK") == 1, "not logged, or logged more than once"


def test_http_request_after_commands_runs_them_then_closes(server, r):
    # Commands before the POST line run (kvpool answers them; redis-server
    # 7.0 drops their pending replies as it frees the client); nothing after
    # it runs.
    out = _send_and_read_all(server, encode_command("SET", "xproto:before", "1") +
                             b"POST / HTTP/1.1\r\n" + encode_command("SET", "xproto:after", "1"))
    assert out == (b"" if USE_REDIS else b"+OK\r\n")
    assert r.get("xproto:before") == b"1"
    assert r.get("xproto:after") is None
