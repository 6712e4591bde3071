"""Fixtures for the kvpool black-box integration suite.

Which server runs:
  * KVPOOL_SERVER=/path/to/kvpool-server   -> that binary
  * KVPOOL_REFERENCE=redis                 -> /usr/bin/redis-server (reference
    mode: tests marked `kvpool_only` are skipped, nothing else is)
  * neither set                            -> /usr/bin/redis-server too, but
    `kvpool_only` tests still run (and fail): forgetting KVPOOL_SERVER must
    not turn the suite silently green.

Every server runs on a free loopback port, in its own temp dir, with its
stdout/stderr in `server.log` there; the log tail is attached to the report
of any failing test that used the server. Servers are stopped with SIGTERM,
then SIGKILL after a timeout; none is left behind, even on Ctrl-C.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Optional

import pytest
import redis

from resp import RespConnection, RespError

HOST = "127.0.0.1"
REDIS_SERVER = "/usr/bin/redis-server"
REFERENCE = os.environ.get("KVPOOL_REFERENCE", "").lower() == "redis"
KVPOOL_BINARY = os.environ.get("KVPOOL_SERVER") or None
USE_REDIS = REFERENCE or not KVPOOL_BINARY
SERVER_BINARY = REDIS_SERVER if USE_REDIS else os.path.abspath(KVPOOL_BINARY)
# Extra arguments for every server started, e.g. KVPOOL_SERVER_ARGS="--io-threads 4".
EXTRA_SERVER_ARGS = shlex.split(os.environ.get("KVPOOL_SERVER_ARGS", ""))
START_TIMEOUT = float(os.environ.get("KVPOOL_START_TIMEOUT", "30"))
# Hard limit per test (setup + call + teardown), enforced with SIGALRM.
TEST_TIMEOUT = int(os.environ.get("KVPOOL_TEST_TIMEOUT", "180"))
STOP_TIMEOUT = 10.0
SOCKET_TIMEOUT = 30.0

_ALL_SERVERS: list["ServerProcess"] = []
_DEFAULT: dict = {"server": None}
_LOG_ROOT = tempfile.mkdtemp(prefix="kvpool-it-")


# ---------------------------------------------------------------------------
# server processes
# ---------------------------------------------------------------------------

def _port_is_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_free_port() -> int:
    """A free loopback port P such that P+10000 (kvpool's node port) is free too."""
    for _ in range(500):
        p = random.randint(20000, 45000)
        if _port_is_free(p) and _port_is_free(p + 10000):
            return p
    raise RuntimeError("no free port pair found")


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if pytest dies without cleaning up."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _opts_to_args(opts: dict) -> list[str]:
    args: list[str] = []
    for k, v in opts.items():
        args.append("--" + k.replace("_", "-"))
        args.append(str(v))
    return args


class ServerProcess:
    """One kvpool-server (or redis-server) process on a private port."""

    def __init__(self, *extra_args: str, config_file: Optional[str] = None, name: str = "server"):
        self.extra_args = [str(a) for a in extra_args]
        self.config_file = config_file
        self.name = name
        self.host = HOST
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=_LOG_ROOT)
        self.log_path = os.path.join(self.dir, "server.log")
        self.password: Optional[str] = None
        if "--requirepass" in self.extra_args:
            self.password = self.extra_args[self.extra_args.index("--requirepass") + 1]
        self.returncode: Optional[int] = None
        self.restarts = 0
        self.exit_expected = False  # set by wait_exit() (SHUTDOWN, SIGTERM tests)
        _ALL_SERVERS.append(self)

    # -- lifecycle ----------------------------------------------------------
    def argv(self) -> list[str]:
        argv = [SERVER_BINARY]
        if self.config_file:
            argv.append(self.config_file)
        argv += ["--port", str(self.port), "--bind", HOST]
        if USE_REDIS:
            argv += ["--save", "", "--appendonly", "no"]
        return argv + EXTRA_SERVER_ARGS + self.extra_args

    def start(self) -> "ServerProcess":
        if not os.access(SERVER_BINARY, os.X_OK):
            raise RuntimeError(f"server binary {SERVER_BINARY} is not executable (check KVPOOL_SERVER)")
        last_err = None
        for _attempt in range(3):
            self.port = pick_free_port()
            self.returncode = None
            with open(self.log_path, "ab") as log:
                log.write(("\n=== start: %s\n" % " ".join(repr(a) if a == "" else a for a in self.argv())).encode())
                log.flush()
                self.proc = subprocess.Popen(
                    self.argv(), cwd=self.dir, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=_die_with_parent)
            try:
                self._wait_ready()
                return self
            except Exception as e:  # port race or real failure: look at the log
                last_err = e
                self.stop()
                if "in use" not in self.log_tail(20).lower():
                    break
        raise RuntimeError(f"{self.name} did not start: {last_err}\n--- log ---\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited with code {self.proc.returncode}")
            try:
                with RespConnection(self.host, self.port, timeout=2) as c:
                    reply = c.execute("PING")
                    # A NOAUTH error still proves the server is up and parsing.
                    if reply == "PONG" or isinstance(reply, RespError) and reply.code == "NOAUTH":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no PONG on port {self.port} after {START_TIMEOUT}s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        """Restart the process if it died (a crash fails one test, not all)."""
        if self.proc is not None and not self.alive():
            self.restarts += 1
            with open(self.log_path, "ab") as log:
                log.write(b"\n=== process had exited with code %d; restarting\n" % self.proc.returncode)
            self.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                with open(self.log_path, "ab") as log:
                    log.write(b"\n=== killed with SIGKILL: no exit %.0fs after SIGTERM\n" % timeout)
        self.returncode = self.proc.returncode
        return self.returncode

    def wait_exit(self, timeout: float) -> Optional[int]:
        """Wait for the process to exit by itself; None if it did not."""
        self.exit_expected = True
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    # -- clients ------------------------------------------------------------
    def client(self, **kw) -> redis.Redis:
        kw.setdefault("socket_timeout", SOCKET_TIMEOUT)
        kw.setdefault("decode_responses", False)
        if self.password is not None:
            kw.setdefault("password", self.password)
        return redis.Redis(host=self.host, port=self.port, **kw)

    def raw(self, timeout: float = SOCKET_TIMEOUT, auth: bool = True) -> RespConnection:
        c = RespConnection(self.host, self.port, timeout=timeout)
        if auth and self.password is not None:
            assert c.execute("AUTH", self.password) == "OK"
        return c

    def log_tail(self, lines: int = 200) -> str:
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()[-65536:]
        except OSError:
            return "(no log)"
        return b"\n".join(data.splitlines()[-lines:]).decode("utf-8", "replace")

    def describe(self) -> str:
        state = "running" if self.alive() else f"exited rc={self.proc.returncode if self.proc else None}"
        return f"{self.name} port={self.port} {state} log={self.log_path}"


def _stop_all() -> None:
    for s in _ALL_SERVERS:
        try:
            s.stop(timeout=5)
        except Exception:
            pass


atexit.register(_stop_all)


# ---------------------------------------------------------------------------
# pytest hooks
# ---------------------------------------------------------------------------

def pytest_sessionstart(session):
    if not os.access(SERVER_BINARY, os.X_OK):
        pytest.exit(f"server binary {SERVER_BINARY} is not executable (check KVPOOL_SERVER)", returncode=4)


def pytest_report_header(config):
    if REFERENCE:
        mode = "REFERENCE mode (KVPOOL_REFERENCE=redis): kvpool_only tests skipped"
    elif USE_REDIS:
        mode = "KVPOOL_SERVER unset: using redis-server, kvpool_only tests WILL FAIL"
    else:
        mode = "kvpool mode"
    return [f"server under test: {SERVER_BINARY} ({mode})", f"server logs: {_LOG_ROOT}"]


def pytest_collection_modifyitems(config, items):
    if not REFERENCE:
        return
    skip = pytest.mark.skip(reason="kvpool_only: reference redis-server lacks this")
    for item in items:
        if "kvpool_only" in item.keywords:
            item.add_marker(skip)


_first_server_of_test = {"index": 0}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A per-test time limit: a hung server must not hang the whole run."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s (KVPOOL_TEST_TIMEOUT)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pytest_runtest_setup(item):
    _first_server_of_test["index"] = len(_ALL_SERVERS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    used = [_DEFAULT["server"]] if _DEFAULT["server"] is not None else []
    used += [s for s in _ALL_SERVERS[_first_server_of_test["index"]:] if s not in used]
    for s in used:
        rep.sections.append((f"server log: {s.describe()}", s.log_tail()))


def pytest_terminal_summary(terminalreporter):
    for s in _ALL_SERVERS:
        if s.restarts:
            terminalreporter.write_line(
                f"WARNING: {s.name} died and was restarted {s.restarts} time(s); see {s.log_path}", red=True)


def pytest_sessionfinish(session, exitstatus):
    _stop_all()
    if exitstatus == 0 and not any(s.restarts for s in _ALL_SERVERS):
        shutil.rmtree(_LOG_ROOT, ignore_errors=True)


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def server():
    """The shared default server (no auth, default options)."""
    s = ServerProcess(name="default")
    _DEFAULT["server"] = s
    s.start()
    yield s
    rc = s.stop()
    # A server under test should exit cleanly on SIGTERM (redis exits 0).
    if rc not in (0, None):
        print(f"\nWARNING: default server exited with code {rc} on SIGTERM; log: {s.log_path}")


@pytest.fixture
def r(server):
    """A redis-py client (RESP2, bytes replies) on an empty keyspace, DB 0."""
    server.ensure_running()
    c = server.client()
    c.flushall()
    yield c
    c.close()
    if not server.alive():
        pytest.fail(f"the default server died during this test (exit code {server.proc.returncode}); "
                    f"log: {server.log_path}", pytrace=False)


@pytest.fixture
def raw(server, r):
    """A raw RESP2 connection (resp.RespConnection) to the default server."""
    c = server.raw()
    yield c
    c.close()


@pytest.fixture
def r3(server, r):
    """A raw connection switched to RESP3 with HELLO 3."""
    c = server.raw()
    hello = c.execute("HELLO", "3")
    assert isinstance(hello, dict), f"HELLO 3 did not return a map: {hello!r}"
    yield c
    c.close()


@pytest.fixture
def server_factory():
    """Start extra servers with custom options; all are stopped after the test.

        srv = server_factory("--maxmemory", "32mb")
        srv = server_factory(maxmemory="32mb", maxmemory_policy="allkeys-lru")
    """
    started: list[ServerProcess] = []

    def start(*args, config_file=None, name="extra", **opts) -> ServerProcess:
        s = ServerProcess(*args, *_opts_to_args(opts), config_file=config_file, name=name)
        started.append(s)
        return s.start()

    yield start
    died = [s for s in started if s.proc is not None and not s.alive() and not s.exit_expected]
    for s in started:
        s.stop()
    if died:
        pytest.fail("; ".join(f"server {s.name} died during the test (exit code {s.proc.returncode}), "
                              f"log: {s.log_path}" for s in died), pytrace=False)

