"""Hardening, limits: stalled clients, clients that never read their
replies, and the query buffer limit never take a node down nor make it
grow past its stated bounds, and other clients stay fast meanwhile.

One server (started by this module, as test_hardening.py starts its own;
the fixtures and bounds are hardening_util.py's): after every case, on a new
connection, it answers PING and its used_memory and RSS are back within the
allowances of the baseline taken when the module started.

kvpool only (skipped with KVPOOL_REFERENCE=redis): the INFO counters
client_query_buffer_limit_disconnections and
client_output_buffer_limit_disconnections (redis 7.0 has neither).
"""

from __future__ import annotations

import os
import time

import pytest

from hardening_util import (  # noqa: F401 (srv, health, after_each: fixtures pytest finds by name)
    MiB, OUTPUT_LIMIT, POPULATED_KEYS, after_each, closed_by_server, health, info,
    kvpool_only_check, never_reader, others_unaffected, raw_socket, sender, srv, stat)
from resp import RespConnection, encode_command

# serial: a good client's round trips beside an abuser are timed (others_unaffected).
pytestmark = pytest.mark.serial


# -------------------------------------------------- stalled clients, others fine

def test_half_a_request_then_stall(srv):
    stalled = raw_socket(srv)
    stalled.sendall(b"*3\r\n$3\r\nSET\r\n$9\r\nstall:key\r\n$5\r\nva")
    others_unaffected(srv, "one client stalled mid-request")
    time.sleep(1.0)
    others_unaffected(srv, "one client stalled mid-request for 1 s")
    # The stalled request completes when the rest arrives.
    stalled.sendall(b"lue\r\n")
    c = RespConnection(sock=stalled)
    assert c.read_reply() == "OK"
    assert c.execute("GET", "stall:key") == b"value"
    c.execute("DEL", "stall:key")
    c.close()


def test_two_hundred_clients_stalled_in_large_values(srv, health):
    # Each announces a 1 MiB value and sends 100 KB of it: 20 MB held.
    socks = []
    try:
        for i in range(200):
            s = raw_socket(srv)
            s.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nk%03d\r\n$1048576\r\n" % i + b"x" * 100_000)
            socks.append(s)
        others_unaffected(srv, "200 clients stalled in large values", max_seconds=2.0)
        with srv.raw() as c:
            assert c.execute("DBSIZE") == POPULATED_KEYS
    finally:
        for s in socks:
            s.close()


def test_400MB_bulk_announced_1MB_sent(srv, health):
    # Whatever the server reserves for the announced value, it must not
    # become resident before the bytes arrive.
    s = raw_socket(srv)
    try:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$419430400\r\n" + os.urandom(MiB))
        time.sleep(0.3)
        grown = health.rss_growth()
        assert grown < health.rss_allowance, f"RSS grew {grown >> 20} MiB after 1 MB of a 400 MB value"
        others_unaffected(srv, "a client in the middle of a 400 MB value")
    finally:
        s.close()


# ------------------------------------------------- clients that never read

def test_never_reading_client_hits_the_hard_output_limit(srv, health):
    # 8 KiB values are copied into the output buffer: 20000 GETs = 160 MB of
    # replies against an 8 MB hard limit.
    before = stat(srv, "client_output_buffer_limit_disconnections") if kvpool_only_check() else 0
    closed, peak = never_reader(srv, "small", 8 * 1024, 20_000, wait=10)
    assert closed, "a client that never reads was not disconnected (client-output-buffer-limit)"
    assert peak - health.base_rss < health.rss_allowance, f"RSS grew {(peak - health.base_rss) >> 20} MiB"
    if kvpool_only_check():
        assert stat(srv, "client_output_buffer_limit_disconnections") >= before + 1


def test_never_reading_client_hits_the_soft_output_limit(srv, health):
    # Soft limit only: over 1 MB for more than 1 s.
    with srv.raw() as c:
        assert c.execute("CONFIG", "SET", "client-output-buffer-limit", "normal 0 1mb 1") == "OK"
    try:
        t0 = time.monotonic()
        # 2000 x 8 KiB = 16 MB: more than loopback socket buffers absorb, so
        # well over 1 MB stays in the server's output buffer.
        closed, peak = never_reader(srv, "small", 8 * 1024, 2000, wait=8, trickle=True)
        assert closed, "a client over the soft output limit for > 1 s was not disconnected"
        assert time.monotonic() - t0 < 8
    finally:
        with srv.raw() as c:
            assert c.execute("CONFIG", "SET", "client-output-buffer-limit", OUTPUT_LIMIT) == "OK"


def test_never_reading_client_of_large_values_is_bounded(srv, health):
    # 1 MiB values, 2000 GETs = 2 GiB of replies. redis copies them and
    # closes the client at the hard limit; kvpool sends large values by
    # reference and stops reading the client's requests instead. Either way
    # the server must not grow.
    closed, peak = never_reader(srv, "large", MiB, 2_000, wait=4)
    grown = peak - health.base_rss
    assert grown < health.rss_allowance, f"RSS grew {grown >> 20} MiB for a client that never reads"


def test_never_reader_pins_no_unbounded_old_versions(srv, health):
    # While a client that never reads holds replies of a 1 MiB key, another
    # client overwrites the key 200 times: old versions may be kept only
    # for the replies actually queued, not one per overwrite.
    with srv.client(db=1) as c:
        c.set("hot", os.urandom(MiB))
    s = raw_socket(srv, rcvbuf=64 * 1024)
    s.sendall(b"SELECT 1\r\n")
    t = sender(s, encode_command("GET", "hot") * 500)
    try:
        time.sleep(0.3)
        with srv.client(db=1) as c:
            for _ in range(200):
                c.set("hot", os.urandom(MiB))
        used = int(info(srv, "memory")["used_memory"])
        assert used - health.base_used < 64 * MiB, \
            f"used_memory grew {(used - health.base_used) >> 20} MiB: old versions kept per overwrite"
        assert health.rss_growth() < health.rss_allowance + 64 * MiB
    finally:
        s.close()
        t.join(10)


# --------------------------------------------------------- query buffer limit

def test_query_buffer_limit_closes_the_client(srv):
    with srv.raw() as c:
        assert c.execute("CONFIG", "SET", "client-query-buffer-limit", "1mb") == "OK"
    before = stat(srv, "client_query_buffer_limit_disconnections") if kvpool_only_check() else 0
    try:
        s = raw_socket(srv)
        t = sender(s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n" + b"x" * 3_000_000)
        assert closed_by_server(s, 10), "a client past client-query-buffer-limit was not closed"
        s.close()
        t.join(10)
        others_unaffected(srv, "after a query buffer limit disconnection")
    finally:
        with srv.raw() as c:
            assert c.execute("CONFIG", "SET", "client-query-buffer-limit", "1gb") == "OK"
    if kvpool_only_check():
        assert stat(srv, "client_query_buffer_limit_disconnections") == before + 1
