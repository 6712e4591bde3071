"""Small helpers shared by the test files."""

from __future__ import annotations

import time
from typing import Any, Callable

from resp import RespConnection, RespError


def err(conn: RespConnection, *args: Any) -> str:
    """Run a command on a raw connection; it must fail. Returns the full error line.

    Raw connections keep the error code (ERR, WRONGTYPE, NOAUTH...) that
    redis-py strips, so exact messages are compared through this helper.
    """
    reply = conn.execute(*args)
    assert isinstance(reply, RespError), f"{args!r}: expected an error reply, got {reply!r}"
    return reply.message


def ok(conn: RespConnection, *args: Any) -> Any:
    """Run a command on a raw connection; it must not fail. Returns the reply."""
    reply = conn.execute(*args)
    assert not isinstance(reply, RespError), f"{args!r}: unexpected error {reply.message!r}"
    return reply


def wait_until(pred: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll `pred` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wrong_args(cmd: str) -> str:
    return f"ERR wrong number of arguments for '{cmd}' command"


NOT_INT = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"


def scan_all(conn: RespConnection, *args: Any, max_calls: int = 10_000) -> tuple:
    """A full SCAN iteration on a raw connection: SCAN 0 *args, then the
    returned cursor, until it is "0". Every reply must be [bulk cursor, array].
    Returns (number of calls, keys in the order returned).

    A single server covers a small keyspace in one call; a kvpool pool scans
    node by node, so a full iteration there may take up to one call per node
    even when few keys exist (SCAN may return a non-zero cursor with no keys).
    """
    cursor, keys, calls = b"0", [], 0
    while True:
        reply = conn.execute("SCAN", cursor, *args)
        assert isinstance(reply, list) and len(reply) == 2, f"SCAN reply {reply!r}"
        assert isinstance(reply[0], bytes), f"the cursor is a bulk string: {reply!r}"
        assert isinstance(reply[1], list), f"SCAN reply {reply!r}"
        calls += 1
        cursor = reply[0]
        keys.extend(reply[1])
        if cursor == b"0":
            return calls, keys
        assert calls < max_calls, "SCAN did not terminate"


def parse_info(text: bytes) -> dict:
    """INFO's "key:value" lines as a dict of strings (section headers skipped)."""
    out = {}
    for line in text.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def rss_bytes(srv) -> int:
    """Resident memory (VmRSS) of a started ServerProcess, in bytes."""
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/<pid>/status")
