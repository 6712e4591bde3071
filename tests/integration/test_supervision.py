"""Running under a service manager, as redis-server does (issue 18):

- SIGHUP while clients work: no client sees an error, no request is lost,
  and a log file renamed away (logrotate without copytruncate) is replaced
  by a new one at the configured path, where the lines go from then on;
- `supervised systemd` (and `auto` with NOTIFY_SOCKET set): READY=1 reaches
  a unix datagram socket the test binds, once the node answers, and
  STOPPING=1 when it shuts down;
- `daemonize yes`: the started process exits 0 once the daemon serves; the
  pidfile names the daemon (its own session, stdin on /dev/null); a daemon
  that cannot start makes the started process exit 1 with the reason;
- an unwritable pidfile and a log file in a missing directory are refused at
  start, with the path.

Every test starts its own single process (`single_node`: a pool would run
the same again).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import redis

from conftest import EXTRA_SERVER_ARGS, HOST, SERVER_BINARY, USE_REDIS, pick_free_port

pytestmark = pytest.mark.single_node

START_TIMEOUT = 30.0


def wait_for(cond, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def read(path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def run_server(*args: str, timeout: float = START_TIMEOUT, port: int | None = None,
               **kw) -> subprocess.CompletedProcess:
    """Runs kvpool-server to completion (a refused start, or a daemon's parent)."""
    argv = [SERVER_BINARY, "--port", str(port or pick_free_port()), "--bind", HOST,
            *EXTRA_SERVER_ARGS, *args]
    return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout, **kw)


@pytest.fixture
def short_tmp():
    """A directory with a short path (a unix socket path is at most 107 bytes)."""
    d = tempfile.mkdtemp(prefix="kvsup-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ SIGHUP

class Loader:
    """Clients doing SET then GET of fresh keys in a loop, each checking the
    value it reads back; they record every error and every key written."""

    def __init__(self, srv, clients: int = 2):
        self.srv = srv
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.written: list[list[bytes]] = [[] for _ in range(clients)]
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]

    def run(self, n: int) -> None:
        c = self.srv.client(socket_timeout=10)
        i = 0
        try:
            while not self.stop.is_set():
                key = f"hup:{n}:{i}".encode()
                value = f"v{n}-{i}-".encode() * 8
                if c.set(key, value) is not True:
                    self.errors.append(f"SET {key!r} did not answer OK")
                got = c.get(key)
                if got != value:
                    self.errors.append(f"GET {key!r} = {got!r}")
                self.written[n].append(key)
                i += 1
        except Exception as e:  # a dropped connection, a timeout, an error reply
            self.errors.append(f"client {n}: {e!r}")
        finally:
            c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def count(self) -> int:
        return sum(len(w) for w in self.written)


def test_sighup_under_load_reopens_the_renamed_log(server_factory, tmp_path):
    log = tmp_path / "kvpool.log"
    srv = server_factory("--logfile", str(log), name="sighup", pool=False)
    wait_for(lambda: "ready to accept connections" in read(log).lower(), what="the ready line")
    rotated = []
    with Loader(srv) as load:
        wait_for(lambda: load.count() > 200, what="the clients to start")
        for round_ in range(1, 6):
            # What logrotate does without copytruncate: rename, then SIGHUP.
            # (redis-server makes no new file until it logs a line.)
            old = tmp_path / f"kvpool.log.{round_}"
            if log.exists() or not USE_REDIS:
                os.rename(log, old)
                rotated.append(old)
            before = load.count()
            srv.proc.send_signal(signal.SIGHUP)
            if not USE_REDIS:  # redis-server logs nothing on SIGHUP (it opens the file per line)
                wait_for(lambda: "Received SIGHUP, reopened the log file" in read(log),
                         what=f"a new log file at {log} (round {round_})")
            wait_for(lambda: load.count() > before + 100, what="requests after the SIGHUP")
            assert srv.alive(), f"SIGHUP killed the server (exit code {srv.proc.returncode})"
    assert load.errors == [], load.errors[:5]
    assert srv.alive()

    # No request lost: every key a client was told it wrote is there, intact.
    c = srv.client()
    keys = [k for w in load.written for k in w]
    assert c.dbsize() == len(keys)
    for i in range(0, len(keys), 1000):
        chunk = keys[i:i + 1000]
        values = c.mget(chunk)
        for k, v in zip(chunk, values):
            n, j = k.decode().split(":")[1:]
            assert v == f"v{n}-{j}-".encode() * 8, k
    c.close()

    # Lines after the last rotation went to the file at the path, earlier
    # ones stayed where they were written.
    srv.exit_expected = True
    assert srv.stop() == 0
    assert "bye bye" in read(log)
    assert "ready to accept connections" in read(rotated[0]).lower()
    for old in rotated:
        assert "bye bye" not in read(old), old
    if not USE_REDIS:
        for old in rotated[1:]:
            assert "Received SIGHUP, reopened the log file" in read(old), old


@pytest.mark.kvpool_only
def test_sighup_without_a_log_file_is_logged_and_ignored(server_factory):
    srv = server_factory(name="sighup-stdout", pool=False)
    srv.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "Received SIGHUP" in srv.log_tail(20), what="the SIGHUP line")
    assert srv.alive()
    assert srv.client().ping()


# ------------------------------------------------------------------ systemd

class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received: list[str] = []

    def wait_for(self, state: str, timeout: float = START_TIMEOUT) -> str:
        """Receives datagrams until one holds the line `state`; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.received:
                if state in msg.split("\n"):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {state} on {self.path} after {timeout}s; got {self.received}")
            self.sock.settimeout(left)
            try:
                self.received.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("mode", ["systemd", "auto"])
def test_sd_notify_ready_and_stopping(server_factory, short_tmp, monkeypatch, mode):
    notify = NotifySocket(short_tmp)
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    try:
        # The form Debian's redis-server.service (Type=notify) uses.
        srv = server_factory("--supervised", mode, name=f"notify-{mode}", pool=False)
        ready = notify.wait_for("READY=1")
        # READY comes once the node serves; nothing before it said READY.
        assert all("READY=1" not in m.split("\n") for m in notify.received[:notify.received.index(ready)])
        assert srv.client().ping()
        info = srv.client().info("server")
        assert info["process_supervised"] == "systemd"
        if not USE_REDIS:
            assert "STATUS=Ready to accept connections" in ready
        n = len(notify.received)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.wait_exit(10) == 0
        notify.wait_for("STOPPING=1", timeout=5)
        assert "STOPPING=1" not in "\n".join(notify.received[:n])
    finally:
        notify.close()


@pytest.mark.kvpool_only
def test_ready_is_sent_only_when_accepting(short_tmp, monkeypatch):
    """READY=1 is not sent before the node listens: a node whose port is
    taken reports a failure status and never says READY."""
    notify = NotifySocket(short_tmp)
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    blocker = socket.socket()
    blocker.bind((HOST, 0))
    blocker.listen()
    try:
        proc = run_server("--supervised", "systemd", port=blocker.getsockname()[1])
        assert proc.returncode == 1
        # Everything the node sent is queued on the socket by now.
        notify.sock.setblocking(False)
        got = []
        while True:
            try:
                got.append(notify.sock.recv(4096).decode())
            except BlockingIOError:
                break
        assert got and all("READY=1" not in m.split("\n") for m in got), got
        assert any(m.startswith("STATUS=Failed to start:") for m in got), got
    finally:
        blocker.close()
        notify.close()


# ------------------------------------------------------------------ daemonize

def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped yet by init) has exited.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_daemonize_yes(tmp_path):
    pidfile = tmp_path / "kvpool.pid"
    log = tmp_path / "kvpool.log"
    port = pick_free_port()
    t0 = time.monotonic()
    parent = run_server("--daemonize", "yes", "--pidfile", str(pidfile), "--logfile", str(log),
                        port=port, cwd=tmp_path)
    pid = None
    try:
        assert parent.returncode == 0, (parent.returncode, parent.stderr)
        # kvpool's parent waits for the daemon to serve; redis-server's exits
        # at once and the daemon writes its pidfile a moment later.
        if not USE_REDIS:
            assert pidfile.exists(), "the pidfile is written before the parent exits"
        wait_for(lambda: pidfile.exists() and read(pidfile).strip(), what="the pidfile")
        pid = int(read(pidfile).strip())
        assert pid_alive(pid)
        c = redis.Redis(host=HOST, port=port, socket_timeout=10)
        if USE_REDIS:
            wait_for(lambda: _pings(c), what="the daemon to answer")
        assert c.set("k", "v") and c.get("k") == b"v", "the daemon serves at once"
        assert c.info("server")["process_id"] == pid, "the pidfile names the process that serves"
        # Detached: a session of its own, no terminal input.
        assert os.getsid(pid) == pid
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        c.close()
        assert "ready to accept connections" in read(log).lower()
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), what="the daemon to exit on SIGTERM")
        pid = None
        wait_for(lambda: not pidfile.exists(), timeout=5, what="the pidfile to be removed at exit")
    finally:
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert time.monotonic() - t0 < START_TIMEOUT + 20


def _pings(c) -> bool:
    try:
        return c.ping()
    except redis.ConnectionError:
        return False


@pytest.mark.kvpool_only
def test_daemon_that_cannot_start_fails_its_parent(tmp_path):
    """The parent waits for the daemon's word: a taken port is an exit 1
    with the reason on the parent's stderr, and no daemon is left."""
    blocker = socket.socket()
    blocker.bind((HOST, 0))
    blocker.listen()
    pidfile = tmp_path / "kvpool.pid"
    try:
        port = blocker.getsockname()[1]
        parent = run_server("--daemonize", "yes", "--pidfile", str(pidfile), port=port)
        assert parent.returncode == 1
        err = parent.stderr.decode()
        assert f"could not listen on {HOST}:{port}" in err, err
        wait_for(lambda: not pidfile.exists(), timeout=5, what="the daemon's pidfile to go")
    finally:
        blocker.close()


# ------------------------------------------------------------------ refused at start

@pytest.mark.kvpool_only  # redis-server only warns about a pidfile it cannot write
@pytest.mark.parametrize("with_logfile", [False, True])
def test_unwritable_pidfile_is_refused_with_its_path(tmp_path, with_logfile):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    pidfile = blocker / "kvpool.pid"  # ENOTDIR, even for root
    args = ["--pidfile", str(pidfile)]
    if with_logfile:
        args += ["--logfile", str(tmp_path / "kvpool.log")]
    proc = run_server(*args)
    assert proc.returncode == 1
    out = (proc.stdout + proc.stderr).decode()
    assert f"cannot write pidfile '{pidfile}'" in out, out
    if with_logfile:  # the log is in a file: the reason is on stderr too
        assert f"cannot write pidfile '{pidfile}'" in proc.stderr.decode()
        assert f"cannot write pidfile '{pidfile}'" in read(tmp_path / "kvpool.log")


@pytest.mark.kvpool_only  # redis-server's message does not name the file
def test_log_file_in_missing_directory_is_refused_with_its_path(tmp_path):
    missing = tmp_path / "no-such-dir"
    logfile = missing / "sub" / "kvpool.log"
    proc = run_server("--logfile", str(logfile))
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert f"cannot open log file '{logfile}'" in err, err
    assert f"'{missing / 'sub'}' does not exist" in err, err
    assert not missing.exists(), "the directory must not be created"
