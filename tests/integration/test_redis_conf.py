"""A stock redis.conf starts a node (issue 18, Config).

The file is Debian's, from the redis-server package (/etc/redis/redis.conf),
copied to the server's temp dir and changed only where a user would: port,
dir, logfile and pidfile. `--daemonize no` comes on the command line, as
Debian's redis-server.service passes it. The node starts, serves SET/GET and
logs each Redis directive it ignores once, by name and line;
`--check-config` lists every directive as used, ignored or invalid; a bad
line is an error naming the file and line; `include` works (a loop is an
error); CONFIG SET refuses a maxmemory the segment reserved at start cannot
hold.

Each test runs its own process(es): single_node. What only kvpool does
(its log lines, --check-config, its error texts) is kvpool_only; the rest
also passes against redis-server 7.0 with the same file.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import redis

from conftest import HOST, SERVER_BINARY, USE_REDIS, ServerProcess, stop_all

STOCK = "/etc/redis/redis.conf"

pytestmark = [pytest.mark.single_node]


@pytest.fixture(autouse=True)
def _stock_conf_installed():
    """Fails, never skips, without the file: scripts/install-deps.sh installs
    Debian's redis-server package, which ships it."""
    if not os.path.exists(STOCK):
        pytest.fail(f"{STOCK} is not installed (Debian's redis-server package)")

# What a user changes for a second node beside the packaged one.
ADJUSTED = ("port", "dir", "logfile", "pidfile")


def stock_lines() -> list[str]:
    with open(STOCK) as f:
        return f.read().splitlines()


def active(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, name) of every directive line, as redis-server reads them."""
    out = []
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((i, s.split()[0].lower()))
    return out


def adjusted_stock(directory: str, port: int, extra: str = "") -> str:
    """The stock file with port, dir, logfile and pidfile changed in place."""
    values = {"port": str(port), "dir": directory,
              "logfile": os.path.join(directory, "redis-server.log"),
              "pidfile": os.path.join(directory, "redis-server.pid")}
    out, changed = [], []
    for line in stock_lines():
        name = line.split()[0] if line.strip() and not line.lstrip().startswith("#") else ""
        if name in values:
            line = f"{name} {values[name]}"
            changed.append(name)
        out.append(line)
    assert sorted(changed) == sorted(ADJUSTED), f"the stock file changed: {changed}"
    return "\n".join(out) + "\n" + extra


class StockConfServer(ServerProcess):
    """A server started from the adjusted stock file in its own temp dir."""

    def __init__(self, extra: str = "", name: str = "redis-conf"):
        super().__init__(name=name)
        self.extra = extra
        self.conf_path = os.path.join(self.dir, "redis.conf")

    def spawn(self, port: int) -> None:
        with open(self.conf_path, "w") as f:
            f.write(adjusted_stock(self.dir, port, self.extra))
        super().spawn(port)

    def argv(self) -> list[str]:
        argv = [SERVER_BINARY, self.conf_path, "--daemonize", "no"]
        if HOST not in ("127.0.0.1", "localhost"):  # the RDMA guest's address
            argv += ["--bind", HOST]
        return argv

    @property
    def logfile(self) -> str:
        return os.path.join(self.dir, "redis-server.log")


@pytest.fixture(scope="module")
def stock_node():
    srv = StockConfServer()
    try:
        yield srv.start()
    finally:
        stop_all([srv])


def check_config(path: str, *args: str) -> tuple[int, list[str]]:
    p = subprocess.run([SERVER_BINARY, "--check-config", path, *args],
                       capture_output=True, text=True, timeout=60)
    assert p.stderr == "", p.stderr
    return p.returncode, p.stdout.splitlines()


def parse_report(lines: list[str]) -> tuple[list[tuple[str, str, str, str]], str]:
    """[(status, where, name, note)], and the totals line."""
    rows = []
    for line in lines[:-1]:
        m = re.match(r"^(used|ignored|invalid) +(command line|\S+) +([^:\s]+)(?:: (.*))?$", line)
        assert m, f"unexpected --check-config line: {line!r}"
        rows.append((m[1], m[2], m[3], m[4] or ""))
    return rows, lines[-1]


# ------------------------------------------------------------- the node

def test_stock_redis_conf_starts_a_node_that_serves(stock_node):
    r = stock_node.client()
    assert r.set("stock:k", b"v" * 1000)
    assert r.get("stock:k") == b"v" * 1000
    assert r.mset({"stock:a": "1", "stock:b": "2"})
    assert r.mget("stock:a", "stock:b", "stock:nope") == [b"1", b"2", None]
    assert r.config_get("port")["port"] == str(stock_node.port)
    assert r.config_get("databases")["databases"] == "16"
    # The file's own logfile and pidfile, in the dir it names.
    assert os.path.getsize(stock_node.logfile) > 0
    with open(os.path.join(stock_node.dir, "redis-server.pid")) as f:
        assert int(f.read().strip()) == stock_node.proc.pid
    # Its three client-output-buffer-limit lines set their classes; normal is Redis's default.
    assert r.config_get("client-output-buffer-limit")["client-output-buffer-limit"].startswith(
        "normal 0 0 0")


@pytest.mark.kvpool_only
def test_stock_redis_conf_ignored_directives_are_logged_once(stock_node):
    with open(stock_node.logfile) as f:
        log = f.read()
    rc, lines = check_config(stock_node.conf_path)
    rows, _ = parse_report(lines)
    ignored = [(where, name) for status, where, name, _ in rows if status == "ignored"]
    assert len(ignored) > 40
    for where, name in ignored:
        found = re.findall(rf"config: '{re.escape(name)}' ignored \(([^)]*)\): (.*)", log)
        assert len(found) == 1, f"{name}: logged {len(found)} times\n{log[-3000:]}"
        assert found[0][0] == where, found
        assert "no effect here" in found[0][1], found
    assert "always-show-logo" in {n for _, n in ignored}
    # Every used one is applied, not logged as ignored.
    for status, _, name, _ in rows:
        if status == "used":
            assert f"config: '{name}' ignored" not in log


# ------------------------------------------------------- --check-config

@pytest.mark.kvpool_only
def test_check_config_lists_used_ignored_invalid_of_the_stock_file(tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text(adjusted_stock(str(tmp_path), 6390))
    rc, lines = check_config(str(conf))
    assert rc == 0, "\n".join(lines)
    rows, totals = parse_report(lines)
    expected = active(conf.read_text().splitlines())
    assert len(expected) == 71, "Debian's redis.conf has 71 directive lines"
    assert [(w, n) for _, w, n, _ in rows] == [(f"{conf}:{i}", n) for i, n in expected]
    by_status: dict[str, list[str]] = {}
    for status, _, name, _ in rows:
        by_status.setdefault(status, []).append(name)
    assert "invalid" not in by_status
    used = set(by_status["used"])
    assert {"bind", "protected-mode", "port", "tcp-backlog", "timeout", "tcp-keepalive",
            "pidfile", "loglevel", "logfile", "databases", "dir", "appendonly",
            "client-output-buffer-limit", "hz"} <= used
    assert by_status["used"].count("client-output-buffer-limit") == 3
    ignored = set(by_status["ignored"])
    assert {"always-show-logo", "set-proc-title", "dbfilename", "rdbcompression",
            "replica-read-only", "appendfsync", "hash-max-listpack-entries", "activerehashing",
            "lazyfree-lazy-eviction", "jemalloc-bg-thread", "notify-keyspace-events"} <= ignored
    assert not used & ignored
    warned = [n for s, _, n, note in rows if note.startswith("warning:")]
    assert warned == [], "every directive of the stock file is at a value kvpool honours"
    n_used, n_ignored = len(by_status["used"]), len(by_status["ignored"])
    assert totals == f"{n_used} used, {n_ignored} ignored (0 with a warning), 0 invalid"


@pytest.mark.kvpool_only
def test_check_config_names_invalid_lines_and_warnings(tmp_path):
    conf = tmp_path / "redis.conf"
    extra = ("daemonise yes\n"                 # a typo: no Redis directive
             "maxmemory lots\n"                # a bad value
             "notify-keyspace-events KEA\n"    # Redis's, but kvpool cannot honour it
             "frobnicate 1\n")
    conf.write_text(adjusted_stock(str(tmp_path), 6390, extra))
    n = len(stock_lines())
    rc, lines = check_config(str(conf), "--tcp-keepalive", "60")
    assert rc == 1
    rows, totals = parse_report(lines)
    tail = rows[-5:]
    assert tail[0] == ("invalid", f"{conf}:{n + 1}", "daemonise",
                       "neither a kvpool option nor a Redis directive (did you mean 'daemonize'?)")
    assert tail[1] == ("invalid", f"{conf}:{n + 2}", "maxmemory", "argument must be a memory value")
    assert tail[2][:3] == ("ignored", f"{conf}:{n + 3}", "notify-keyspace-events")
    assert tail[2][3].startswith("warning: Redis directive kvpool cannot honour: "
                                 "kvpool publishes no keyspace notifications")
    assert tail[3] == ("invalid", f"{conf}:{n + 4}", "frobnicate",
                       "neither a kvpool option nor a Redis directive")
    assert tail[4] == ("used", "command line", "tcp-keepalive", "")
    assert totals.endswith("(1 with a warning), 3 invalid"), totals


# ------------------------------------------------------ errors at start

@pytest.mark.kvpool_only
def test_a_bad_line_stops_the_node_naming_file_and_line(tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text(adjusted_stock(str(tmp_path), 6390, "daemonise yes\n"))
    n = len(stock_lines())
    p = subprocess.run([SERVER_BINARY, str(conf), "--daemonize", "no"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip() == (f"kvpool-server: {conf}:{n + 1}: 'daemonise': neither a kvpool "
                                "option nor a Redis directive (did you mean 'daemonize'?)")
    assert "CONFIG SET" not in p.stderr
    # In an included file: that file and its line.
    local = tmp_path / "local.conf"
    local.write_text("maxmemory 64mb\nmaxmemory-policy allkeys-lfu\n")
    conf.write_text(adjusted_stock(str(tmp_path), 6390, f"include {local}\n"))
    p = subprocess.run([SERVER_BINARY, str(conf), "--daemonize", "no"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.startswith(f"kvpool-server: {local}:2: 'maxmemory-policy': argument(s) must "
                               "be one of the following: noeviction"), p.stderr


@pytest.mark.kvpool_only
def test_an_include_loop_is_an_error(tmp_path):
    conf = tmp_path / "redis.conf"
    other = tmp_path / "other.conf"
    other.write_text(f"hz 20\ninclude {conf}\n")
    conf.write_text(adjusted_stock(str(tmp_path), 6390, f"include {other}\n"))
    p = subprocess.run([SERVER_BINARY, str(conf), "--daemonize", "no"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip() == (f"kvpool-server: {other}:2: 'include': include loop: "
                                f"{conf} -> {other} -> {conf}")


def test_include_relative_to_the_working_directory():
    # As redis-server resolves it: a relative include is opened from the
    # working directory, which the stock file's `dir` (the temp dir) sets.
    srv = StockConfServer(extra="include local.d/memory.conf\n", name="redis-conf-include")
    os.makedirs(os.path.join(srv.dir, "local.d"))
    with open(os.path.join(srv.dir, "local.d", "memory.conf"), "w") as f:
        f.write("maxmemory 48mb\nmaxmemory-policy allkeys-lru\n")
    try:
        srv.start()
        r = srv.client(decode_responses=True)
        got = r.config_get("maxmemory*")
        assert got["maxmemory"] == str(48 << 20)
        assert got["maxmemory-policy"] == "allkeys-lru"
        assert r.set("k", "v") and r.get("k") == "v"
    finally:
        stop_all([srv])


# ---------------------------------------------- CONFIG SET what it cannot honour

@pytest.mark.kvpool_only
def test_config_set_maxmemory_beyond_the_segment_is_refused(server_factory):
    srv = server_factory("--maxmemory", "16mb", name="maxmemory-segment", pool=False)
    r = srv.client(decode_responses=True)
    with pytest.raises(redis.ResponseError) as e:
        r.config_set("maxmemory", "1gb")
    msg = str(e.value)
    assert msg.startswith("CONFIG SET failed (possibly related to argument 'maxmemory') - "
                          "maxmemory 1073741824 is more than this node can honour: its segment "
                          "was reserved at start for at most 16777216 bytes"), msg
    assert "restart it with a larger maxmemory" in msg
    assert r.config_get("maxmemory")["maxmemory"] == str(16 << 20)
    assert r.info("memory")["maxmemory"] == 16 << 20
    # 0 means a quarter of RAM here: beyond 16 MB too.
    with pytest.raises(redis.ResponseError, match="a quarter of RAM"):
        r.config_set("maxmemory", "0")
    # Lower, and back up to what was reserved, is fine.
    assert r.config_set("maxmemory", "8mb")
    assert r.info("memory")["maxmemory"] == 8 << 20
    assert r.config_set("maxmemory", "16mb")
    assert r.info("memory")["maxmemory"] == 16 << 20
