"""TLS as Redis 6+ (issue 18): tls-port beside port, client certificates
(tls-auth-clients), redis-cli --tls and redis-py ssl=True, and what a bad
or stalled handshake does to everyone else.

The certificates are made here with the openssl CLI (EC keys: fast): a CA,
a server certificate for 127.0.0.1, a client certificate, and a client
certificate from another CA that the node must refuse. No openssl is a
failure, not a skip (scripts/install-deps.sh installs it).

Then pool-tls: a pool of three whose links are TLS, and a node without
pool-tls that the others cannot talk to.

Every test starts its own node (the pool runs start their own pools too),
so the module is own_pool: the single-node runs cover it.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import redis

from conftest import HOST, Pool, ServerProcess, pick_free_port, pick_free_ports, start_server

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str, cwd: str) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is missing (scripts/install-deps.sh installs it)"
    r = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


def _make_ca(d: str, name: str) -> None:
    _openssl("req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN=kvpool-test-{name}", cwd=d)


def _make_cert(d: str, name: str, ca: str) -> None:
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName=IP:{HOST},DNS:localhost\n")
    _openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
             cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
             cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls"))
    _make_ca(d, "ca")
    _make_cert(d, "server", "ca")
    _make_cert(d, "client", "ca")
    _make_ca(d, "otherca")
    _make_cert(d, "stranger", "otherca")
    return lambda name: os.path.join(d, name)


def tls_args(certs, **extra) -> list[str]:
    args = ["--tls-cert-file", certs("server.crt"), "--tls-key-file", certs("server.key"),
            "--tls-ca-cert-file", certs("ca.crt")]
    for k, v in extra.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    return args


def tls_client(certs, port: int, cert: str | None = "client", **kw) -> redis.Redis:
    if cert:
        kw.update(ssl_certfile=certs(f"{cert}.crt"), ssl_keyfile=certs(f"{cert}.key"))
    return redis.Redis(host=HOST, port=port, ssl=True, ssl_ca_certs=certs("ca.crt"),
                       socket_timeout=5, **kw)


def cli(certs, port: int, *args: str, cert: str | None = None) -> subprocess.CompletedProcess:
    argv = [REDIS_CLI, "-h", HOST, "-p", str(port), "--tls", "--cacert", certs("ca.crt")]
    if cert:
        argv += ["--cert", certs(f"{cert}.crt"), "--key", certs(f"{cert}.key")]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=10)


@pytest.fixture(scope="module")
def node(certs):
    """One node: plaintext port and a TLS port that asks for a client
    certificate (tls-auth-clients yes, Redis's default); a handshake
    must finish within 700 ms."""
    # start_server retries a taken --port, not a taken tls-port: pick again.
    for attempt in range(5):
        tls_port = pick_free_port()
        try:
            s = start_server(*tls_args(certs, tls_port=tls_port, tls_handshake_timeout_ms=700),
                             name="tls", pool=False)
            break
        except RuntimeError as e:
            if "Address already in use" not in str(e) or attempt == 4:
                raise
    s.tls_port = tls_port
    yield s
    s.stop()


def test_plain_and_tls_port_on_one_node(node, certs):
    r = tls_client(certs, node.tls_port)
    assert r.ping()
    assert r.set("tls:k", "from-tls")
    assert node.client().get("tls:k") == b"from-tls"
    # A large value both ways: many TLS records, partial writes.
    big = os.urandom(3 << 20)
    assert r.set("tls:big", big)
    assert r.get("tls:big") == big
    # A pipeline whose replies outgrow one record and one socket buffer.
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.set(f"tls:p{i}", "v" * 100)
        p.get(f"tls:p{i}")
    out = p.execute()
    assert out[1::2] == [b"v" * 100] * 2000


def test_redis_cli_needs_a_client_certificate(node, certs):
    ok = cli(certs, node.tls_port, "PING", cert="client")
    assert ok.returncode == 0 and ok.stdout.strip() == "PONG", ok.stdout + ok.stderr
    ok = cli(certs, node.tls_port, "GET", "tls:k", cert="client")
    assert ok.stdout.strip() == "from-tls", ok.stdout + ok.stderr
    # No certificate, or one another CA signed: refused in the handshake.
    for cert in (None, "stranger"):
        bad = cli(certs, node.tls_port, "PING", cert=cert)
        assert "PONG" not in bad.stdout, (cert, bad.stdout)
        with pytest.raises((redis.ConnectionError, ssl.SSLError, OSError)):
            tls_client(certs, node.tls_port, cert=cert).ping()
    stats = node.client().info("stats")
    assert stats["tls_failed_connections"] >= 4, stats


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# serial: 50 round trips beside the stalled handshakes are timed.
@pytest.mark.serial
def test_bad_and_stalled_handshakes_do_not_disturb_others(node, certs):
    r = tls_client(certs, node.tls_port)
    assert r.set("tls:other", "1")
    # Plain RESP on the TLS port, then garbage: each closed, nobody else hurt.
    plain = socket.create_connection((HOST, node.tls_port), timeout=5)
    plain.sendall(b"*1\r\n$4\r\nPING\r\n")
    garbage = socket.create_connection((HOST, node.tls_port), timeout=5)
    garbage.sendall(os.urandom(600))
    # Stalled: connected, never says anything (a half-open handshake).
    stalled = [socket.create_connection((HOST, node.tls_port), timeout=5) for _ in range(20)]
    t0 = time.monotonic()
    for i in range(50):
        assert r.incr("tls:other") == i + 2
    assert node.client().get("tls:other") == b"51"
    assert time.monotonic() - t0 < 2, "clients waited for the stalled handshakes"
    assert _closed_by_server(plain, 3)
    assert _closed_by_server(garbage, 3)
    # tls-handshake-timeout-ms 700 (checked once a second): closed soon.
    for s in stalled:
        assert _closed_by_server(s, 4)
        s.close()
    plain.close()
    garbage.close()
    assert r.get("tls:other") == b"51"


def _s_client(certs, port: int, protocol: str) -> subprocess.Popen:
    """openssl s_client as a TLS client that can ask for a key update (K)
    or a renegotiation (R), which Python's ssl module cannot."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is missing (scripts/install-deps.sh installs it)"
    return subprocess.Popen(
        [openssl, "s_client", "-connect", f"{HOST}:{port}", protocol, "-crlf",
         "-cert", certs("client.crt"), "-key", certs("client.key"), "-CAfile", certs("ca.crt")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _read_until(p: subprocess.Popen, end: bytes, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not data.endswith(end):
        ready, _, _ = select.select([p.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(p.stdout.fileno(), 1 << 20)
            if not chunk:
                break
            data += chunk
    return data


def test_key_updates_behind_megabytes_of_pending_replies(node, certs):
    """TLS 1.3 key updates the client asks the server to answer with its
    own, sent while the client reads nothing and the server holds
    megabytes of replies it cannot write yet: once the client reads again,
    every reply arrives whole and in order, on the same connection."""
    big = bytes((i * 7) % 251 for i in range(251)) * (4 * 1024 * 1024 // 251)
    node.client().set("tls:big", big)
    p = _s_client(certs, node.tls_port, "-tls1_3")
    try:
        assert b"+PONG\r\n" in _read_until_pong(p)
        p.stdin.write(b"GET tls:big\nK\nGET tls:big\nK\nk\nPING\n")
        p.stdin.flush()
        # Not read meanwhile: the client's pipe, then its socket, then the
        # server's socket fill, and the rest waits in the server.
        deadline = time.monotonic() + 10
        pending = 0
        while time.monotonic() < deadline:
            clients = node.client().client_list()
            pending = max(int(c.get("omem", 0)) for c in clients)
            if pending > 1024 * 1024:
                break
            time.sleep(0.1)
        assert pending > 1024 * 1024, "the replies never backed up in the server"
        data = _read_until(p, b"+PONG\r\n", 30)
        hdr = b"$%d\r\n" % len(big)
        first = data.find(hdr)
        assert first >= 0, data[-300:]
        second = data.find(hdr, first + len(hdr) + len(big))
        assert data[first + len(hdr):first + len(hdr) + len(big)] == big
        assert data[second + len(hdr):second + len(hdr) + len(big)] == big
        assert data.endswith(b"\r\n+PONG\r\n")
    finally:
        p.kill()
        p.wait()
    assert node.client().ping()


def _read_until_pong(p: subprocess.Popen) -> bytes:
    p.stdin.write(b"PING\n")
    p.stdin.flush()
    return _read_until(p, b"+PONG\r\n", 15)


def test_renegotiation_is_refused_and_others_go_on(node, certs):
    """A TLS 1.2 client asking to renegotiate (a CPU cost it could repeat at
    will) is refused, as OpenSSL 3 refuses client renegotiation, and its
    connection closed; the node goes on serving everyone else."""
    r = tls_client(certs, node.tls_port)
    assert r.set("tls:reneg", "1")
    failed = node.client().info("stats")["tls_failed_connections"]
    p = _s_client(certs, node.tls_port, "-tls1_2")
    try:
        assert b"+PONG\r\n" in _read_until_pong(p)
        p.stdin.write(b"R\n")
        p.stdin.flush()
        _, err = p.communicate(timeout=15)  # ends: the server closed it
        assert b"RENEGOTIATING" in err or b"renegotiation" in err, err[-300:]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    deadline = time.monotonic() + 5
    while node.client().info("stats")["tls_failed_connections"] == failed and time.monotonic() < deadline:
        time.sleep(0.1)
    assert node.client().info("stats")["tls_failed_connections"] == failed + 1
    assert r.incr("tls:reneg") == 2


def test_optional_client_certificates_and_tls_only(certs):
    """tls-auth-clients optional: no certificate is fine, a bad one is not.
    port 0: no plaintext listener, as Redis."""
    tls_port, plain_port = pick_free_ports(2)
    # spawn() puts --port <plain_port> first; the last --port wins.
    s = ServerProcess(*tls_args(certs, tls_port=tls_port, tls_auth_clients="optional",
                                tls_protocols="TLSv1.3"), "--port", "0", name="tls-only")
    s.spawn(plain_port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert tls_client(certs, tls_port, cert=None).ping()
                break
            except (redis.ConnectionError, OSError):
                assert s.alive(), s.log_tail()
                assert time.monotonic() < deadline, s.log_tail()
                time.sleep(0.05)
        assert tls_client(certs, tls_port, cert="client").set("a", "b")
        with pytest.raises((redis.ConnectionError, ssl.SSLError, OSError)):
            tls_client(certs, tls_port, cert="stranger").ping()
        # TLSv1.3 only: a TLSv1.2 client is refused.
        ctx = ssl.create_default_context(cafile=certs("ca.crt"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection((HOST, tls_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=HOST) as t:
                    t.sendall(b"PING\r\n")
                    t.recv(10)
        with pytest.raises(OSError):
            socket.create_connection((HOST, plain_port), timeout=2).close()
    finally:
        s.stop()


def test_bad_tls_configuration_refuses_to_start(certs):
    for args, text in (
        (tls_args(certs, tls_port=pick_free_port(), tls_key_file=certs("client.key")),
         "not the key of"),
        (tls_args(certs, tls_port=pick_free_port(), tls_protocols="TLSv1.1"), "TLSv1.2"),
        (["--tls-port", str(pick_free_port())], "tls-cert-file"),
    ):
        s = ServerProcess(*args, name="tls-bad")
        s.spawn(pick_free_port())
        rc = s.wait_exit(10)
        assert rc not in (None, 0), s.log_tail()
        assert text in s.log_tail(), s.log_tail()


def _pool_port(node: ServerProcess) -> int:
    return node.port + 10000  # pool-port 0: port + 10000


def test_pool_over_tls(certs):
    """pool-tls yes: MSET/MGET across three nodes whose links are TLS; the
    pool port asks for a certificate the CA signed before anything else."""
    p = Pool(3, *tls_args(certs, pool_tls="yes"), name="tls-pool")
    try:
        p.start()
        kv = {f"tls:{i}": f"value-{i}" for i in range(300)}
        assert p[0].client().mset(kv)
        for n in p.nodes:
            assert n.client().mget(list(kv)) == [v.encode() for v in kv.values()]
        big = os.urandom(2 << 20)
        assert p[1].client().set("tls:big", big)
        assert p[2].client().get("tls:big") == big
        assert p[0].client().get("tls:big") == big
        # The pool port speaks TLS and wants the peer's certificate.
        ctx = ssl.create_default_context(cafile=certs("ca.crt"))
        ctx.load_cert_chain(certs("client.crt"), certs("client.key"))
        with socket.create_connection((HOST, _pool_port(p[0])), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST) as t:
                assert t.version() in ("TLSv1.2", "TLSv1.3")
        bare = ssl.create_default_context(cafile=certs("ca.crt"))
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection((HOST, _pool_port(p[0])), timeout=5) as raw:
                with bare.wrap_socket(raw, server_hostname=HOST) as t:
                    t.sendall(b"x" * 64)
                    t.recv(1)
    finally:
        p.stop()


def test_pool_refuses_a_node_without_tls(certs):
    """Node 3 runs without pool-tls: it cannot talk to the TLS nodes (its
    frames are not TLS, theirs are not frames), so each side counts the
    other down while nodes 1 and 2 serve each other."""
    p = Pool(3, *tls_args(certs, pool_tls="yes"), "--pool-heartbeat-ms", "50",
             "--pool-down-after-ms", "500", name="tls-mixed", node_args={2: ["--pool-tls", "no"]})
    try:
        p.start(wait_up=False)
        p.wait_state(2, "down", observers=[0, 1], timeout=10)
        p.wait_state(0, "down", observers=[2], timeout=10)
        # Nodes 1 and 2 hear each other (a peer's maxmemory comes with its
        # heartbeat's answer); a slow start may count one down for a moment.
        deadline = time.monotonic() + 10
        while not (Pool._really_up(p.pool_nodes(0)[1]) and Pool._really_up(p.pool_nodes(1)[0])):
            assert time.monotonic() < deadline, (p.pool_nodes(0), p.pool_nodes(1))
            time.sleep(0.05)
        # ...and node 3 stays down for both: TLS and plaintext never meet.
        time.sleep(0.3)
        assert p.states(0)[2] == "down" and p.states(1)[2] == "down" and p.states(2)[0] == "down"
    finally:
        p.stop()
