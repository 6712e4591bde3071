"""What the hardening suites share (test_hardening.py, test_hardening_limits.py):
the module's server with its stated memory bounds, the check run after every
case, and raw-socket helpers. The fixtures are imported by name into each
test module, so each module starts its own server.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time

import pytest

from conftest import SERVER_BINARY, USE_REDIS, ServerProcess
from resp import encode_command
from util import rss_bytes


MiB = 1024 * 1024
# Stated bounds, relative to the baseline taken after start and warm-up:
# used_memory may differ by 1 MiB (the cases' own keys are flushed), and RSS
# may have grown by 64 MiB: allocator caches and arenas of two I/O threads,
# kernel-side nothing (socket buffers are not RSS). Every case moves
# far more than that (up to 2 GiB of replies, 400 MiB announced bulks), so a
# leak or an unbounded buffer shows.
USED_ALLOWANCE = 1 * MiB
RSS_ALLOWANCE = 64 * MiB
RSS_ALLOWANCE_ASAN = 64 * MiB + 320 * MiB  # + ASan's 256 MiB quarantine and shadow
# TSan's allocator keeps freed memory (malloc_trim does not reach it) and its
# shadow grows with what was touched: up to the 256 MiB maxmemory twice over.
# Memory bounds are what the release and ASan runs check; TSan's is races.
RSS_ALLOWANCE_TSAN = 64 * MiB + 512 * MiB
POPULATED_KEYS = 20_000  # in db 0, for KEYS/SCAN cases
OUTPUT_LIMIT = "normal 8mb 4mb 2"


def sanitizer_rss_extra(path: str) -> int:
    """What a sanitizer build's allocator and shadow add to an RSS allowance."""
    return (RSS_ALLOWANCE_ASAN - RSS_ALLOWANCE if _is_asan(path) else
            RSS_ALLOWANCE_TSAN - RSS_ALLOWANCE if _is_tsan(path) else 0)


def _is_asan(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()  # gcc links libasan dynamically
    except OSError:
        return False


def _is_tsan(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b"__tsan_init" in f.read()
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def is_sanitized(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            data = f.read()
        return b"__asan_init" in data or b"__tsan_init" in data
    except OSError:
        return False


def info(srv: ServerProcess, *sections: str) -> dict:
    out = {}
    with srv.raw(timeout=10) as c:
        for s in sections or ("everything",):
            text = c.execute("INFO", s)
            for line in text.decode().splitlines():
                if ":" in line and not line.startswith("#"):
                    k, v = line.split(":", 1)
                    out[k] = v
    return out


def stat(srv: ServerProcess, name: str) -> int:
    return int(info(srv, "stats").get(name, 0))


# ---------------------------------------------------------------- fixtures

class Health:
    """PING and memory bounds against the module's baseline."""

    def __init__(self, srv: ServerProcess):
        self.srv = srv
        self.rss_allowance = RSS_ALLOWANCE + sanitizer_rss_extra(SERVER_BINARY)
        self.base_used = int(info(srv, "memory")["used_memory"])
        self.base_rss = rss_bytes(srv)

    def check(self, what: str, timeout: float = 10.0) -> None:
        srv = self.srv
        assert srv.alive(), f"{what}: the server died (exit {srv.proc.returncode})\n{srv.log_tail(40)}"
        with srv.raw(timeout=5) as c:
            assert c.execute("PING") == "PONG", f"{what}: no PONG on a new connection"
        with srv.client(db=1, socket_timeout=10) as c1:
            c1.flushdb()
        deadline = time.monotonic() + timeout
        while True:
            used = int(info(srv, "memory")["used_memory"])
            rss = rss_bytes(srv)
            if used <= self.base_used + USED_ALLOWANCE and rss <= self.base_rss + self.rss_allowance:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: memory not back within bounds after {timeout}s: used_memory {used} "
                    f"(baseline {self.base_used}, allowance {USED_ALLOWANCE}), RSS {rss >> 20} MiB "
                    f"(baseline {self.base_rss >> 20} MiB, allowance {self.rss_allowance >> 20} MiB)")
            time.sleep(0.1)

    def rss_growth(self) -> int:
        return rss_bytes(self.srv) - self.base_rss


@pytest.fixture(scope="module")
def srv():
    s = ServerProcess("--client-output-buffer-limit", OUTPUT_LIMIT, "--maxmemory", "256mb",
                      name="hardening")
    s.start()
    try:
        c = s.client()
        for start in range(0, POPULATED_KEYS, 2000):
            p = c.pipeline(transaction=False)
            for i in range(start, start + 2000):
                p.set("a" * 40 + str(i), "v")
            p.execute()
        # Warm up: connections, pipelines, a large value through every path.
        for _ in range(3):
            c1 = s.client(db=1)
            c1.set("warm", os.urandom(4 * MiB))
            assert len(c1.get("warm")) == 4 * MiB
            c1.flushdb()
            c1.close()
        c.close()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def health(srv):
    time.sleep(0.5)
    return Health(srv)


@pytest.fixture(autouse=True)
def after_each(request, srv, health):
    """After every case: PING on another connection, memory back within bounds."""
    yield
    health.check(request.node.name)


def kvpool_only_check():
    """The kvpool-only part of a case (INFO counters, log lines) runs only
    against kvpool; the replies are checked against both."""
    return not USE_REDIS


# ------------------------------------------------------------------ helpers

def expect_error_then_close(srv, payload: bytes, message: str, before: bytes = b"") -> None:
    """Send payload on a fresh connection: `before`, then "-message", then
    the server closes the connection. A payload the server does not read to
    the end may turn the close into a reset (RST) that destroys the reply,
    so for payloads over 64 KiB a reset is accepted instead."""
    errors_before = stat(srv, "protocol_errors") if kvpool_only_check() else 0
    c = srv.raw(timeout=10)
    try:
        c.send_raw(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading and closed: checked below
    try:
        data = c.read_until_close(timeout=10)
    except socket.timeout:
        pytest.fail(f"the server did not close the connection within 10 s after {payload[:40]!r}")
    except ConnectionResetError:
        assert len(payload) > 65536, f"connection reset after {payload[:40]!r}: the error reply may be lost"
        data = None
    finally:
        c.close()
    if data is not None:
        assert data == before + b"-" + message.encode() + b"\r\n", data[:300]
    if kvpool_only_check():
        assert stat(srv, "protocol_errors") == errors_before + 1, "protocol_errors did not count the error"


def send_and_close(srv, payload: bytes) -> None:
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    try:
        s.sendall(payload)
    finally:
        s.close()


def raw_socket(srv, rcvbuf: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((srv.host, srv.port))
    return s


def sender(sock: socket.socket, data: bytes) -> threading.Thread:
    """Sends in the background (the server may stop reading); errors are ignored."""
    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Reads (and drops) whatever arrives until EOF/reset; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not sock.recv(1 << 20):
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def established(sock: socket.socket) -> bool:
    """False once the server has closed its side (FIN or RST), read or not."""
    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    return state == 1  # TCP_ESTABLISHED; CLOSE_WAIT (8) or CLOSE (7) after the server closed


def others_unaffected(srv, what: str, max_seconds: float = 1.0) -> None:
    """A good client's SET/GET/PING round trips stay fast. A sanitized server
    runs every request several times slower (TSan's 1.01 s against the 1 s
    limit failed CI once), so it gets three times the bound: a client starved
    behind the abuser waits for all of it, far longer than either."""
    if is_sanitized(SERVER_BINARY):
        max_seconds *= 3
    with srv.client(db=1, socket_timeout=5) as c:
        t0 = time.monotonic()
        for i in range(50):
            assert c.set(f"good:{i}", "x" * 100) is True
            assert c.get(f"good:{i}") == b"x" * 100
        assert c.ping() is True
        took = time.monotonic() - t0
    assert took < max_seconds, f"{what}: 100 round trips of a good client took {took:.2f}s"


def never_reader(srv, key: str, value_len: int, count: int, wait: float, trickle: bool = False):
    """A client with a small receive buffer pipelines `count` GETs of a
    value_len value and never reads (trickle: then one more GET every 50 ms,
    so a server that checks limits only when it adds a reply sees them too).
    Returns (closed by the server?, peak RSS seen meanwhile)."""
    with srv.client(db=1) as c:
        c.set(key, os.urandom(value_len))
    s = raw_socket(srv, rcvbuf=64 * 1024)
    s.sendall(b"SELECT 1\r\n")
    if trickle:
        def run():
            try:
                s.sendall(encode_command("GET", key) * count)
                for _ in range(int(wait / 0.05)):
                    s.sendall(encode_command("GET", key))
                    time.sleep(0.05)
            except OSError:
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
    else:
        t = sender(s, encode_command("GET", key) * count)
    deadline = time.monotonic() + wait
    peak = 0
    closed = False
    while time.monotonic() < deadline:
        peak = max(peak, rss_bytes(srv))
        others_unaffected(srv, "a client that never reads")
        if not established(s):  # without reading: reading would drain the replies
            closed = True
            break
        time.sleep(0.2)
    s.close()
    t.join(10)
    return closed, peak
