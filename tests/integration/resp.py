"""A tiny raw-socket RESP client for protocol-level tests.

redis-py 4.3.4 speaks RESP2 only, so RESP3 (HELLO 3) and anything that needs
to see the exact bytes on the wire goes through this module.

Reply types (RESP2 and RESP3) map to Python values like this:

    +simple        -> Status (a str subclass)
    -error / !blob -> RespError (an Exception instance, returned not raised)
    :integer       -> int
    $bulk          -> bytes             ($-1 -> None, the RESP2 null)
    *array         -> list              (*-1 -> None)
    _              -> None              (RESP3 null)
    ,double        -> float             (inf, -inf, nan included)
    #t / #f        -> bool
    =verbatim      -> Verbatim (a bytes subclass with .format, e.g. b"txt")
    (big number    -> BigNumber (an int subclass)
    %map           -> dict              (aggregate keys become tuples)
    ~set           -> RespSet (a list subclass: order kept, unhashables allowed)
    >push          -> Push (a list subclass)
    |attribute     -> stored in .last_attributes, the reply it annotates is returned
    streamed $? *? %? ~? (RESP3 chunked types) are parsed too.

`RespConnection.last_raw` holds the exact bytes of the last reply read, so a
test can assert on the wire format ("_\\r\\n" vs "$-1\\r\\n").
"""

from __future__ import annotations

import socket
from typing import Any, Iterable, Optional

CRLF = b"\r\n"


class RespError(Exception):
    """An error reply (- or !). Returned by read_reply(), raised by call()."""

    def __init__(self, message: str, blob: bool = False):
        super().__init__(message)
        self.message = message
        self.blob = blob

    @property
    def code(self) -> str:
        return self.message.split(" ", 1)[0]

    def __eq__(self, other):
        if isinstance(other, RespError):
            return self.message == other.message
        if isinstance(other, str):
            return self.message == other
        return NotImplemented

    def __hash__(self):
        return hash(self.message)

    def __repr__(self):
        return f"RespError({self.message!r})"


class Status(str):
    """A simple string reply (+OK)."""

    def __repr__(self):
        return f"Status({str.__repr__(self)})"


class Verbatim(bytes):
    """A RESP3 verbatim string; .format is the 3-byte type, e.g. b'txt'."""

    format: bytes = b"txt"

    def __new__(cls, data: bytes, fmt: bytes = b"txt"):
        obj = super().__new__(cls, data)
        obj.format = fmt
        return obj


class BigNumber(int):
    pass


class RespSet(list):
    """A RESP3 set (~). Kept as a list so unhashable members are allowed."""


class Push(list):
    """A RESP3 out-of-band push (>)."""


class ProtocolViolation(Exception):
    """The server sent bytes that are not valid RESP."""


class ConnectionClosed(Exception):
    """The peer closed the connection."""


def encode_command(*args: Any) -> bytes:
    """Encode a command as a RESP multibulk (array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, (bytes, bytearray, memoryview)):
            b = bytes(a)
        elif isinstance(a, str):
            b = a.encode()
        elif isinstance(a, bool):
            raise TypeError("bool is ambiguous as a RESP argument")
        elif isinstance(a, (int, float)):
            b = repr(a).encode() if isinstance(a, float) else str(a).encode()
        else:
            raise TypeError(f"cannot encode {type(a)!r}")
        out.append(b"$%d\r\n" % len(b))
        out.append(b)
        out.append(CRLF)
    return b"".join(out)


class RespConnection:
    def __init__(self, host: str = "127.0.0.1", port: int = 6379, timeout: float = 10.0,
                 sock: Optional[socket.socket] = None):
        self.host = host
        self.port = port
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock.settimeout(timeout)
        self.sock = sock
        self._buf = bytearray()
        self._pos = 0
        self._raw_start = 0
        self.last_raw: bytes = b""
        self.last_attributes: Optional[dict] = None
        self.pushes: list = []

    # -- plumbing -----------------------------------------------------------
    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, t: Optional[float]) -> None:
        self.sock.settimeout(t)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_command(self, *args: Any) -> None:
        self.sock.sendall(encode_command(*args))

    def _fill(self) -> None:
        # Compact consumed bytes now and then so the buffer does not grow forever.
        if self._pos > 1 << 20 and self._pos == len(self._buf):
            del self._buf[:]
            self._raw_start -= self._pos
            self._pos = 0
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionClosed("connection closed by server")
        self._buf += chunk

    def _readline(self) -> bytes:
        while True:
            i = self._buf.find(CRLF, self._pos)
            if i >= 0:
                line = bytes(self._buf[self._pos:i])
                self._pos = i + 2
                return line
            self._fill()

    def _readexact(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n + 2:
            need = n + 2 - (len(self._buf) - self._pos)
            if need > (1 << 20):
                # Large payload: receive straight into a big chunk.
                chunk = bytearray(need)
                view = memoryview(chunk)
                got = 0
                while got < need:
                    k = self.sock.recv_into(view[got:], need - got)
                    if k == 0:
                        raise ConnectionClosed("connection closed by server")
                    got += k
                self._buf += chunk
            else:
                self._fill()
        data = bytes(self._buf[self._pos:self._pos + n])
        if self._buf[self._pos + n:self._pos + n + 2] != CRLF:
            raise ProtocolViolation("bulk payload not followed by CRLF")
        self._pos += n + 2
        return data

    def read_until_close(self, timeout: float = 5.0) -> bytes:
        """Return everything still buffered plus whatever arrives until EOF."""
        self.sock.settimeout(timeout)
        rest = bytes(self._buf[self._pos:])
        self._pos = len(self._buf)
        chunks = [rest]
        while True:
            d = self.sock.recv(65536)
            if not d:
                return b"".join(chunks)
            chunks.append(d)

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within `timeout`."""
        try:
            self.read_until_close(timeout)
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    # -- parsing ------------------------------------------------------------
    def read_reply(self) -> Any:
        """Read one complete reply (a push is returned like any reply)."""
        self._raw_start = self._pos
        self.last_attributes = None
        value = self._parse()
        self.last_raw = bytes(self._buf[self._raw_start:self._pos])
        return value

    def _parse(self) -> Any:
        line = self._readline()
        if not line:
            raise ProtocolViolation("empty reply line")
        t, rest = line[:1], line[1:]
        if t == b"+":
            return Status(rest.decode("utf-8", "surrogateescape"))
        if t == b"-":
            return RespError(rest.decode("utf-8", "surrogateescape"))
        if t == b":":
            return int(rest)
        if t == b"$":
            if rest == b"?":
                return self._streamed_string()
            n = int(rest)
            if n == -1:
                return None
            if n < 0:
                raise ProtocolViolation(f"bad bulk length {n}")
            return self._readexact(n)
        if t == b"*":
            if rest == b"?":
                return self._streamed_aggregate(list)
            n = int(rest)
            if n == -1:
                return None
            return [self._parse() for _ in range(n)]
        if t == b"_":
            if rest:
                raise ProtocolViolation("null with payload")
            return None
        if t == b",":
            s = rest.decode().lower()
            if s in ("inf", "+inf"):
                return float("inf")
            if s == "-inf":
                return float("-inf")
            return float(s)  # 'nan' parses too
        if t == b"#":
            if rest == b"t":
                return True
            if rest == b"f":
                return False
            raise ProtocolViolation(f"bad boolean {rest!r}")
        if t == b"!":
            return RespError(self._readexact(int(rest)).decode("utf-8", "surrogateescape"), blob=True)
        if t == b"=":
            data = self._readexact(int(rest))
            if len(data) < 4 or data[3:4] != b":":
                raise ProtocolViolation("verbatim string without 'fmt:' prefix")
            return Verbatim(data[4:], data[:3])
        if t == b"(":
            return BigNumber(int(rest))
        if t == b"%":
            if rest == b"?":
                return self._streamed_aggregate(dict)
            return self._read_map(int(rest))
        if t == b"~":
            if rest == b"?":
                return RespSet(self._streamed_aggregate(list))
            return RespSet(self._parse() for _ in range(int(rest)))
        if t == b">":
            return Push(self._parse() for _ in range(int(rest)))
        if t == b"|":
            attrs = self._read_map(int(rest))
            value = self._parse()
            self.last_attributes = attrs
            return value
        raise ProtocolViolation(f"unknown reply type byte {t!r} in line {line[:80]!r}")

    @staticmethod
    def _hashable(k: Any) -> Any:
        if isinstance(k, list):
            return tuple(RespConnection._hashable(x) for x in k)
        if isinstance(k, dict):
            return tuple(sorted((RespConnection._hashable(a), RespConnection._hashable(b)) for a, b in k.items()))
        return k

    def _read_map(self, n: int) -> dict:
        out = {}
        for _ in range(n):
            k = self._parse()
            out[self._hashable(k)] = self._parse()
        return out

    def _streamed_string(self) -> bytes:
        parts = []
        while True:
            line = self._readline()
            if line[:1] != b";":
                raise ProtocolViolation("streamed string chunk must start with ';'")
            n = int(line[1:])
            if n == 0:
                return b"".join(parts)
            parts.append(self._readexact(n))

    def _streamed_aggregate(self, kind):
        items = []
        while True:
            while self._pos >= len(self._buf):
                self._fill()
            if self._buf[self._pos:self._pos + 1] == b".":
                if self._readline() != b".":
                    raise ProtocolViolation("bad end of streamed aggregate")
                break
            items.append(self._parse())
        if kind is dict:
            return {self._hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)}
        return items

    # -- high level ---------------------------------------------------------
    def execute(self, *args: Any) -> Any:
        """Send one command, return its reply (errors are returned as RespError).

        Out-of-band pushes (>) received meanwhile are appended to self.pushes.
        """
        self.send_command(*args)
        return self.read_command_reply()

    def read_command_reply(self) -> Any:
        while True:
            reply = self.read_reply()
            if isinstance(reply, Push):
                self.pushes.append(reply)
                continue
            return reply

    def call(self, *args: Any) -> Any:
        """Like execute(), but raises RespError on an error reply."""
        reply = self.execute(*args)
        if isinstance(reply, RespError):
            raise reply
        return reply

    def pipeline(self, commands: Iterable[Iterable[Any]]) -> list:
        """Send all commands in one write, then read one reply per command."""
        cmds = [tuple(c) for c in commands]
        self.sock.sendall(b"".join(encode_command(*c) for c in cmds))
        return [self.read_command_reply() for _ in cmds]
