"""Helpers for the pool tests (test_pool.py, test_pool_security.py,
test_pool_copies.py, test_replicas.py).

- Redis Cluster key slots (CRC16-XMODEM of the key or of its {hashtag}),
  computed here independently of the server, and the slot -> node table read
  from POOL NODES, so a test can pick keys owned by a given node.
- Node-to-node frames (storage/transport/wire.h, auth.h), to play a hostile
  or unauthenticated peer on a node's pool port.
- POOL COPIES, decoded, and the value digest it shows (kvhash64, written
  here again from storage/util/digest.h's description).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import time
from typing import Iterator, Optional

from conftest import Pool, parse_pool_nodes

SLOTS = 16384


# ----------------------------------------------------------------- key slots

def _crc16_table() -> list:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


def key_slot(key) -> int:
    """The Redis Cluster hash slot of a key (hashtag rules included)."""
    if isinstance(key, str):
        key = key.encode()
    s = key.find(b"{")
    if s != -1:
        e = key.find(b"}", s + 1)
        if e != -1 and e != s + 1:
            key = key[s + 1:e]
    return crc16(key) % SLOTS


def _parse_range(tok: str) -> range:
    lo, _, hi = tok.partition("-")
    return range(int(lo), int(hi or lo) + 1)


class SlotMap:
    """slot -> node index, from one node's POOL NODES."""

    def __init__(self, pool_nodes: list):
        self.owner = [-1] * SLOTS
        self.addrs = [d["addr"] for d in pool_nodes]
        for d in pool_nodes:
            for tok in d["slots"]:
                for s in _parse_range(tok):
                    self.owner[s] = d["index"]

    @classmethod
    def of(cls, pool: Pool, observer: int = 0) -> "SlotMap":
        return cls(pool.pool_nodes(observer))

    def node_of(self, key) -> int:
        return self.owner[key_slot(key)]

    def keys_on(self, node: int, n: int, prefix: str = "k") -> list:
        """n distinct string keys "<prefix>:<i>" owned by `node`."""
        out = []
        i = 0
        while len(out) < n:
            k = f"{prefix}:{i}"
            if self.node_of(k) == node:
                out.append(k)
            i += 1
        return out

    def key_on(self, node: int, prefix: str = "k") -> str:
        return self.keys_on(node, 1, prefix)[0]

    def tag_on(self, node: int, prefix: str = "tag") -> str:
        """A hashtag "{...}" whose keys all live on `node`."""
        i = 0
        while True:
            t = f"{prefix}{i}"
            if self.owner[key_slot(t)] == node:
                return "{" + t + "}"
            i += 1


def local_keys(node) -> int:
    """Keys a node holds itself (db0), from its INFO keyspace."""
    with node.raw() as c:
        text = c.execute("INFO", "keyspace").decode()
    for line in text.splitlines():
        if line.startswith("db0:"):
            return int(dict(kv.split("=") for kv in line[4:].split(","))["keys"])
    return 0


def myself_line(pool: Pool, i: int) -> dict:
    (me,) = [d for d in pool.pool_nodes(i) if d["myself"]]
    return me


# -------------------------------------------------------- node-to-node wire

MAGIC = 0x4B565001  # "KVP" + wire version 1
KIND_CALL, KIND_REPLY, KIND_ERROR = 1, 2, 3
KIND_HELLO, KIND_CHALLENGE, KIND_PROOF, KIND_AUTH_OK, KIND_AUTH_FAIL = 16, 17, 18, 19, 20
HEADER = struct.Struct(">IBBHQQQQ")  # magic kind flags opcode call_id body_len bulk_len bulk_cap
OP_PING, OP_MULTI_GET, OP_MULTI_EXISTS, OP_COMMAND = 1, 2, 8, 10


def frame(kind: int, body: bytes = b"", opcode: int = 0, call_id: int = 0, bulk: bytes = b"",
          bulk_cap: int = 0, magic: int = MAGIC, flags: int = 0, body_len: Optional[int] = None) -> bytes:
    n = len(body) if body_len is None else body_len
    return HEADER.pack(magic, kind, flags, opcode, call_id, n, len(bulk), bulk_cap) + body + bulk


HANDSHAKE_VERSION = 2  # auth.h kHandshakeVersion (2: frames after AUTH_OK carry a MAC)
TAG_SIZE = 16


def hello_body(client: int, server: int, lane: int = 0, nonce: Optional[bytes] = None,
               version: int = HANDSHAKE_VERSION) -> bytes:
    nonce = nonce if nonce is not None else os.urandom(32)
    return struct.pack(">HHIII", version, 0, client, server, lane) + nonce


def mac(secret: bytes, label: bytes, first: bytes, second: bytes, client: int, server: int, lane: int,
        version: int = HANDSHAKE_VERSION) -> bytes:
    """The handshake MAC of auth.cc: HMAC-SHA256(secret, label NUL first second ids version)."""
    msg = label + b"\0" + first + second + struct.pack(">IIIH", client, server, lane, version)
    return hmac.new(secret, msg, hashlib.sha256).digest()


class FrameSealer:
    """One direction's frame MAC of frame_mac.h: the ChaCha20-Poly1305 tag of
    the whole frame as additional data, nonce = 4 zero bytes + the frame's
    64-bit sequence number."""

    def __init__(self, key: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # python3-cryptography
        self.aead = ChaCha20Poly1305(key)
        self.seq = 0

    def tag(self, data: bytes) -> bytes:
        iv = b"\0\0\0\0" + struct.pack(">Q", self.seq)
        self.seq += 1
        return self.aead.encrypt(iv, b"", data)  # no plaintext: the tag alone

    def seal(self, data: bytes) -> bytes:
        return data + self.tag(data)


def handshake(probe: "PeerProbe", secret: bytes, client: int, server: int, lane: int = 0) -> bool:
    """A genuine handshake as node `client` (the test knows the pool's secret).
    True if the acceptor answered AUTH_OK."""
    return handshake_sealers(probe, secret, client, server, lane) is not None


def handshake_sealers(probe: "PeerProbe", secret: bytes, client: int, server: int, lane: int = 0):
    """handshake(); on AUTH_OK the link's (to_server, to_client) FrameSealers
    (auth.h DeriveFrameKeys), else None. AUTH_OK's own tag is checked."""
    nonce_c = os.urandom(32)
    probe.send(frame(KIND_HELLO, hello_body(client, server, lane, nonce_c)))
    frames = probe.read_frames_until({KIND_CHALLENGE, KIND_AUTH_FAIL})
    chal = [b for k, _, b in frames if k == KIND_CHALLENGE]
    if not chal:
        return False
    nonce_s, server_mac = chal[0][:32], chal[0][32:]
    assert server_mac == mac(secret, b"kvpool-server", nonce_c, nonce_s, client, server, lane), \
        "the acceptor's CHALLENGE proves it knows the secret"
    probe.send(frame(KIND_PROOF, mac(secret, b"kvpool-client", nonce_s, nonce_c, client, server, lane)))
    frames = probe.read_frames_until({KIND_AUTH_OK, KIND_AUTH_FAIL})
    if not any(k == KIND_AUTH_OK for k, _, _ in frames):
        return None
    to_server = FrameSealer(mac(secret, b"kvpool-frame-c2s", nonce_c, nonce_s, client, server, lane))
    to_client = FrameSealer(mac(secret, b"kvpool-frame-s2c", nonce_c, nonce_s, client, server, lane))
    auth_ok = frame(KIND_AUTH_OK)
    start = probe.received.rfind(auth_ok)
    deadline = time.monotonic() + 5
    while len(probe.received) < start + len(auth_ok) + TAG_SIZE and time.monotonic() < deadline:
        probe.read_for(0.05)
    tag = probe.received[start + len(auth_ok):start + len(auth_ok) + TAG_SIZE]
    assert tag == to_client.tag(auth_ok), "AUTH_OK carries the link's first tag"
    return to_server, to_client


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def keys_body(db: int, keys: list) -> bytes:
    """{db u32, n u32, key*n} with keys as u32-length-prefixed bytes."""
    out = u32(db) + u32(len(keys))
    for k in keys:
        k = k.encode() if isinstance(k, str) else k
        out += u32(len(k)) + k
    return out


def command_body(db: int, *args) -> bytes:
    """kOpCommand: {db u32, resp u8, argc u32, arg*argc}."""
    out = u32(db) + b"\x02" + u32(len(args))
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += u32(len(a)) + a
    return out


def parse_frames(data: bytes) -> list:
    """Complete frames in `data`: [(kind, opcode, body)] (stops at a partial or bad one)."""
    out = []
    pos = 0
    while len(data) - pos >= HEADER.size:
        magic, kind, _flags, opcode, _cid, blen, bulk, _cap = HEADER.unpack_from(data, pos)
        if magic != MAGIC or len(data) - pos - HEADER.size < blen + bulk:
            break
        body = data[pos + HEADER.size:pos + HEADER.size + blen]
        out.append((kind, opcode, body))
        pos += HEADER.size + blen + bulk
    return out


class PeerProbe:
    """A raw TCP connection to a node's pool port that records every byte it receives."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.received = b""
        self.closed = False

    def send(self, data: bytes) -> bool:
        """False if the peer had already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def read_for(self, seconds: float) -> bytes:
        """Read what arrives within `seconds` (stops early when the peer closes)."""
        got = b""
        deadline = time.monotonic() + seconds
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            got += chunk
        self.received += got
        return got

    def read_frames_until(self, kinds: set, seconds: float = 5.0) -> list:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.closed:
            frames = parse_frames(self.received)
            if any(k in kinds for k, _, _ in frames):
                return frames
            self.read_for(min(0.1, max(0.0, deadline - time.monotonic())))
        return parse_frames(self.received)

    def wait_closed(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            self.read_for(deadline - time.monotonic())
        return self.closed

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def pool_port(node) -> int:
    return node.port + 10000


def iter_chunks(seq: list, n: int) -> Iterator[list]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


__all__ = ["SlotMap", "key_slot", "crc16", "local_keys", "myself_line", "parse_pool_nodes", "PeerProbe",
           "frame", "hello_body", "handshake_sealers", "FrameSealer", "keys_body", "command_body", "parse_frames", "pool_port", "iter_chunks", "copies", "kvhash64"]


_M = (1 << 64) - 1
_P1, _P2, _P3 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def kvhash64(b: bytes) -> str:
    """storage/util/digest.h's Hash64, as 16 lowercase hex digits."""
    n = len(b)
    h = _P3 ^ (n * _P1 & _M)
    for i in range(0, n, 8):
        w = int.from_bytes(b[i:i + 8].ljust(8, b"\0"), "little")
        h = (_rotl(h ^ (_rotl(w * _P2 & _M, 31) * _P1 & _M), 27) * _P1 + _P3) & _M
    x = h ^ n
    for m in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        x ^= x >> 33
        x = x * m & _M
    return "%016x" % (x ^ (x >> 33))


def copies(c, key):
    """POOL COPIES with strings decoded."""
    return [[f.decode() if isinstance(f, bytes) else f for f in e]
            for e in c.execute_command("POOL", "COPIES", key)]
