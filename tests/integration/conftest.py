"""Fixtures for the kvpool black-box integration suite.

Which server runs:
  * KVPOOL_SERVER=/path/to/kvpool-server   -> that binary
  * KVPOOL_REFERENCE=redis                 -> /usr/bin/redis-server (reference
    mode: tests marked `kvpool_only` are skipped, nothing else is)
  * neither set                            -> /usr/bin/redis-server too, but
    `kvpool_only` tests still run (and fail): forgetting KVPOOL_SERVER must
    not turn the suite silently green.

Pool mode: KVPOOL_POOL_NODES=N (N >= 2, with KVPOOL_SERVER) makes the default
`server` fixture node 1 of an N-node pool (every node on its own free port,
same pool-nodes list and secret on each), and `server_factory` starts N-node
pools with the requested options too (pool=False asks for a single process).
Tests marked `single_node` are skipped in pool mode, and so are tests
marked `own_pool` (they start their own pools whatever the mode, so the
single-node runs already ran them unchanged). `server.nodes` is the
list of nodes of the server's pool ([server] outside pool mode), so a test can
read per-node figures (INFO memory, INFO stats) the same way in both modes.

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
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterable, Iterator, Optional

import pytest
import redis

from resp import RespConnection, RespError

# The Python client (clients/python/kvpool) and its native module, which the
# build puts in <build>/clients/python/kvpool (KVPOOL_NATIVE_DIR names
# another build's): `import kvpool` works in every test.
_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
for _p in (os.environ.get("KVPOOL_NATIVE_DIR") or os.path.join(_ROOT, "build", "clients", "python"),
           os.path.join(_ROOT, "clients", "python")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

# Where servers listen and clients connect. The RDMA run in the Soft-RoCE
# guest sets it to the rxe0 address, where rdma_cm finds the device.
HOST = os.environ.get("KVPOOL_TEST_HOST", "127.0.0.1")
# Node-to-node transport of pools: tcp (default) or rdma (no fallback: a
# silent fall back to TCP must fail the run).
POOL_TRANSPORT = os.environ.get("KVPOOL_POOL_TRANSPORT", "tcp")
POOL_TRANSPORT_ARGS = (["--transport", "rdma", "--transport-fallback", "no",
                        "--protected-mode", "no"] if POOL_TRANSPORT == "rdma" else [])
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
# Pool mode: the default server (and factory servers) are N-node pools.
try:
    POOL_NODES = int(os.environ.get("KVPOOL_POOL_NODES", "0") or "0")
except ValueError:
    raise SystemExit("KVPOOL_POOL_NODES must be an integer")
POOL_MODE = POOL_NODES >= 2 and not USE_REDIS
# How long a freshly started pool may take until every node sees every other up.
POOL_UP_TIMEOUT = 20.0

_ALL_SERVERS: list["ServerProcess"] = []
_DEFAULT: dict = {"server": None, "nodes": []}
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


def pick_free_port(avoid: Iterable[int] = ()) -> int:
    """A free loopback port P such that P+10000 (kvpool's node port) is free too.

    `avoid`: ports already handed out (client or node ports of other nodes of
    the same pool); neither P nor P+10000 is one of them."""
    avoid = set(avoid)
    for _ in range(500):
        p = random.randint(20000, 45000)
        if p in avoid or p + 10000 in avoid:
            continue
        if _port_is_free(p) and _port_is_free(p + 10000):
            return p
    raise RuntimeError("no free port pair found")


def pick_free_ports(n: int) -> list[int]:
    """n client ports, all distinct, none equal to another's node port (P+10000)."""
    ports: list[int] = []
    used: set[int] = set()
    for _ in range(n):
        p = pick_free_port(used)
        ports.append(p)
        used |= {p, p + 10000}
    return ports


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
        self.exit_expected = False  # set by wait_exit() (SHUTDOWN, SIGTERM tests) and Pool.kill()
        self.pool: Optional["Pool"] = None  # the pool this process is a node of
        self.pool_args: list[str] = []      # --pool-nodes ... (set by Pool)
        _ALL_SERVERS.append(self)

    @property
    def nodes(self) -> list["ServerProcess"]:
        """Every node of this server's pool (just [self] for a single process)."""
        return list(self.pool.nodes) if self.pool is not None else [self]

    # -- lifecycle ----------------------------------------------------------
    def argv(self) -> list[str]:
        argv = [SERVER_BINARY]
        if self.config_file:
            argv.append(self.config_file)
        argv += ["--port", str(self.port), "--bind", HOST]
        if USE_REDIS:
            argv += ["--save", "", "--appendonly", "no"]
        else:
            if not getattr(self, "default_metrics", False):
                argv += ["--metrics-port", "0"]  # not the shared default 9121 (test_metrics.py)
            # Two event loops, as the suite always ran on two cores, so the
            # cross-thread paths stay covered (io-threads 0 means one loop
            # below 4 cores). A test's own --io-threads comes later and wins.
            if not getattr(self, "default_io_threads", False):
                argv += ["--io-threads", "2"]
        extra = EXTRA_SERVER_ARGS
        if getattr(self, "default_io_threads", False):
            # Nor from KVPOOL_SERVER_ARGS (the TSan pass sets --io-threads 2).
            extra = [a for i, a in enumerate(extra)
                     if a != "--io-threads" and (i == 0 or extra[i - 1] != "--io-threads")]
        return argv + extra + self.extra_args + self.pool_args

    def spawn(self, port: int) -> None:
        """Start the process on `port` without waiting for it."""
        if not os.access(SERVER_BINARY, os.X_OK):
            raise RuntimeError(f"server binary {SERVER_BINARY} is not executable (check KVPOOL_SERVER)")
        self.port = port
        self.returncode = None
        self.exit_expected = False
        with open(self.log_path, "ab") as log:
            log.write(("\n=== start: %s\n" % " ".join(repr(a) if a == "" or " " in a else a
                                                     for a in self.argv())).encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv(), cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent)

    def start(self) -> "ServerProcess":
        last_err = None
        for _attempt in range(3):
            self.spawn(pick_free_port())
            try:
                self.wait_ready()
                return self
            except Exception as e:  # port race or real failure: look at the log
                last_err = e
                self.stop()
                if "in use" not in self.log_tail(20).lower():
                    break
        raise RuntimeError(f"{self.name} did not start: {last_err}\n--- log ---\n{self.log_tail()}")

    def restart_same_port(self, attempts: int = 20) -> "ServerProcess":
        """Start again on the port it had (a pool node's address is fixed)."""
        assert self.port is not None
        last_err = None
        for _attempt in range(attempts):
            self.spawn(self.port)
            try:
                self.wait_ready()
                return self
            except Exception as e:
                last_err = e
                self.stop()
                if "in use" not in self.log_tail(20).lower():
                    break
                time.sleep(0.25)
        raise RuntimeError(f"{self.name} did not restart on port {self.port}: {last_err}\n"
                           f"--- log ---\n{self.log_tail()}")

    def wait_ready(self) -> None:
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

    _wait_ready = wait_ready  # old name

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        """Restart the process if it died (a crash fails one test, not all).
        For a pool node, every dead node of the pool is restarted."""
        if self.pool is not None:
            self.pool.ensure_running()
            return
        if self.proc is not None and not self.alive():
            self.restarts += 1
            with open(self.log_path, "ab") as log:
                log.write(b"\n=== process had exited with code %d; restarting\n" % self.proc.returncode)
            self.start()

    def terminate(self) -> None:
        """Send SIGTERM if running (stop() waits)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass

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

    def kill(self) -> None:
        """SIGKILL (kill -9) and reap; the exit is expected."""
        self.exit_expected = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self.returncode = self.proc.returncode

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

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

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


def stop_all(servers: Iterable[ServerProcess], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every server at once, then wait for each (SIGKILL after timeout)."""
    servers = list(servers)
    for s in servers:
        s.terminate()
    for s in servers:
        s.stop(timeout)


# ---------------------------------------------------------------------------
# pools
# ---------------------------------------------------------------------------

def parse_pool_nodes(text) -> list[dict]:
    """POOL NODES -> one dict per line:
    {index, addr, pool_port, myself, state, slots: [str], keys, used_memory, maxmemory, transport, ...}."""
    if isinstance(text, bytes):
        text = text.decode()
    out = []
    for line in text.splitlines():
        tok = line.split()
        if not tok:
            continue
        addr, _, pport = tok[1].partition("@")
        d = {"index": int(tok[0]), "addr": addr, "pool_port": int(pport) if pport else None,
             "myself": tok[2] == "myself", "state": tok[3], "slots": [], "line": line}
        for t in tok[4:]:
            if "=" in t:
                k, v = t.split("=", 1)
                d[k] = int(v) if v.lstrip("-").isdigit() else v
            else:
                d["slots"].append(t)
        out.append(d)
    return out


class Pool:
    """N kvpool-server processes forming one pool on loopback.

        p = Pool(3, "--maxmemory", "32mb", name="lru").start()
        p.nodes[0].client().set("k", "v")      # node 1
        p.kill(2); p.wait_state(2, "down"); p.restart(2)

    Every node gets the same `--pool-nodes` list (in node order) and
    `--pool-secret`; `node_args[i]` adds arguments to node i only (e.g. a
    different --pool-secret). Options given as keywords become --opt value.
    """

    def __init__(self, n: int = 3, *extra_args: str, name: str = "pool", secret: Optional[str] = None,
                 node_args: Optional[dict] = None, config_file: Optional[str] = None, **opts):
        if USE_REDIS:
            raise RuntimeError("a pool needs kvpool-server (set KVPOOL_SERVER)")
        self.n = n
        self.name = name
        self.secret = secret if secret is not None else "it-" + secrets.token_hex(16)
        self.extra_args = [str(a) for a in extra_args] + _opts_to_args(opts)
        self.node_args = {i: [str(a) for a in v] for i, v in (node_args or {}).items()}
        self.nodes = [ServerProcess(*self.extra_args, *self.node_args.get(i, []), config_file=config_file,
                                    name=f"{name}-n{i + 1}") for i in range(n)]
        for s in self.nodes:
            s.pool = self
        self.ports: list[int] = []

    @property
    def pool_nodes_arg(self) -> str:
        return " ".join(f"{HOST}:{p}" for p in self.ports)

    def __getitem__(self, i: int) -> ServerProcess:
        return self.nodes[i]

    def __len__(self) -> int:
        return self.n

    def _set_ports(self, ports: list[int]) -> None:
        self.ports = ports
        for s in self.nodes:
            s.pool_args = ["--pool-nodes", self.pool_nodes_arg, "--pool-secret", self.secret]
            if "--pool-secret" in self.node_args.get(self.nodes.index(s), []):
                s.pool_args = ["--pool-nodes", self.pool_nodes_arg]  # the node's own secret wins
            s.pool_args = POOL_TRANSPORT_ARGS + s.pool_args

    def start(self, wait_up: bool = True) -> "Pool":
        last_err = None
        for _attempt in range(3):
            self._set_ports(pick_free_ports(self.n))
            for s, p in zip(self.nodes, self.ports):
                s.spawn(p)
            try:
                for s in self.nodes:
                    s.wait_ready()
                if wait_up:
                    self.wait_all_up()
                return self
            except Exception as e:
                last_err = e
                stop_all(self.nodes)
                if not any("in use" in s.log_tail(20).lower() for s in self.nodes):
                    break
        logs = "\n".join(f"--- {s.describe()} ---\n{s.log_tail(40)}" for s in self.nodes)
        raise RuntimeError(f"pool {self.name} did not start: {last_err}\n{logs}")

    def pool_nodes(self, i: int, timeout: float = 5.0) -> list[dict]:
        """POOL NODES as seen by node i (parsed)."""
        with self.nodes[i].raw(timeout=timeout) as c:
            text = c.execute("POOL", "NODES")
        if isinstance(text, RespError):
            raise AssertionError(f"POOL NODES on {self.nodes[i].name}: {text.message}")
        return parse_pool_nodes(text)

    def states(self, i: int) -> list[str]:
        return [d["state"] for d in self.pool_nodes(i)]

    def wait_state(self, target: int, state: str, observers: Optional[Iterable[int]] = None,
                   timeout: float = 10.0) -> float:
        """Wait until every observer (default: every other running node) reports node
        `target` as `state` ("up"/"down") in POOL NODES. Returns the seconds it took."""
        if observers is None:
            observers = [i for i in range(self.n) if i != target and self.nodes[i].alive()]
        observers = list(observers)
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            seen = {}
            for i in observers:
                try:
                    seen[i] = self.states(i)[target]
                except (OSError, AssertionError, IndexError) as e:
                    seen[i] = repr(e)
            if all(v == state for v in seen.values()):
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                raise AssertionError(f"pool {self.name}: node {target + 1} not '{state}' after {timeout}s "
                                     f"as seen by nodes {[i + 1 for i in observers]}: {seen}")
            time.sleep(0.02)

    @staticmethod
    def _really_up(d: dict) -> bool:
        # A node lists its peers 'up' from the start, before any heartbeat
        # (optimistic until pool-down-after-ms passes without an answer); a peer
        # whose heartbeat was answered also has its maxmemory filled in.
        return d["state"] == "up" and (d["myself"] or d.get("maxmemory", 0) > 0)

    def wait_all_up(self, timeout: float = POOL_UP_TIMEOUT) -> None:
        """Wait until every node lists all n nodes, each 'up' and heard from."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                views = [self.pool_nodes(i) for i in range(self.n)]
                if all(len(v) == self.n and all(self._really_up(d) for d in v) for v in views):
                    return
                last = [[d["line"] for d in v] for v in views]
            except (OSError, AssertionError) as e:
                last = repr(e)
            for s in self.nodes:
                if not s.alive():
                    raise RuntimeError(f"{s.name} exited with code {s.proc.returncode} while the pool formed")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pool {self.name}: not all nodes up after {timeout}s; last POOL NODES: {last}")
            time.sleep(0.05)

    def kill(self, i: int) -> None:
        """kill -9 node i."""
        self.nodes[i].kill()

    def restart(self, i: int, wait_up: bool = True) -> ServerProcess:
        """Start node i again on its port (after kill/stop), then wait for the pool to form."""
        s = self.nodes[i]
        if s.alive():
            s.stop()
        s.restart_same_port()
        if wait_up:
            self.wait_all_up()
        return s

    def ensure_running(self) -> None:
        """Restart nodes that died (a crash fails one test, not the rest of the suite)."""
        dead = [s for s in self.nodes if s.proc is not None and not s.alive()]
        if not dead:
            return
        for s in dead:
            s.restarts += 1
            with open(s.log_path, "ab") as log:
                log.write(b"\n=== process had exited with code %d; restarting\n" % s.proc.returncode)
            s.restart_same_port()
        self.wait_all_up()

    def alive(self) -> bool:
        return all(s.alive() for s in self.nodes)

    def unexpected_deaths(self) -> list[ServerProcess]:
        return [s for s in self.nodes if s.proc is not None and not s.alive() and not s.exit_expected]

    def stop(self) -> None:
        stop_all(self.nodes)


def running(p: "Pool") -> Iterator["Pool"]:
    """For a fixture (`yield from running(Pool(...))`): the pool started (all
    of it stopped if it cannot start), and stopped (SIGTERM) after."""
    try:
        p.start()
    except Exception:
        p.stop()
        raise
    yield p
    stop_all(p.nodes)


def fast_failover_pool(name: str, *args: str, **opts) -> Iterator["Pool"]:
    """`running` for a pool of three that counts a silent node down within
    half a second and gives up on a call after 2 s."""
    yield from running(Pool(3, "--pool-heartbeat-ms", "50", "--pool-down-after-ms", "500",
                            "--pool-timeout-ms", "2000", *args, name=name, **opts))


def start_server(*args, config_file=None, name="extra", pool: Optional[bool] = None,
                 nodes: Optional[int] = None, **opts) -> ServerProcess:
    """A single server, or (pool mode, or pool=True) node 1 of a pool with these options."""
    if pool is None:
        pool = POOL_MODE
    if pool:
        n = nodes or (POOL_NODES if POOL_NODES >= 2 else 3)
        p = Pool(n, *args, config_file=config_file, name=name, **opts)
        try:
            p.start()
        except Exception:
            p.stop()
            raise
        return p.nodes[0]
    s = ServerProcess(*args, *_opts_to_args(opts), config_file=config_file, name=name)
    return s.start()


def _stop_everything() -> None:
    for s in _ALL_SERVERS:
        s.terminate()
    for s in _ALL_SERVERS:
        try:
            s.stop(timeout=5)
        except Exception:
            pass


atexit.register(_stop_everything)


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
    elif POOL_MODE:
        mode = f"kvpool POOL mode: the default server is node 1 of a {POOL_NODES}-node pool; single_node tests skipped"
    else:
        mode = "kvpool mode"
    lines = [f"server under test: {SERVER_BINARY} ({mode})", f"server logs: {_LOG_ROOT}"]
    if POOL_NODES >= 2 and USE_REDIS:
        lines.append("KVPOOL_POOL_NODES ignored: redis-server has no pool")
    return lines


def pytest_collection_modifyitems(config, items):
    if REFERENCE:
        skip = pytest.mark.skip(reason="kvpool_only: reference redis-server lacks this")
        for item in items:
            if "kvpool_only" in item.keywords:
                item.add_marker(skip)
    if POOL_MODE:
        skip = pytest.mark.skip(reason="single_node: targets one process, skipped in pool mode")
        again = pytest.mark.skip(reason="own_pool: its own pools, the same in every mode; "
                                        "ran in the single-node run")
        for item in items:
            if "single_node" in item.keywords:
                item.add_marker(skip)
            elif "own_pool" in item.keywords:
                item.add_marker(again)


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
    # scripts/test.sh runs the suite twice: `-m "not serial"` with pytest-xdist
    # (-n), then `-m serial` alone. A serial test measures CPU time, loop turns
    # or latency, which workers running beside it would distort: under -n it
    # fails rather than pass or fail by chance.
    if os.environ.get("PYTEST_XDIST_WORKER") and item.get_closest_marker("serial"):
        pytest.fail("serial test under pytest-xdist: run it in a pass of its own (-m serial, no -n)",
                    pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    # The default server (all its nodes), servers started by this test, and any
    # other server still running (module-scoped pools).
    used = list(_DEFAULT["nodes"])
    used += [s for s in _ALL_SERVERS[_first_server_of_test["index"]:] if s not in used]
    used += [s for s in _ALL_SERVERS if s.alive() and s not in used]
    for s in used:
        rep.sections.append((f"server log: {s.describe()}", s.log_tail()))


def pytest_terminal_summary(terminalreporter):
    for s in _ALL_SERVERS:
        if s.restarts:
            terminalreporter.write_line(
                f"WARNING: {s.name} died and was restarted {s.restarts} time(s); see {s.log_path}", red=True)


def pytest_sessionfinish(session, exitstatus):
    _stop_everything()
    if exitstatus == 0 and not any(s.restarts for s in _ALL_SERVERS):
        shutil.rmtree(_LOG_ROOT, ignore_errors=True)


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def server():
    """The shared default server (no auth, default options); in pool mode node 1 of the pool."""
    if POOL_MODE:
        p = Pool(POOL_NODES, name="default")
        _DEFAULT["nodes"] = list(p.nodes)
        try:
            p.start()
        except Exception:
            p.stop()
            raise
        s = p.nodes[0]
    else:
        s = ServerProcess(name="default")
        _DEFAULT["nodes"] = [s]
        s.start()
    _DEFAULT["server"] = s
    yield s
    nodes = s.nodes
    stop_all(nodes)
    # A server under test should exit cleanly on SIGTERM (redis exits 0).
    for n in nodes:
        if n.returncode not in (0, None) and not n.exit_expected:
            print(f"\nWARNING: {n.name} exited with code {n.returncode} on SIGTERM; log: {n.log_path}")


@pytest.fixture
def r(server):
    """A redis-py client (RESP2, bytes replies) on an empty keyspace, DB 0."""
    server.ensure_running()
    c = server.client()
    c.flushall()
    yield c
    c.close()
    dead = [n for n in server.nodes if not n.alive()]
    if dead:
        pytest.fail("; ".join(f"{n.name} died during this test (exit code {n.proc.returncode}); log: {n.log_path}"
                              for n in dead), pytrace=False)


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
        srv = server_factory(name="shutdown", pool=False)   # always one process

    In pool mode (KVPOOL_POOL_NODES) each call starts a pool whose nodes all
    get the options, and returns node 1 (`srv.nodes` lists all of them).
    """
    started: list[ServerProcess] = []

    def start(*args, config_file=None, name="extra", pool: Optional[bool] = None, **opts) -> ServerProcess:
        before = len(_ALL_SERVERS)
        try:
            return start_server(*args, config_file=config_file, name=name, pool=pool, **opts)
        finally:
            started.extend(_ALL_SERVERS[before:])

    yield start
    died = [s for s in started if s.proc is not None and not s.alive() and not s.exit_expected]
    stop_all(started)
    if died:
        pytest.fail("; ".join(f"server {s.name} died during the test (exit code {s.proc.returncode}), "
                              f"log: {s.log_path}" for s in died), pytrace=False)


@pytest.fixture
def pool_factory():
    """Start kvpool pools (always, whatever KVPOOL_POOL_NODES says); stopped after the test.

        p = pool_factory(3, pool_heartbeat_ms=50, pool_down_after_ms=500)
        p.nodes[0].client() ...

    A node that dies without the test having killed it (Pool.kill) fails the test.
    """
    pools: list[Pool] = []

    def start(n: int = 3, *args, name: str = "pool", start: bool = True, **kw) -> Pool:
        p = Pool(n, *args, name=name, **kw)
        pools.append(p)
        return p.start() if start else p

    yield start
    died = [s for p in pools for s in p.unexpected_deaths()]
    stop_all([s for p in pools for s in p.nodes])
    if died:
        pytest.fail("; ".join(f"pool node {s.name} died during the test (exit code {s.proc.returncode}), "
                              f"log: {s.log_path}" for s in died), pytrace=False)
