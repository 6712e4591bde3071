"""Overload: many clients, more clients than maxclients, and writes past
maxmemory never take a node down (issue 7).

- 2,000 concurrent connections (all open at once, counted in INFO clients),
  each sends PING, SET, GET in one write and gets exactly its own answers;
  then the server still answers on a new connection.
- maxclients N and N+100 connections: the first N are served, the 100 extra
  get Redis's "-ERR max number of clients reached" and are closed (counted
  in rejected_connections); after 50 of the first N close, 50 new clients are
  accepted and served, and the next one is refused again.
- A flood of pipelined MSETs (values of 1 KiB..64 KiB, from 4 connections
  at once) worth 2.5 x maxmemory (64 MiB per node), first with noeviction:
  "-OOM command not allowed when used memory > 'maxmemory'." errors, every
  key acknowledged earlier reads back exactly, an MSET refused with OOM
  stored none of its keys; then, after CONFIG SET maxmemory-policy
  allkeys-lru on every node, the same flood again: no error at all,
  evicted_keys > 0, used_memory <= maxmemory + 1 MiB. Through both floods
  the resident memory of every node (VmRSS, sampled every 20 ms) stays below
  its baseline (measured after start) + maxmemory + RSS_OVERHEAD.

Runs the same in pool mode (KVPOOL_POOL_NODES): the servers are pools, the
clients talk to node 1, CONFIG SET goes to every node, memory is checked on
every node. There a write that node 1 forwards to a full owner may also be
refused with the pool's "ERR out of memory (maxmemory) on <node>: k of n
keys were not stored" (the keys of such a split MSET are not checked).

Under a sanitizer build (detected from the binary) the flood is scaled down
(32 MiB maxmemory, larger RSS overhead for ASan's quarantine and TSan's
shadow); KVPOOL_OVERLOAD_SCALE=<0..1> scales the connection counts too. No
assertion is ever skipped.
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import subprocess
import threading
import time

import pytest

from conftest import POOL_MODE, SERVER_BINARY, ServerProcess, USE_REDIS
from util import parse_info, rss_bytes
from resp import RespConnection, RespError, encode_command

# serial: an idle server's CPU time and clients' wait times are bounded.
pytestmark = pytest.mark.serial

MiB = 1024 * 1024
# The INFO field maxmemory bounds: Redis's used_memory; kvpool's dataset
# (items + index), as its used_memory also counts the process heap.
BOUNDED = "used_memory" if USE_REDIS else "used_memory_dataset"


def _sanitizer(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    # The runtime may be linked statically (clang) or as libasan.so (gcc):
    # an instrumented binary calls its init function either way.
    if b"__tsan_init" in data:
        return "tsan"
    if b"__asan_init" in data:
        return "asan"
    return ""


SANITIZER = "" if USE_REDIS else _sanitizer(SERVER_BINARY)
SCALE = float(os.environ.get("KVPOOL_OVERLOAD_SCALE", "1"))
CONNECTIONS = max(200, int(2000 * SCALE))
MAXCLIENTS = max(50, int(200 * SCALE))
EXTRA = 100
MAXMEMORY = 32 * MiB if SANITIZER else 64 * MiB
FLOOD_FACTOR = 2.5  # bytes written per phase, in units of the pool's total maxmemory
# Stated bound: RSS <= baseline + maxmemory + RSS_OVERHEAD. 64 MiB covers
# the hash index, allocator caches and arenas of the I/O threads, the query
# buffers of 4 pipelining clients (~2 MiB each) and, in a pool, the staging
# of values in flight to peers (measured: +77 MiB over a 6 MiB baseline at
# maxmemory 64 MiB, one node or pool node 1: +90). ASan keeps up to 256 MiB
# of freed memory in its quarantine and shadows the rest; TSan maps shadow
# and meta memory several times the touched application memory (measured:
# +190 MiB at maxmemory 32 MiB).
RSS_OVERHEAD = {"": 64 * MiB, "asan": 64 * MiB + 320 * MiB, "tsan": 64 * MiB + 8 * MAXMEMORY}[SANITIZER]
USED_SLACK = 1 * MiB
OOM = "OOM command not allowed when used memory > 'maxmemory'."
POOL_OOM_PREFIX = "ERR out of memory (maxmemory) on "
MAXCLIENTS_ERR = b"-ERR max number of clients reached\r\n"


@pytest.fixture(scope="module", autouse=True)
def enough_file_descriptors():
    """The test process holds 2,000+ sockets, and the servers it starts
    inherit its limit: raise the soft RLIMIT_NOFILE to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = CONNECTIONS + 1000
    if soft < need:
        try:
            if hard != resource.RLIM_INFINITY and hard < need:
                resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))  # root may raise the hard limit
            else:
                resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        except (ValueError, OSError) as e:
            pytest.fail(f"RLIMIT_NOFILE is {soft}/{hard}, {need} needed, and it cannot be raised: {e}")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ------------------------------------------------------------------ helpers

def info(srv: ServerProcess, section: str) -> dict:
    with srv.raw(timeout=30) as c:
        text = c.execute("INFO", section)
    assert isinstance(text, bytes), f"INFO {section} on {srv.name}: {text!r}"
    return parse_info(text)


def assert_alive(srv: ServerProcess, what: str) -> None:
    for n in srv.nodes:
        assert n.alive(), f"{what}: {n.name} died (exit {n.proc.returncode})\n{n.log_tail(40)}"
    with srv.raw(timeout=30) as c:
        assert c.execute("PING") == "PONG", f"{what}: no PONG on a new connection"


def connect(srv: ServerProcess, timeout: float = 30.0) -> socket.socket:
    s = socket.create_connection((srv.host, srv.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_exact_replies(socks: dict, expected: dict, timeout: float) -> dict:
    """Read from every socket until it has len(expected[i]) bytes (or closes,
    or `timeout` passes). Returns {i: bytes received}."""
    sel = selectors.DefaultSelector()
    got = {i: bytearray() for i in socks}
    for i, s in socks.items():
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    pending = set(socks)
    deadline = time.monotonic() + timeout
    try:
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                i = key.data
                try:
                    d = key.fileobj.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionError:
                    d = b""
                if d:
                    got[i] += d
                if not d or len(got[i]) >= len(expected[i]):
                    sel.unregister(key.fileobj)
                    pending.discard(i)
    finally:
        sel.close()
        for s in socks.values():
            s.setblocking(True)
    return {i: bytes(b) for i, b in got.items()}


def read_until_close(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    chunks = []
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        chunks.append(d)
    return b"".join(chunks)


# ----------------------------------------------------- 2,000 connections

def test_two_thousand_concurrent_connections(server_factory):
    srv = server_factory(name="conns")
    socks: dict = {}
    try:
        t0 = time.monotonic()
        for i in range(CONNECTIONS):
            socks[i] = connect(srv)
        connected = int(info(srv, "clients")["connected_clients"])
        assert connected >= CONNECTIONS + 1, \
            f"INFO clients counts {connected} clients with {CONNECTIONS} + 1 connections open"
        # Every client sends its three commands before anyone reads: the
        # server holds 2,000 clients with work in flight at once.
        expected = {}
        for i, s in socks.items():
            key, val = f"conn:{i}", f"value-of-{i}-" + "x" * (i % 97)
            s.sendall(encode_command("PING") + encode_command("SET", key, val) + encode_command("GET", key))
            expected[i] = b"+PONG\r\n+OK\r\n$%d\r\n%s\r\n" % (len(val), val.encode())
        got = read_exact_replies(socks, expected, timeout=60)
        wrong = {i: got[i] for i in socks if got[i] != expected[i]}
        assert not wrong, (f"{len(wrong)} of {CONNECTIONS} clients got wrong or missing answers, e.g. "
                           f"{list(wrong.items())[:3]}")
        elapsed = time.monotonic() - t0
        assert_alive(srv, f"{CONNECTIONS} connections")
        # Each value is readable from a fresh client too (not just echoed back).
        with srv.raw() as c:
            keys = [f"conn:{i}" for i in range(0, CONNECTIONS, 7)]
            vals = c.execute("MGET", *keys)
            assert vals == [(f"value-of-{i}-" + "x" * (i % 97)).encode() for i in range(0, CONNECTIONS, 7)]
        print(f"{CONNECTIONS} connections served in {elapsed:.2f}s")
    finally:
        for s in socks.values():
            s.close()
    # The server lets go of them all.
    deadline = time.monotonic() + 30
    while int(info(srv, "clients")["connected_clients"]) > 1:
        assert time.monotonic() < deadline, \
            f"connected_clients still {info(srv, 'clients')['connected_clients']} 30 s after all closed"
        time.sleep(0.1)


# ---------------------------------------------------------------- maxclients

def _served(s: socket.socket, i: int) -> bool:
    s.settimeout(30)
    s.sendall(encode_command("PING") + encode_command("SET", f"mc:{i}", str(i)) + encode_command("GET", f"mc:{i}"))
    want = b"+PONG\r\n+OK\r\n$%d\r\n%d\r\n" % (len(str(i)), i)
    got = b""
    while len(got) < len(want):
        d = s.recv(4096)
        if not d:
            break
        got += d
    assert got == want, f"client {i}: {got!r}, expected {want!r}"
    return True


def _refused(s: socket.socket, what: str) -> None:
    # Nothing is sent: the server's error is the first and last thing on the
    # connection (sending first could turn the close into a reset).
    data = read_until_close(s, timeout=30)
    assert data == MAXCLIENTS_ERR, f"{what}: got {data!r}, expected {MAXCLIENTS_ERR!r} then close"


def test_maxclients_plus_one_hundred(server_factory):
    n = MAXCLIENTS
    srv = server_factory("--maxclients", n, name="maxclients")
    rejected_before = int(info(srv, "stats").get("rejected_connections", 0))
    first, extra = [], []
    try:
        for _ in range(n):
            first.append(connect(srv))
        # Each of the first N is registered before the extra ones connect.
        for i, s in enumerate(first):
            _served(s, i)
        for _ in range(EXTRA):
            extra.append(connect(srv))
        for j, s in enumerate(extra):
            _refused(s, f"extra client {j + 1} of {EXTRA} (maxclients {n})")
        # The first N still work, all of them.
        for i, s in enumerate(first):
            _served(s, i)
        assert all(n_.alive() for n_ in srv.nodes)
        rejected = int(info_later(srv, first[0], "stats").get("rejected_connections", 0))
        assert rejected - rejected_before >= EXTRA, \
            f"rejected_connections went from {rejected_before} to {rejected}, {EXTRA} were refused"

        # Close half of them: as many new clients are accepted (once the
        # server has seen the closes), then the next one is refused again.
        half = n // 2
        for s in first[:half]:
            s.close()
        first = first[half:]
        accepted = 0
        deadline = time.monotonic() + 30
        while accepted < half:
            s = connect(srv)
            s.settimeout(30)
            s.sendall(encode_command("PING"))
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            if data == b"+PONG\r\n":
                first.append(s)
                accepted += 1
                continue
            s.close()
            assert data in (MAXCLIENTS_ERR, b""), f"new client after closes: {data!r}"
            assert time.monotonic() < deadline, \
                f"only {accepted} of {half} new clients accepted 30 s after {half} closed"
            time.sleep(0.05)
        for i, s in enumerate(first):
            _served(s, 10_000 + i)
        last = connect(srv)
        _refused(last, "client N+1 after the slots were refilled")
        last.close()
    finally:
        for s in first + extra:
            s.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            assert_alive(srv, "after maxclients")
            break
        except AssertionError:
            # The last closes may not have been seen yet: a refusal is fine for a moment.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def info_later(srv: ServerProcess, conn: socket.socket, section: str) -> dict:
    """INFO through a connection that is already open (a new one would be refused)."""
    rc = RespConnection(sock=conn, timeout=30)
    text = rc.execute("INFO", section)
    assert isinstance(text, bytes), text
    return dict(l.split(":", 1) for l in text.decode().splitlines() if ":" in l and not l.startswith("#"))


# ------------------------------------------------------------ maxmemory flood

SIZES = (1024, 4096, 16384, 65536)


def _value(key: str, size: int) -> bytes:
    unit = (key + "|").encode()
    return (unit * (size // len(unit) + 1))[:size]


class Flood:
    """Pipelined MSETs of 4 keys each, from `threads` connections at once,
    until `total` bytes of values were sent; RSS of every node sampled."""

    def __init__(self, srv: ServerProcess, phase: str, total: int, threads: int = 4, depth: int = 16):
        self.srv, self.phase, self.total, self.threads, self.depth = srv, phase, total, threads, depth
        self.ok_keys: list = []        # (key, size) of MSETs answered +OK
        self.oom_msets: list = []      # key lists of MSETs refused with OOM
        self.errors: dict = {}         # message -> count
        self.max_rss = {n.name: 0 for n in srv.nodes}
        self.lock = threading.Lock()
        self.failures: list = []

    def _worker(self, w: int) -> None:
        try:
            c = self.srv.raw(timeout=60)
            sent, batch = 0, 0
            share = self.total // self.threads
            while sent < share:
                cmds, metas = [], []
                for j in range(self.depth):
                    args, meta = ["MSET"], []
                    for k in range(4):
                        size = SIZES[(w + j + k + batch) % len(SIZES)]
                        key = f"{self.phase}:{w}:{batch}:{j}:{k}"
                        args += [key, _value(key, size)]
                        meta.append((key, size))
                        sent += size
                    cmds.append(args)
                    metas.append(meta)
                replies = c.pipeline(cmds)
                with self.lock:
                    for meta, r in zip(metas, replies):
                        if isinstance(r, RespError):
                            self.errors[r.message] = self.errors.get(r.message, 0) + 1
                            if r.message == OOM:
                                self.oom_msets.append([k for k, _ in meta])
                        elif r == "OK":
                            self.ok_keys.extend(meta)
                        else:
                            self.failures.append(f"MSET answered {r!r}")
                batch += 1
            c.close()
        except Exception as e:  # reported by run()
            with self.lock:
                self.failures.append(f"flood worker {w}: {e!r}")

    def run(self) -> "Flood":
        workers = [threading.Thread(target=self._worker, args=(w,), daemon=True) for w in range(self.threads)]
        for t in workers:
            t.start()
        while any(t.is_alive() for t in workers):
            for n in self.srv.nodes:
                if n.alive():
                    self.max_rss[n.name] = max(self.max_rss[n.name], rss_bytes(n))
            time.sleep(0.02)
        for t in workers:
            t.join()
        assert not self.failures, self.failures[:5]
        return self


def _check_rss(srv, base_rss: dict, flood: Flood, what: str) -> None:
    for n in srv.nodes:
        bound = base_rss[n.name] + MAXMEMORY + RSS_OVERHEAD
        peak = max(flood.max_rss[n.name], rss_bytes(n))
        assert peak <= bound, (
            f"{what}: {n.name} RSS peaked at {peak >> 20} MiB > bound {bound >> 20} MiB "
            f"(baseline {base_rss[n.name] >> 20} MiB + maxmemory {MAXMEMORY >> 20} MiB + "
            f"overhead {RSS_OVERHEAD >> 20} MiB)")


def _check_values(c: RespConnection, pairs: list, what: str) -> None:
    for i in range(0, len(pairs), 200):
        chunk = pairs[i:i + 200]
        got = c.execute("MGET", *[k for k, _ in chunk])
        assert isinstance(got, list), f"{what}: MGET answered {got!r}"
        bad = [k for (k, size), v in zip(chunk, got) if v != _value(k, size)]
        assert not bad, f"{what}: {len(bad)} of {len(chunk)} keys lost or wrong, e.g. {bad[:3]}"


@pytest.mark.slow
def test_mset_flood_past_maxmemory(server_factory):
    srv = server_factory("--maxmemory", MAXMEMORY, "--maxmemory-policy", "noeviction", name="flood")
    nodes = srv.nodes
    total = int(FLOOD_FACTOR * MAXMEMORY * len(nodes))
    time.sleep(0.3)
    base_rss = {n.name: rss_bytes(n) for n in nodes}
    t0 = time.monotonic()

    # --- noeviction: OOM errors, nothing lost, nothing half-written
    f1 = Flood(srv, "noev", total).run()
    assert_alive(srv, "noeviction flood")
    unexpected = {m: k for m, k in f1.errors.items()
                  if m != OOM and not (POOL_MODE and m.startswith(POOL_OOM_PREFIX))}
    assert not unexpected, f"noeviction flood: unexpected errors {unexpected}"
    assert f1.errors.get(OOM, 0) > 0, f"noeviction flood of {total >> 20} MiB: no OOM error ({f1.errors})"
    assert f1.ok_keys, "noeviction flood: no MSET succeeded before memory was full"
    with srv.raw(timeout=60) as c:
        _check_values(c, f1.ok_keys, "noeviction: keys acknowledged before the OOM errors")
        for keys in f1.oom_msets[:200]:
            n_exist = c.execute("EXISTS", *keys)
            assert n_exist == 0, f"an MSET refused with OOM stored {n_exist} of its keys {keys}"
        # A value larger than the room left still gets the OOM error (in a
        # pool the key may belong to another node: checked on one process).
        if not POOL_MODE:
            used = int(info(srv, "memory")[BOUNDED])
            assert used + MiB > MAXMEMORY, f"noeviction flood left {MAXMEMORY - used} bytes free"
            reply = c.execute("SET", "noev:one-more", b"x" * MiB)
            assert isinstance(reply, RespError) and reply.message == OOM, reply
            assert c.execute("EXISTS", "noev:one-more") == 0
    for n in nodes:
        mem = info(n, "memory")
        assert int(mem[BOUNDED]) <= MAXMEMORY + USED_SLACK + max(SIZES) * 4, \
            f"noeviction: {n.name} used_memory {mem[BOUNDED]} > maxmemory {MAXMEMORY}"
    _check_rss(srv, base_rss, f1, "noeviction flood")
    t1 = time.monotonic()

    # --- allkeys-lru: no errors, evictions, used_memory bounded
    evicted_before = sum(int(info(n, "stats")["evicted_keys"]) for n in nodes)
    for n in nodes:
        with n.raw() as c:
            assert c.execute("CONFIG", "SET", "maxmemory-policy", "allkeys-lru") == "OK"
            assert c.execute("CONFIG", "GET", "maxmemory-policy") == [b"maxmemory-policy", b"allkeys-lru"]
    f2 = Flood(srv, "lru", total).run()
    assert_alive(srv, "allkeys-lru flood")
    assert not f2.errors, f"allkeys-lru flood: errors {f2.errors}"
    assert len(f2.ok_keys) * sum(SIZES) // len(SIZES) >= total * 0.9, "allkeys-lru flood: MSETs went missing"
    evicted = sum(int(info(n, "stats")["evicted_keys"]) for n in nodes) - evicted_before
    assert evicted > 0, "allkeys-lru flood past maxmemory evicted nothing (evicted_keys did not grow)"
    for n in nodes:
        mem = info(n, "memory")
        assert int(mem[BOUNDED]) <= MAXMEMORY + USED_SLACK, \
            f"allkeys-lru: {n.name} used_memory {mem[BOUNDED]} > maxmemory {MAXMEMORY} + {USED_SLACK}"
    with srv.raw(timeout=60) as c:
        # Every key still there has exactly its value (eviction removed
        # whole keys, never mixed values up); the survivors fit in maxmemory.
        # Which ones survive is not checked: the LRU clock is coarse (as
        # Redis's), so keys written within the same second are evicted in
        # any order.
        present = present_bytes = 0
        for i in range(0, len(f2.ok_keys), 200):
            chunk = f2.ok_keys[i:i + 200]
            got = c.execute("MGET", *[k for k, _ in chunk])
            assert isinstance(got, list), f"allkeys-lru: MGET answered {got!r}"
            for (k, size), v in zip(chunk, got):
                if v is not None:
                    assert v == _value(k, size), f"allkeys-lru: {k} holds a wrong value"
                    present += 1
                    present_bytes += size
        assert present > 0, "allkeys-lru: no key of the flood is left"
        assert present_bytes <= MAXMEMORY * len(nodes), \
            f"allkeys-lru: {present_bytes} bytes of values present, maxmemory {MAXMEMORY} x {len(nodes)}"
        assert c.execute("SET", "lru:one-more", "y" * 4096) == "OK"
    _check_rss(srv, base_rss, f2, "allkeys-lru flood")
    t2 = time.monotonic()
    print(f"flood of {total >> 20} MiB per phase over {len(nodes)} node(s): noeviction {t1 - t0:.1f}s "
          f"({f1.errors}), allkeys-lru {t2 - t1:.1f}s ({evicted} evicted); peak RSS "
          f"{ {k: v >> 20 for k, v in f2.max_rss.items()} } MiB, baselines "
          f"{ {k: v >> 20 for k, v in base_rss.items()} } MiB")


# --------------------------------------------------- file descriptors run out

def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.kvpool_only
def test_out_of_file_descriptors_does_not_spin(server_factory):
    """The process's open-files limit, not maxclients, runs out: accept()
    fails with EMFILE. The server must not spin on its listening socket (nor
    log each failed accept): it pauses accepting, serves the clients it
    has, and takes the waiting ones once descriptors are free again."""
    srv = server_factory(name="emfile", pool=False)
    limit = 128
    p = subprocess.run(["prlimit", "--pid", str(srv.proc.pid), f"--nofile={limit}:{limit}"],
                       capture_output=True, text=True)
    assert p.returncode == 0, f"prlimit failed: {p.stderr}"
    log_before = os.path.getsize(srv.log_path)
    socks = []
    try:
        for _ in range(limit + 100):
            socks.append(connect(srv))
        time.sleep(1.0)
        cpu0 = _cpu_seconds(srv.proc.pid)
        time.sleep(2.0)
        busy = _cpu_seconds(srv.proc.pid) - cpu0
        assert busy < 0.5, f"with no free descriptor the idle server burnt {busy:.2f} s of CPU in 2 s"
        grown = os.path.getsize(srv.log_path) - log_before
        assert grown < 4096, f"the log grew by {grown} bytes while accept() failed"
        # Those accepted are served.
        for i, s in enumerate(socks[:limit - 40]):
            _served(s, i)
        # Closing them frees descriptors: the waiting clients get in.
        for s in socks[:limit - 40]:
            s.close()
        for i, s in enumerate(socks[limit - 40:limit + 40]):
            _served(s, 1000 + i)
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            assert_alive(srv, "after the descriptors were freed")
            return
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
