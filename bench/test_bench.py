"""Correctness of the benchmark's load generator against real servers.

The load generator's --verify checks every reply (MGET values derived from
key + seed, MEXISTS arrays, EXISTS counts, +OK); these tests run it briefly
against a real kvpool-server (and redis-server as a reference for the
commands both have), and show that it catches wrong answers. No speed is
asserted.

    KVPOOL_SERVER=build/server/kvpool-server KVPOOL_LOADGEN=build/bench/loadgen \
      /usr/bin/python3 -m pytest -q bench/test_bench.py

Without KVPOOL_LOADGEN / KVPOOL_SERVER, build/bench/loadgen and
build/server/kvpool-server (then build-release/...) are used if they exist.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
REDIS_SERVER = "/usr/bin/redis-server"


def _binary(env: str, rel: str) -> str:
    if os.environ.get(env):
        return os.path.abspath(os.environ[env])
    for build in ("build", "build-release"):
        path = os.path.join(ROOT, build, rel)
        if os.access(path, os.X_OK):
            return path
    pytest.skip(f"{env} not set and no {rel} built")


@pytest.fixture(scope="session")
def loadgen() -> str:
    return _binary("KVPOOL_LOADGEN", "bench/loadgen")


@pytest.fixture(scope="session")
def kvpool_binary() -> str:
    return _binary("KVPOOL_SERVER", "server/kvpool-server")


# ---------------------------------------------------------------- processes

def _free(port: int) -> bool:
    s = socket.socket()
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(n: int) -> list[int]:
    """n free ports P whose P+10000 (kvpool's node port) is free too."""
    for _ in range(1000):
        base = random.randint(20000, 44000)
        ports = [base + i for i in range(n)]
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports
    raise RuntimeError("no free ports")


def resp(port: int, *args: str, timeout: float = 5.0):
    """One command over a raw socket; returns the parsed reply (bytes, int,
    list, None, or an Exception for an error reply)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return _read(f)


def _read(f):
    line = f.readline().rstrip(b"\r\n")
    t, rest = line[:1], line[1:]
    if t == b"+":
        return rest
    if t == b"-":
        return Exception(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise ValueError(f"bad reply line {line!r}")


class Server:
    def __init__(self, argv: list[str], port: int):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="kvbench-test-")
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {self.log_tail()}")
            try:
                if resp(port, "PING", timeout=1) == b"PONG":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{argv[0]} did not answer PING: {self.log_tail()}")

    def log_tail(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


MEM = ["--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"]


@pytest.fixture
def kvpool(kvpool_binary):
    port = free_ports(1)[0]
    s = Server([kvpool_binary, "--port", str(port), "--bind", HOST, "--io-threads", "2"] + MEM,
               port)
    yield s
    s.stop()


@pytest.fixture
def redis():
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip("no redis-server")
    port = free_ports(1)[0]
    s = Server([REDIS_SERVER, "--port", str(port), "--bind", HOST, "--save", "",
                "--appendonly", "no"] + MEM, port)
    yield s
    s.stop()


def run_loadgen(loadgen: str, port: int, *args: str, expect_ok: bool = True) -> dict:
    argv = [loadgen, "--port", str(port), "--quiet"] + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 1, f"one JSON line expected:\n{p.stdout}\n{p.stderr}"
    result = json.loads(lines[0])
    if expect_ok:
        assert p.returncode == 0 and result["errors"] == 0, f"{' '.join(argv)}\n{lines[0]}\n{p.stderr}"
    else:
        assert p.returncode == 1, f"{' '.join(argv)} should have failed:\n{lines[0]}"
    return result


# ------------------------------------------------------------------- tests

BATCH = ["--key-count", "300", "--seed", "7", "--clients", "4", "--threads", "2"]


def _all_commands(loadgen: str, port: int, with_mexists: bool) -> None:
    # Load, then read back in batches with half of the keys absent.
    r = run_loadgen(loadgen, port, "--load", "--verify", "--command", "mget",
                    "--keys-per-batch", "100", "--value-size", "4k", "--hit-ratio", "0.5",
                    "--requests", "200", "--pipeline", "2", *BATCH)
    assert r["load_keys"] == 300
    assert r["commands"] == 200 and r["keys"] == 20000
    assert r["hits"] == 10000 and r["misses"] == 10000
    assert r["value_bytes"] == 10000 * 4096
    if with_mexists:
        r = run_loadgen(loadgen, port, "--verify", "--command", "mexists", "--keys-per-batch",
                        "100", "--value-size", "4k", "--hit-ratio", "0.5", "--requests", "200",
                        *BATCH)
        assert r["hits"] == 10000 and r["misses"] == 10000
    r = run_loadgen(loadgen, port, "--verify", "--command", "exists", "--keys-per-batch", "100",
                    "--value-size", "4k", "--hit-ratio", "0.5", "--requests", "200", *BATCH)
    assert r["hits"] == 10000
    # Overwrites with the same deterministic values, then single-key reads.
    run_loadgen(loadgen, port, "--verify", "--command", "mset", "--keys-per-batch", "100",
                "--value-size", "4k", "--requests", "100", "--pipeline", "4", *BATCH)
    run_loadgen(loadgen, port, "--verify", "--command", "set", "--value-size", "4k",
                "--requests", "1000", "--pipeline", "16", *BATCH)
    r = run_loadgen(loadgen, port, "--verify", "--command", "get", "--value-size", "4k",
                    "--hit-ratio", "0.7", "--requests", "2000", "--pipeline", "16", *BATCH)
    assert r["hits"] + r["misses"] == 2000 and 1000 < r["hits"] < 1800
    # A timed run (the mode the benchmark uses) verifies too.
    r = run_loadgen(loadgen, port, "--verify", "--command", "mget", "--keys-per-batch", "10",
                    "--value-size", "4k", "--duration", "1", *BATCH)
    assert r["commands"] > 0 and r["seconds"] == 1.0


def test_verify_passes_on_kvpool(loadgen, kvpool):
    _all_commands(loadgen, kvpool.port, with_mexists=True)


def test_verify_passes_on_redis(loadgen, redis):
    # The reference: the checks are not tuned to kvpool (no MEXISTS there).
    _all_commands(loadgen, redis.port, with_mexists=False)


def test_large_values_and_load_only(loadgen, kvpool):
    r = run_loadgen(loadgen, kvpool.port, "--load", "--duration", "0", "--command", "mget",
                    "--key-count", "20", "--value-size", "1m", "--clients", "2")
    assert r["load_keys"] == 20 and r["commands"] == 0
    r = run_loadgen(loadgen, kvpool.port, "--verify", "--command", "mget", "--keys-per-batch",
                    "8", "--key-count", "20", "--value-size", "1m", "--requests", "20",
                    "--clients", "2")
    assert r["hits"] == 160 and r["value_bytes"] == 160 << 20


def test_verify_catches_a_wrong_value(loadgen, kvpool):
    run_loadgen(loadgen, kvpool.port, "--load", "--duration", "0", "--command", "mget",
                "--key-count", "5", "--value-size", "100", "--clients", "1")
    assert resp(kvpool.port, "SET", "kvb:000000000003", "x" * 100) == b"OK"
    r = run_loadgen(loadgen, kvpool.port, "--verify", "--command", "mget", "--keys-per-batch", "5",
                    "--key-count", "5", "--value-size", "100", "--requests", "50",
                    "--clients", "1", expect_ok=False)
    assert r["verify_errors"] > 0
    assert "kvb:000000000003" in r["first_error"] and "wrong value" in r["first_error"]
    # The same value under another seed is wrong too.
    r = run_loadgen(loadgen, kvpool.port, "--verify", "--command", "get", "--key-count", "5",
                    "--value-size", "100", "--requests", "50", "--clients", "1", "--seed", "2",
                    expect_ok=False)
    assert r["verify_errors"] > 0


def test_verify_catches_a_phantom_key(loadgen, kvpool):
    # Absent keys are ids key_count..2*key_count-1; write one behind its back.
    run_loadgen(loadgen, kvpool.port, "--load", "--duration", "0", "--command", "mget",
                "--key-count", "2", "--value-size", "10", "--clients", "1")
    assert resp(kvpool.port, "SET", "kvb:000000000002", "y") == b"OK"
    assert resp(kvpool.port, "SET", "kvb:000000000003", "y") == b"OK"
    r = run_loadgen(loadgen, kvpool.port, "--verify", "--command", "mexists", "--keys-per-batch",
                    "4", "--key-count", "2", "--hit-ratio", "0.5", "--requests", "20",
                    "--clients", "1", expect_ok=False)
    assert r["verify_errors"] == 20 and "expected 0, got integer 1" in r["first_error"]


def test_error_replies_fail_the_run(loadgen, redis):
    # redis-server has no MEXISTS: every reply is an error.
    r = run_loadgen(loadgen, redis.port, "--command", "mexists", "--keys-per-batch", "10",
                    "--requests", "10", "--clients", "1", expect_ok=False)
    assert r["error_replies"] == 10 and "unknown command" in r["first_error"].lower()


def test_cannot_connect(loadgen):
    port = free_ports(1)[0]
    p = subprocess.run([loadgen, "--port", str(port), "--requests", "1"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "connect" in p.stderr


def test_bad_options(loadgen):
    p = subprocess.run([loadgen, "--hit-ratio", "2"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--hit-ratio" in p.stderr
    p = subprocess.run([loadgen, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "--keys-per-batch" in p.stdout


def test_keys_owned_by_one_pool_node(loadgen, kvpool_binary):
    ports = free_ports(2)
    nodes = " ".join(f"{HOST}:{p}" for p in ports)
    servers = []
    try:
        for p in ports:
            servers.append(Server([kvpool_binary, "--port", str(p), "--bind", HOST,
                                   "--pool-nodes", nodes, "--pool-secret", "bench-test-secret",
                                   "--io-threads", "1"] + MEM, p))
        owner = f"{HOST}:{ports[1]}"
        # Wait until the nodes see each other.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = resp(ports[0], "INFO", "pool")
            if isinstance(info, bytes) and b"pool_nodes_up:2" in info:
                break
            time.sleep(0.1)
        r = run_loadgen(loadgen, ports[0], "--load", "--verify", "--command", "mget",
                        "--keys-per-batch", "8", "--key-count", "16", "--value-size", "64k",
                        "--keys-owned-by", owner, "--requests", "50", "--clients", "2",
                        "--hit-ratio", "0.5")
        assert r["hits"] == 200 and r["misses"] == 200
        # Every value loaded went from node A to node B: none stayed on A.
        info = resp(ports[0], "INFO", "pool").decode()
        peer = [l for l in info.splitlines() if l.startswith("peer1:")][0]
        fields = dict(kv.split("=", 1) for kv in peer.split(":", 1)[1].split(","))
        assert int(fields["bytes_out"]) >= 16 * 65536, peer
        assert int(fields["bytes_in"]) >= 200 * 65536, peer  # the hits came back from B
    finally:
        for s in servers:
            s.stop()


# ------------------------------------------------------ run.sh's helpers

@pytest.fixture(scope="session")
def bench_report(loadgen) -> str:
    path = os.path.join(os.path.dirname(loadgen), "bench_report")
    if not os.access(path, os.X_OK):
        pytest.skip("no bench_report next to loadgen")
    return path


RB_CSV = ('"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
          '"p99_latency_ms","max_latency_ms"\n'
          '"GET","250000.00","1.0","0.1","0.900","2.0","3.500","9.0"\n')


def test_bench_report_cli(bench_report, tmp_path):
    p = subprocess.run([bench_report, "rb", "redis", "2", "20480", "GET=1-get", "--cpu", "0.5",
                        "0.25", "--requests", "1000000"], input=RB_CSV, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    f = p.stdout.rstrip("\n").split("\t")
    assert f[:5] == ["1-get", "redis", "2", "250000", "ops/s"]
    assert float(f[6]) == 0.9 and float(f[7]) == 3.5 and float(f[8]) == 20480
    assert float(f[9]) == 0.5 and float(f[10]) == 0.25  # us per command
    # A test that is not in the output is an error, not an empty row.
    p = subprocess.run([bench_report, "rb", "redis", "1", "0", "SET=1-set"], input=RB_CSV,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "SET" in p.stderr
    # A loadgen line reporting errors gives no record.
    bad = '{"ops_per_sec":1,"keys_per_sec":1,"gbit_per_sec":0,"p50_ms":1,"p99_ms":1,"errors":3}'
    p = subprocess.run([bench_report, "loadgen", "4", "kv", "1", "0", "ops"], input=bad,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "errors" in p.stderr
    # The table of a results file.
    results = tmp_path / "results.tsv"
    results.write_text("#workload\t1-get\tGET\t>=\t1.3\tyes\n#row\t1-get\tkv\tredis\n" +
                       "1-get\tredis\t1\t100\tops/s\t-\t1\t2\t10240\t2\t1\n" +
                       "1-get\tkv\t1\t200\tops/s\t-\t1\t1\t10240\t1\t1\n")
    p = subprocess.run([bench_report, "table", str(results)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and "| 2.00 | >= 1.30x | yes |" in p.stdout, p.stdout


def test_run_sh_rejects_bad_options():
    run = os.path.join(ROOT, "bench", "run.sh")
    for args in (["--rounds", "x"], ["--workloads", "10"], ["--io-threads", "0"], ["--bogus"]):
        p = subprocess.run([run, "--no-build", *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
    p = subprocess.run([run, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "--rounds" in p.stdout


def _side_by_side_script(name: str) -> str:
    """bench/NAME (a bench/side_by_side.sh user): bad options exit 2, --help
    documents them; skips when the redis tools it runs are missing."""
    script = os.path.join(ROOT, "bench", name)
    for args in (["--rounds", "0"], ["--requests", "x"], ["--server", "/nonexistent"], ["--bogus"]):
        p = subprocess.run([script, *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
    p = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "--rounds" in p.stdout
    if not all(os.access(f"/usr/bin/{t}", os.X_OK)
               for t in ("redis-server", "redis-benchmark", "redis-cli")):
        pytest.skip("redis-server, redis-benchmark or redis-cli is not installed")
    return script


def test_hotkey_cpu_sh(kvpool_binary):
    script = _side_by_side_script("hotkey_cpu.sh")
    p = subprocess.run([script, "--server", kvpool_binary, "--rounds", "1", "--requests", "2000"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    runs = [l for l in lines if l.startswith("round 1 ")]
    assert sorted(l.split()[2] for l in runs) == ["kvpool-io1", "kvpool-io2", "redis"], p.stdout
    assert any(l.strip().startswith("kvpool-io2") and "x redis" in l for l in lines), p.stdout
    assert any("io2 / io1:" in l for l in lines), p.stdout


def _run_pool_comparison(script_name: str, kvpool_binary: str, runs: list, rows: list) -> None:
    """Runs a side-by-side pool script for one short round: each (side, test)
    of `runs` ran once with a throughput, and the summary has `rows`."""
    script = _side_by_side_script(script_name)
    p = subprocess.run([script, "--server", kvpool_binary, "--rounds", "1", "--requests", "2000"],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    got = [l.split() for l in lines if l.startswith("round 1 ")]
    assert sorted((r[2], r[3]) for r in got) == sorted(runs), p.stdout
    assert all(float(r[4]) > 0 for r in got), p.stdout
    assert [l.split()[1] for l in lines if l.startswith("| ") and l.split()[1] in rows] == rows, p.stdout


def test_replica_cost_sh(kvpool_binary):
    _run_pool_comparison("replica_cost.sh", kvpool_binary,
                         [(side, t) for side in ("redis", "r1", "r2") for t in ("set", "mset")],
                         ["SET", "MSET"])


def test_cluster_cost_sh(kvpool_binary):
    _run_pool_comparison("cluster_cost.sh", kvpool_binary,
                         [(side, t) for side in ("cluster", "one-node") for t in ("set", "get")],
                         ["SET", "GET"])
    bad = subprocess.run([os.path.join(ROOT, "bench", "cluster_cost.sh"), "--replicas", "7"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2, bad.stderr


# ------------------------------------------------------------ llm_native.py

def test_llm_native_py(kvpool_binary, tmp_path):
    """bench/llm_native.py at tiny sizes: one round of every reader (iperf3,
    native, KVPoolStore, redis-server MGET) and of both clients of the
    SGLang pattern at two page sizes, every byte checked; a stored page with
    one byte changed fails the run, and bad options exit 2."""
    script = os.path.join(ROOT, "bench", "llm_native.py")
    # Fails, never skips: scripts/install-deps.sh installs both.
    if not os.access(REDIS_SERVER, os.X_OK) or not shutil.which("iperf3"):
        pytest.fail("redis-server or iperf3 is not installed (scripts/install-deps.sh)")
    tiny = [sys.executable, script, "--server", kvpool_binary, "--rounds", "1", "--seconds",
            "0.2", "--iperf3-seconds", "1", "--get-pages", "4", "--get-page-size", "64k",
            "--page-sizes", "4k,16k", "--prefix-pages", "8"]
    out = tmp_path / "llm_native.json"
    p = subprocess.run(tiny + ["--json", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout, p.stderr)
    rep = json.loads(out.read_text())
    bulk = rep["median"]["bulk"]
    for reader in ("iperf3", "native", "kvpool_py", "redis_mget"):
        assert bulk[reader]["gb_per_s"] > 0, bulk
    for reader in ("native", "kvpool_py", "redis_mget"):
        assert bulk[reader]["cpu_s_per_gb"] >= 0, bulk
    assert bulk["native_over_iperf3"] > 0
    assert sorted(rep["median"]["sglang"]) == ["16384", "4096"]
    for size in rep["median"]["sglang"].values():
        for side in ("native", "python"):
            assert size[side]["pages_per_s"] > 0 and size[side]["cpu_us_per_page"] > 0, size
    assert "native / iperf3" in p.stdout and "| 16 KiB | KVPoolStore (redis-py) |" in p.stdout
    # The proof that the bytes are checked.
    p = subprocess.run(tiny + ["--corrupt"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "wrong byte" in p.stderr, (p.stdout, p.stderr)
    for bad in (["--rounds", "0"], ["--page-sizes", "4x"], ["--server", "/nonexistent"]):
        p = subprocess.run([sys.executable, script, *bad], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, (bad, p.stdout, p.stderr)
