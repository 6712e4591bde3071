"""kvpool as LMCache's strict native `resp://` connector sees it.

LMCache's C++ RESP connector (csrc/storage_backends/redis/connector.{h,cpp}
in LMCache/LMCache) does not parse RESP: every worker thread holds one TCP
connection and, per chunk of a fixed size N known in advance,

- SET:    writev("*3\\r\\n$3\\r\\nSET\\r\\n", "$<klen>\\r\\n<key>\\r\\n",
          "$<N>\\r\\n", <N bytes from the chunk's buffer>, "\\r\\n"), then
          reads exactly 5 bytes and requires "+OK\\r\\n";
- GET:    sends "*2\\r\\n$3\\r\\nGET\\r\\n$<klen>\\r\\n<key>\\r\\n", reads the
          header byte by byte up to "\\n", requires "$<N>\\r\\n" ("$-1\\r\\n" =
          key not found), then receives exactly N bytes straight into the
          destination buffer and requires the trailer "\\r\\n";
- EXISTS / DEL: reads exactly 4 bytes, ":1\\r\\n" or ":0\\r\\n";
- AUTH [user] pass: reads a line, requires it to start with "+OK\\r\\n".

Any other byte (an extra one, a RESP3 type, a different length) breaks it or
desynchronises the connection. `StrictResp` below does exactly that over a
raw socket, and every test ends with a PING that must read "+PONG\\r\\n" as
the very next bytes: nothing stray was left on the connection.

Against the default server (a single node; node 1 of a pool in pool mode)
and a three-node pool where every key is sent through a node that does not
own it, values up to 5 MiB (more than one node-to-node transfer), with 8
worker connections in parallel, and with a node down.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest

from conftest import fast_failover_pool
from pool_util import SlotMap

KB, MB = 1024, 1024 * 1024
CRLF = b"\r\n"


def lmcache_key(i: int, tag: str = "") -> str:
    """A key in LMCache's format: model@world_size@worker_id@chunk_hash@dtype."""
    digest = hashlib.sha256(f"{tag}:{i}".encode()).hexdigest()
    return f"meta-llama/Llama-3.1-8B-Instruct@1@0@{digest}@bfloat16"


def chunk(key: str, n: int) -> bytes:
    """n deterministic bytes for a key (all 256 byte values, CR and LF included)."""
    seed = hashlib.sha256(key.encode()).digest()
    block = bytes(range(256)) + seed
    return (block * (n // len(block) + 1))[:n]


class StrictResp:
    """One worker connection of LMCache's native RESP connector."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    # -- the connector's primitives
    def send_parts(self, *parts: bytes, split: int = 0) -> None:
        """writev of the parts; split > 0 sends them in pieces of that size with
        pauses, as partial writes of a busy socket arrive."""
        data = b"".join(parts)
        if not split:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), split):
            self.sock.sendall(data[i:i + split])
            time.sleep(0.002)

    def recv_exactly(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            n = self.sock.recv_into(view[got:], len(view) - got)
            assert n > 0, "connection closed mid-reply"
            got += n

    def recv_bytes(self, n: int) -> bytes:
        buf = bytearray(n)
        self.recv_exactly(memoryview(buf))
        return bytes(buf)

    def recv_line(self, limit: int = 4096) -> bytes:
        line = bytearray()
        while not line.endswith(CRLF):
            line += self.recv_bytes(1)
            assert len(line) <= limit, f"reply line too long: {bytes(line[:80])!r}"
        return bytes(line)

    @staticmethod
    def bulk(b: bytes) -> bytes:
        return b"$%d\r\n" % len(b) + b + CRLF

    # -- the connector's commands
    def auth(self, password: str, username: str = "") -> bytes:
        if username:
            self.send_parts(b"*3\r\n$4\r\nAUTH\r\n", self.bulk(username.encode()), self.bulk(password.encode()))
        else:
            self.send_parts(b"*2\r\n$4\r\nAUTH\r\n", self.bulk(password.encode()))
        return self.recv_line()

    def set(self, key: str, buf, split: int = 0) -> bytes:
        """SET with the value taken from buf; returns the 5 bytes read."""
        payload = memoryview(buf).cast("B")
        self.send_parts(b"*3\r\n$3\r\nSET\r\n", self.bulk(key.encode()),
                        b"$%d\r\n" % len(payload), bytes(payload), CRLF, split=split)
        return self.recv_bytes(5)

    def get_into(self, key: str, buf) -> bool:
        """GET received straight into buf (its size is the chunk size). False
        for "$-1"; any other header than "$<len(buf)>" fails."""
        dst = memoryview(buf).cast("B")
        self.send_parts(b"*2\r\n$3\r\nGET\r\n", self.bulk(key.encode()))
        header = self.recv_line(limit=len(b"$%d\r\n" % len(dst)) + 32)
        if header == b"$-1\r\n":
            return False
        assert header == b"$%d\r\n" % len(dst), f"GET {key}: header {header!r}"
        self.recv_exactly(dst)
        assert self.recv_bytes(2) == CRLF, "GET: trailer mismatch"
        return True

    def exists(self, key: str) -> bytes:
        self.send_parts(b"*2\r\n$6\r\nEXISTS\r\n", self.bulk(key.encode()))
        return self.recv_bytes(4)

    def delete(self, key: str) -> bytes:
        self.send_parts(b"*2\r\n$3\r\nDEL\r\n", self.bulk(key.encode()))
        return self.recv_bytes(4)

    def assert_in_sync(self) -> None:
        """The next bytes after a PING are exactly +PONG: nothing stray before."""
        self.send_parts(b"*1\r\n$4\r\nPING\r\n")
        assert self.recv_bytes(7) == b"+PONG\r\n"


def round_trip(c: StrictResp, key: str, size: int, split: int = 0) -> None:
    """What LMCache does with one chunk: put, look it up, get it, drop it."""
    value = chunk(key, size)
    assert c.set(key, bytearray(value), split=split) == b"+OK\r\n"
    assert c.exists(key) == b":1\r\n"
    dst = bytearray(size)
    assert c.get_into(key, dst) is True
    assert dst == value
    assert c.delete(key) == b":1\r\n"
    assert c.exists(key) == b":0\r\n"
    assert c.get_into(key, bytearray(size)) is False
    assert c.delete(key) == b":0\r\n"


# ---------------------------------------------------------------- one node

@pytest.fixture
def conn(server, r):
    c = StrictResp(server.host, server.port)
    yield c
    c.close()


@pytest.mark.parametrize("size", [1, 4 * KB, 256 * KB, MB + 3, 5 * MB])
def test_chunk_round_trip_exact_bytes(conn, size):
    round_trip(conn, lmcache_key(size, "one"), size)
    conn.assert_in_sync()


def test_overwrite_and_get_into_a_reused_buffer(conn):
    key, size = lmcache_key(1, "over"), 64 * KB
    first, second = chunk(key, size), chunk(key + "2", size)
    assert first != second
    dst = bytearray(b"\xee" * size)
    assert conn.set(key, bytearray(first)) == b"+OK\r\n"
    assert conn.get_into(key, dst) and dst == first
    assert conn.set(key, bytearray(second)) == b"+OK\r\n"
    assert conn.get_into(key, dst) and dst == second
    conn.assert_in_sync()


def run_workers(worker, n: int, timeout: float) -> None:
    """worker(0) .. worker(n - 1), each on a thread of its own, all at once."""
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def test_command_arriving_in_small_pieces(conn):
    """writev may leave a SET half sent; the reply comes once, when it is whole."""
    round_trip(conn, lmcache_key(2, "split"), 20 * KB + 7, split=997)
    conn.assert_in_sync()


def test_eight_worker_connections_in_parallel(server, r):
    errors = []

    def worker(w):
        c = StrictResp(server.host, server.port)
        try:
            for i in range(24):
                round_trip(c, lmcache_key(i, f"w{w}"), 64 * KB + w)
            c.assert_in_sync()
        except BaseException as e:  # reported below, with the worker
            errors.append((w, e))
        finally:
            c.close()

    run_workers(worker, 8, timeout=120)
    assert not errors, errors


@pytest.mark.parametrize("with_user", [False, True])
def test_auth_then_chunks(server_factory, with_user):
    srv = server_factory("--requirepass", "lmc-secret", name="lmc-auth")
    c = StrictResp(srv.host, srv.port)
    try:
        reply = c.auth("lmc-secret", "default" if with_user else "")
        assert reply == b"+OK\r\n"
        round_trip(c, lmcache_key(3, "auth"), 8 * KB)
        c.assert_in_sync()
    finally:
        c.close()


# ---------------------------------------------------------------- a pool

@pytest.fixture(scope="module")
def pool():
    yield from fast_failover_pool("lmc")


@pytest.mark.kvpool_only
@pytest.mark.own_pool
@pytest.mark.parametrize("size", [4 * KB, MB + 3, 5 * MB])
def test_pool_every_key_through_a_non_owner(pool, size):
    """Keys of each node, written through the next node and read through the
    one after: the replies are the single node's, byte for byte."""
    slots = SlotMap.of(pool)
    conns = [StrictResp(n.host, n.port) for n in pool.nodes]
    try:
        for owner in range(3):
            keys = [k for k in (lmcache_key(i, f"p{size}") for i in range(200))
                    if slots.node_of(k) == owner][:4]
            assert len(keys) == 4
            writer, reader = conns[(owner + 1) % 3], conns[(owner + 2) % 3]
            for k in keys:
                assert writer.set(k, bytearray(chunk(k, size))) == b"+OK\r\n"
            for k in keys:
                assert reader.exists(k) == b":1\r\n"
                dst = bytearray(size)
                assert reader.get_into(k, dst) and dst == chunk(k, size)
                # the owner holds it, not the node it was written through
                assert pool.nodes[owner].client().get(k) == dst
            for k in keys:
                assert writer.delete(k) == b":1\r\n"
                assert reader.get_into(k, bytearray(size)) is False
        for c in conns:
            c.assert_in_sync()
    finally:
        for c in conns:
            c.close()


@pytest.mark.kvpool_only
@pytest.mark.own_pool
def test_pool_eight_workers_on_one_node(pool):
    errors = []
    entry = pool.nodes[1]

    def worker(w):
        c = StrictResp(entry.host, entry.port)
        try:
            for i in range(16):
                round_trip(c, lmcache_key(i, f"pw{w}"), 128 * KB + w)
            c.assert_in_sync()
        except BaseException as e:
            errors.append((w, e))
        finally:
            c.close()

    run_workers(worker, 8, timeout=150)
    assert not errors, errors


@pytest.mark.kvpool_only
@pytest.mark.own_pool
def test_pool_node_down_keeps_the_connection_in_sync(pool):
    """With node 3 down, its keys read as misses ("$-1", ":0"), which the
    connector takes as "not cached"; a SET to it answers one error line
    (the connector fails that chunk: it reads "-ERR " where "+OK" belongs).
    The other nodes' keys are then served exactly on the same connection."""
    slots = SlotMap.of(pool)
    size = 32 * KB
    keys = [lmcache_key(i, "down") for i in range(60)]
    dead = [k for k in keys if slots.node_of(k) == 2][:3]
    live = [k for k in keys if slots.node_of(k) != 2][:6]
    c = StrictResp(pool.nodes[0].host, pool.nodes[0].port)
    try:
        for k in dead + live:
            assert c.set(k, bytearray(chunk(k, size))) == b"+OK\r\n"
        pool.kill(2)
        pool.wait_state(2, "down", observers=[0], timeout=10)
        for k in dead:
            assert c.get_into(k, bytearray(size)) is False
            assert c.exists(k) == b":0\r\n"
            c.send_parts(b"*3\r\n$3\r\nSET\r\n", c.bulk(k.encode()), c.bulk(chunk(k, size)))
            line = c.recv_line()
            assert line.startswith(b"-ERR ") and b"unavailable" in line, line
            c.assert_in_sync()
        for k in live:
            dst = bytearray(size)
            assert c.exists(k) == b":1\r\n"
            assert c.get_into(k, dst) and dst == chunk(k, size)
            assert c.set(k, bytearray(chunk(k + "x", size))) == b"+OK\r\n"
        c.assert_in_sync()
    finally:
        c.close()
        pool.restart(2)
