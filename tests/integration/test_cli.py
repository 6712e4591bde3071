"""The stock Redis tools against the server: redis-cli (command mode, -n, -a,
--raw, -x, commands piped on stdin, --scan, --pipe) and redis-benchmark.

redis-cli exits 0 even when a command fails, so the output is checked too.
redis-benchmark runs only tests on strings (kvpool has no lists, sets...):
ping, set, get, incr, mset -- valid against redis as well.
"""

import re
import subprocess

import pytest

REDIS_CLI = "/usr/bin/redis-cli"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"


def cli(server, *args, stdin: bytes = None, auth: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    argv = [REDIS_CLI, "-h", server.host, "-p", str(server.port)]
    if auth and server.password is not None:
        argv += ["-a", server.password, "--no-auth-warning"]
    proc = subprocess.run(argv + [str(a) for a in args], input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout)
    return proc


def out(proc) -> bytes:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


# ---------------------------------------------------------------- redis-cli

def test_cli_command_mode(server, r):
    assert out(cli(server, "SET", "k", "hello world")) == b"OK\n"
    assert out(cli(server, "GET", "k")) == b"hello world\n"
    assert r.get("k") == b"hello world"
    assert out(cli(server, "GET", "missing")) == b"\n"
    assert out(cli(server, "INCR", "n")) == b"1\n"
    assert out(cli(server, "MGET", "k", "missing", "n")) == b"hello world\n\n1\n"
    assert out(cli(server, "EXISTS", "k", "k")) == b"2\n"
    assert out(cli(server, "PING")) == b"PONG\n"
    assert out(cli(server, "DBSIZE")) == b"2\n"


def test_cli_error_output(server, r):
    r.set("s", "abc")
    assert out(cli(server, "INCR", "s")).startswith(b"ERR value is not an integer or out of range")
    assert out(cli(server, "NOSUCHCMD", "x")).startswith(b"ERR unknown command 'NOSUCHCMD'")


def test_cli_no_raw_formatting(server, r):
    r.set("k", "v")
    assert out(cli(server, "--no-raw", "GET", "k")) == b'"v"\n'
    assert out(cli(server, "--no-raw", "GET", "missing")) == b"(nil)\n"
    assert out(cli(server, "--no-raw", "INCR", "n")) == b"(integer) 1\n"
    assert out(cli(server, "--no-raw", "MGET", "k", "missing")) == b'1) "v"\n2) (nil)\n'


def test_cli_raw_binary(server, r):
    r.set("bin", b"line1\nline2\x00\xff")
    assert out(cli(server, "--raw", "GET", "bin")) == b"line1\nline2\x00\xff\n"
    assert out(cli(server, "--no-raw", "GET", "bin")) == b'"line1\\nline2\\x00\\xff"\n'


def test_cli_select_db(server, r):
    assert out(cli(server, "-n", "3", "SET", "in3", "v3")) == b"OK\n"
    assert out(cli(server, "-n", "3", "GET", "in3")) == b"v3\n"
    assert out(cli(server, "GET", "in3")) == b"\n"
    assert r.get("in3") is None
    r.execute_command("SELECT", "3")
    assert r.get("in3") == b"v3"
    r.execute_command("SELECT", "0")
    assert out(cli(server, "-n", "15", "DBSIZE")) == b"0\n"


def test_cli_stdin_last_arg(server, r):
    data = b"a\nb\x00c\r\n"
    assert out(cli(server, "-x", "SET", "fromstdin", stdin=data)) == b"OK\n"
    assert r.get("fromstdin") == data


def test_cli_commands_piped_on_stdin(server, r):
    script = b"SET a 1\nINCR a\nGET a\nSET b \"x y\"\nGET b\nMGET a b nokey\n"
    assert out(cli(server, stdin=script)) == b"OK\n2\n2\nOK\nx y\n2\nx y\n\n"
    assert r.mget("a", "b") == [b"2", b"x y"]


def test_cli_repeat(server, r):
    assert out(cli(server, "-r", "5", "INCR", "ctr")) == b"1\n2\n3\n4\n5\n"


def test_cli_info(server, r):
    text = out(cli(server, "INFO", "server")).decode()
    assert "redis_version:" in text
    assert f"tcp_port:{server.port}" in text


def test_cli_scan(server, r):
    r.mset({f"user:{i}": "v" for i in range(300)})
    r.mset({f"item:{i}": "v" for i in range(300)})
    lines = out(cli(server, "--scan", "--pattern", "user:*")).split()
    assert sorted(set(lines)) == sorted(f"user:{i}".encode() for i in range(300))


def test_cli_pipe_mass_insert(server, r):
    n = 5000
    payload = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" %
                       (len(k), k, len(v), v)
                       for k, v in ((f"mass:{i}".encode(), f"{i}".encode()) for i in range(n)))
    proc = cli(server, "--pipe", stdin=payload)
    text = proc.stdout.decode()
    assert proc.returncode == 0, (text, proc.stderr)
    assert f"errors: 0, replies: {n}" in text, text
    assert r.dbsize() == n
    assert r.get("mass:4999") == b"4999"


def test_cli_resp3(server, r):
    r.set("k", "v")
    assert out(cli(server, "-3", "GET", "k")) == b"v\n"
    assert out(cli(server, "-3", "--no-raw", "GET", "missing")) == b"(nil)\n"


@pytest.mark.kvpool_only
def test_cli_mexists(server, r):
    r.set("a", "1")
    assert out(cli(server, "MEXISTS", "a", "b", "a")) == b"1\n0\n1\n"
    assert out(cli(server, "--no-raw", "MEXISTS", "a", "b")) == b"1) (integer) 1\n2) (integer) 0\n"


@pytest.fixture
def auth_server(server_factory):
    return server_factory("--requirepass", "clipass", name="cli-auth")


def test_cli_with_password(auth_server):
    proc = cli(auth_server, "-a", "clipass", "SET", "k", "v", auth=False)
    assert out(proc) == b"OK\n"
    assert b"Warning: Using a password" in proc.stderr
    assert out(cli(auth_server, "-a", "clipass", "--no-auth-warning", "GET", "k", auth=False)) == b"v\n"
    # Without a password: NOAUTH. With a wrong one: AUTH fails.
    assert out(cli(auth_server, "GET", "k", auth=False)).startswith(b"NOAUTH Authentication required.")
    bad = cli(auth_server, "-a", "wrong", "--no-auth-warning", "GET", "k", auth=False)
    assert b"WRONGPASS" in bad.stdout + bad.stderr
    assert b"v\n" not in bad.stdout


# ---------------------------------------------------------- redis-benchmark

def benchmark(server, *args, timeout: float = 120) -> list:
    argv = [REDIS_BENCHMARK, "-h", server.host, "-p", str(server.port)]
    if server.password is not None:
        argv += ["-a", server.password]
    proc = subprocess.run(argv + list(args), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    # -q prints progress lines ended by \r and one final line per test.
    lines = [l.strip() for l in re.split(r"[\r\n]", text) if l.strip()]
    bad = [l for l in lines if "ERR" in l or "rror" in l or "NOAUTH" in l or "WRONGPASS" in l]
    assert not bad, "redis-benchmark reported errors:\n" + "\n".join(bad[:20])
    assert proc.returncode == 0, text[-2000:]
    return [l for l in lines if "requests per second" in l and "rps=" not in l]


def _rps(results: list) -> dict:
    out = {}
    for line in results:
        name, _, rest = line.partition(": ")
        out[name] = float(rest.split()[0])
    return out


def test_benchmark_string_tests(server, r):
    # The default test list minus the tests that need lists, sets, hashes,
    # sorted sets and streams.
    results = _rps(benchmark(server, "-q", "-n", "2000", "-c", "10", "-P", "4",
                             "-t", "ping,set,get,incr,mset"))
    assert set(results) == {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"}, results
    assert all(v > 0 for v in results.values()), results


def test_benchmark_set_get_mset(server, r):
    results = _rps(benchmark(server, "-q", "-n", "2000", "-c", "10", "-P", "4", "-t", "set,get,mset"))
    assert set(results) == {"SET", "GET", "MSET (10 keys)"}, results
    assert r.get("key:__rand_int__") is not None, "redis-benchmark's SET really stored its key"


def test_benchmark_no_pipeline_random_keys(server, r):
    results = _rps(benchmark(server, "-q", "-n", "2000", "-c", "20", "-r", "1000", "-d", "100", "-t", "set,get"))
    assert set(results) == {"SET", "GET"}
    assert 0 < r.dbsize() <= 1000


def test_benchmark_with_password(auth_server):
    results = _rps(benchmark(auth_server, "-q", "-n", "1000", "-c", "5", "-P", "4", "-t", "set,get"))
    assert set(results) == {"SET", "GET"}
