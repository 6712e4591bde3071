#!/usr/bin/python3
"""The native client (kvpool.DistributedStore) against the loopback wire,
the pure-Python client and redis-server, side by side in one run (issue 15).

Two measurements, each repeated `--rounds` times (default 3); the table
holds medians over the rounds:

1. Bulk read: 64 pages of 1 MiB (`--get-pages`, `--get-page-size`) read
   again and again for `--seconds`, by
     * iperf3 on loopback (one TCP stream: the wire's speed on this machine),
     * `DistributedStore.batch_get_into` from a pool of three kvpool-server
       nodes, straight into a preallocated numpy buffer (each key from the
       node that owns it, the nodes in parallel),
     * redis-py `KVPoolStore.get_batch` through one node of the same pool,
     * redis-py MGET of the same pages from redis-server.
   GB/s (1e9 bytes of values per second), CPU seconds per GB of this
   process (all its threads: getrusage around the timed calls) and of the
   servers (/proc/PID/stat), and native / iperf3 (issue 15's target: >= 0.8;
   the ratio is taken within each round, then its median).
2. The SGLang HiCache serving pattern against the pool of three, at page
   sizes 4 KiB, 64 KiB and 1 MiB (`--page-sizes`): each request has a
   prefix of `--prefix-pages` pages (128, SGLang's batch), of which the
   leading `--hit-ratio` exist; it asks `batch_is_exist` over the prefix,
   reads the hits into the host pool (a numpy array standing in for the
   engine's pinned host KV pool) and writes the misses from it:
     * native: batch_is_exist, batch_get_into straight into the host pool,
       batch_put_from out of it;
     * pure Python (KVPoolStore, through one node): batch_is_exist,
       get_batch then a copy into the host pool, put_batch of bytes made
       from the host pool.
   Pages/s (prefix pages handled per second of request time), GB/s of
   values moved, client CPU microseconds per page. Filling the host pool
   with the misses' values (the engine's compute) is not timed; the pages
   written are removed after each phase (one client, one page size, one
   round), untimed (see SETTLE_S).

Every value is derived from its key (a window of a random block at an
offset hashed from the key), so a value from another key or a shifted one
is caught. Every call's result codes are checked; the bytes are compared
in every round outside the timed calls (buffers are cleared before the
call checked). Any error or wrong byte makes the run exit 1; bad options 2.

  bench/llm_native.py                      # 3 rounds, ~2 min on 2 cores
  bench/llm_native.py --rounds 5 --json /tmp/llm_native.json

It starts every server itself on free loopback ports (the pool's nodes
with `--pool-nodes` / `--pool-secret` as bench/side_by_side.sh does,
redis-server with `--save "" --appendonly no`) and stops them on exit. It
needs iperf3, /usr/bin/redis-server, numpy, redis-py and the native module
(`ninja -C build-release kvpool_native`, or `build`; KVPOOL_NATIVE_DIR names
another <build>/clients/python).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REDIS_SERVER = "/usr/bin/redis-server"
KIB = 1024
MIB = 1024 * KIB


def _native_dir() -> Optional[str]:
    """<build>/clients/python holding kvpool/_native*.so: KVPOOL_NATIVE_DIR,
    else build-release's, else build's."""
    if os.environ.get("KVPOOL_NATIVE_DIR"):
        return os.environ["KVPOOL_NATIVE_DIR"]
    for build in ("build-release", "build"):
        d = os.path.join(ROOT, build, "clients", "python")
        if glob.glob(os.path.join(d, "kvpool", "_native*.so")):
            return d
    return None


# The native module must be on sys.path before kvpool is first imported
# (kvpool/__init__.py extends its package path over sys.path).
for _p in (_native_dir(), os.path.join(ROOT, "clients", "python")):
    if _p and _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
import redis  # noqa: E402

from llm_workload import Servers, free_port  # noqa: E402
from kvpool import KVPoolStore  # noqa: E402


# Seconds to wait after removing a phase's pages. kvpool-server (as of
# 2026-12-07) gives freed pages back to the kernel once per tick
# (PageHeap::Purge, from Store::Tick), taking the dirty free spans out of
# the heap while it madvises them; when that is the one big free span, a
# write meanwhile finds "the segment full" and evicts a key although
# gigabytes are free (seen here: a few keys lost per minute of put/remove
# churn on a pool of three; none with page release off). This script keeps
# writes away from that window: no page is removed while requests run, and
# the next phase starts after the release is done. (Fixed in the server by
# d93df18; kept so numbers stay comparable with the ones in RESULTS.md.)
SETTLE_S = 1.0


class BenchError(Exception):
    """A failed call, a wrong result code or a wrong byte: the run fails."""


# ------------------------------------------------------------------ values

class Values:
    """A page's value is a window of one random block, at an offset hashed
    from its key: distinct per key, any shift shows, no per-page cost."""

    def __init__(self, max_size: int, seed: int = 15) -> None:
        self.block = np.random.default_rng(seed).integers(
            0, 256, size=max(4 * MIB, 4 * max_size), dtype=np.uint8)
        self.raw = self.block.tobytes()

    def offset(self, key: str, size: int) -> int:
        h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
        return h % (len(self.block) - size + 1)

    def array(self, key: str, size: int) -> np.ndarray:
        o = self.offset(key, size)
        return self.block[o:o + size]

    def bytes(self, key: str, size: int) -> bytes:
        o = self.offset(key, size)
        return self.raw[o:o + size]

    def check_array(self, what: str, key: str, got: np.ndarray) -> None:
        want = self.array(key, len(got))
        if not np.array_equal(got, want):
            bad = int(np.flatnonzero(got != want)[0])
            raise BenchError(f"{what}: wrong byte in {key} at offset {bad}: "
                             f"got {int(got[bad])}, want {int(want[bad])}")

    def check_bytes(self, what: str, key: str, got: bytes, size: int) -> None:
        if len(got) != size:
            raise BenchError(f"{what}: {key} read {len(got)} bytes, want {size}")
        self.check_array(what, key, np.frombuffer(got, dtype=np.uint8))


# ------------------------------------------------------------------ timing

def client_cpu() -> float:
    """CPU seconds of this process, every thread (the native client's too)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


_TICK = os.sysconf("SC_CLK_TCK")


def procs_cpu(pids: Sequence[int]) -> float:
    """CPU seconds of other processes (the servers), from /proc/PID/stat."""
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return total


class Meter:
    """Wall, client CPU and server CPU accumulated over timed spans."""

    def __init__(self, server_pids: Sequence[int] = ()) -> None:
        self.pids = list(server_pids)
        self.wall = self.cpu = self.server = 0.0

    def __enter__(self) -> "Meter":
        self._s = procs_cpu(self.pids) if self.pids else 0.0
        self._c = client_cpu()
        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        t = time.perf_counter()
        c = client_cpu()
        self.wall += t - self._t
        self.cpu += c - self._c
        if self.pids:
            self.server += procs_cpu(self.pids) - self._s


def repeat(call: Callable[[], None], seconds: float, meter: Meter, min_calls: int = 3) -> int:
    """Runs call() for `seconds` (at least min_calls times) inside meter."""
    n = 0
    with meter:
        t0 = time.perf_counter()
        while n < min_calls or time.perf_counter() - t0 < seconds:
            call()
            n += 1
    return n


def iperf3(seconds: int) -> dict:
    """One loopback TCP stream (iperf3 -c 127.0.0.1 -J against iperf3 -s):
    GB/s received, and the CPU per GB of the receiving process (the client
    side's counterpart) and of the sending one (the server side's)."""
    port = free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-p", str(port), "-B", "127.0.0.1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or srv.poll() is not None:
                    raise BenchError("iperf3 -s did not start")
                time.sleep(0.05)
        p = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds),
                            "-J"], capture_output=True, text=True, timeout=seconds + 30)
        try:
            end = json.loads(p.stdout)["end"]
            rx, cpu = end["sum_received"], end["cpu_utilization_percent"]
        except (ValueError, KeyError):
            raise BenchError(f"iperf3 -c failed: {p.stdout[-500:]} {p.stderr[-500:]}") from None
    finally:
        srv.kill()
        srv.wait()
    gb = rx["bytes"] / 1e9
    return {"gb_per_s": gb / rx["seconds"],
            "cpu_s_per_gb": cpu["remote_total"] / 100 * rx["seconds"] / gb,
            "server_cpu_s_per_gb": cpu["host_total"] / 100 * rx["seconds"] / gb}


# ----------------------------------------------------------------- servers

def start_pool(servers: Servers, binary: str, nodes: int, maxmemory: str) -> Tuple[List[int], List[int]]:
    """`nodes` kvpool-server processes as one pool (the same --pool-nodes, in
    the same order, and --pool-secret on each); waits until every node sees
    all of them up. Returns (ports, pids)."""
    ports: List[int] = []
    while len(ports) < nodes:
        p = free_port()  # p and p + 10000 (its node port) are free
        if all(abs(p - q) not in (0, 10000) for q in ports):
            ports.append(p)
    spec = " ".join(f"127.0.0.1:{p}" for p in ports)
    secret = f"llm-native-{os.getpid()}"
    pids = []
    for p in ports:
        servers.start([binary, "--port", str(p), "--bind", "127.0.0.1", "--maxmemory", maxmemory,
                       "--loglevel", "warning", "--metrics-port", "0", "--pool-nodes", spec,
                       "--pool-secret", secret], p)
        pids.append(servers.procs[-1].pid)
    deadline = time.time() + 20
    r = redis.Redis(host="127.0.0.1", port=ports[0])
    while True:
        info = r.info("pool")
        if info.get("pool_nodes_up") == nodes:
            break
        if time.time() > deadline:
            raise BenchError(f"the pool did not come up in 20 s (INFO pool: {info}; logs in "
                             f"{servers.dir})")
        time.sleep(0.1)
    r.close()
    return ports, pids


def start_redis(servers: Servers, maxmemory: str) -> Tuple[int, int]:
    p = free_port()
    servers.start([REDIS_SERVER, "--port", str(p), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--maxmemory", maxmemory], p)
    return p, servers.procs[-1].pid


def native_store(port: int):
    from kvpool import DistributedStore
    s = DistributedStore()
    rc = s.setup("", "", master_server_addr=f"127.0.0.1:{port}")
    if rc != 0:
        raise BenchError(f"DistributedStore.setup: {rc}")
    return s


# -------------------------------------------------------- 1. bulk read

def check_codes(what: str, codes: Sequence[int], want: int) -> None:
    for i, c in enumerate(codes):
        if c != want:
            raise BenchError(f"{what}: key {i} answered {c}, want {want}")


class BulkRead:
    """64 x 1 MiB into a preallocated buffer: native, KVPoolStore, redis."""

    def __init__(self, args, values: Values, pool_port: int, pool_pids: List[int],
                 redis_port: int, redis_pid: int) -> None:
        self.args, self.values = args, values
        self.n, self.size = args.get_pages, args.get_page_size
        self.keys = [f"bulk:{self.size}:{i}" for i in range(self.n)]
        self.pool_pids, self.redis_pid = pool_pids, redis_pid
        self.buf = np.zeros(self.n * self.size, dtype=np.uint8)
        self.buf.fill(1)  # touch every page before anything is timed
        self.ptrs = [self.buf.ctypes.data + i * self.size for i in range(self.n)]
        self.sizes = [self.size] * self.n
        self.native = native_store(pool_port)
        self.kv = KVPoolStore(host="127.0.0.1", port=pool_port, socket_timeout=60)
        self.redis = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=60)
        # Load: the pool through the native client, redis-server by MSET.
        src = np.concatenate([values.array(k, self.size) for k in self.keys])
        check_codes("load batch_put_from", self.native.batch_put_from(
            self.keys, [src.ctypes.data + i * self.size for i in range(self.n)], self.sizes), 0)
        self.redis.mset({k: values.bytes(k, self.size) for k in self.keys})
        if args.corrupt:  # the tests' proof that a wrong byte fails the run
            v = bytearray(values.bytes(self.keys[-1], self.size))
            v[self.size // 2] ^= 0x5A
            redis.Redis(host="127.0.0.1", port=pool_port).set(self.keys[-1], bytes(v))

    # One call of each reader, result codes checked.
    def native_call(self) -> None:
        r = self.native.batch_get_into(self.keys, self.ptrs, self.sizes)
        if r.count(self.size) != self.n:
            check_codes("batch_get_into", r, self.size)

    def kv_call(self) -> List[bytes]:
        got = self.kv.get_batch(self.keys)
        if len(got) != self.n or any(len(v) != self.size for v in got):
            raise BenchError(f"KVPoolStore.get_batch: sizes {[len(v) for v in got][:8]}...")
        return got

    def redis_call(self) -> List[bytes]:
        got = self.redis.mget(self.keys)
        if len(got) != self.n or any(v is None or len(v) != self.size for v in got):
            raise BenchError("redis-server MGET: a value is missing or has the wrong size")
        return got

    def verify(self) -> None:
        self.buf.fill(0)
        self.native_call()
        for i, k in enumerate(self.keys):
            self.values.check_array("batch_get_into", k,
                                    self.buf[i * self.size:(i + 1) * self.size])
        for k, v in zip(self.keys, self.kv_call()):
            self.values.check_bytes("KVPoolStore.get_batch", k, v, self.size)
        for k, v in zip(self.keys, self.redis_call()):
            self.values.check_bytes("redis-server MGET", k, v, self.size)

    def round(self) -> Dict[str, dict]:
        a = self.args
        self.verify()
        out: Dict[str, dict] = {}
        out["iperf3"] = iperf3(a.iperf3_seconds)
        for name, call, pids in (("native", self.native_call, self.pool_pids),
                                 ("kvpool_py", self.kv_call, self.pool_pids),
                                 ("redis_mget", self.redis_call, [self.redis_pid])):
            call()  # connections open, buffers grown
            m = Meter(pids)
            calls = repeat(call, a.seconds, m)
            gb = calls * self.n * self.size / 1e9
            out[name] = {"gb_per_s": gb / m.wall, "cpu_s_per_gb": m.cpu / gb,
                         "server_cpu_s_per_gb": m.server / gb, "calls": calls}
        self.verify()  # the buffer is cleared first: these bytes are new
        out["native_over_iperf3"] = out["native"]["gb_per_s"] / out["iperf3"]["gb_per_s"]
        return out

    def close(self) -> None:
        check_codes("remove", self.native.batch_remove(self.keys), 0)
        self.redis.delete(*self.keys)
        self.native.close()
        self.kv.close()
        self.redis.close()


# ------------------------------------------------------- 2. SGLang pattern

class SGLangPattern:
    """exists over a prefix, hits into the host pool, misses from it."""

    def __init__(self, args, values: Values, pool_port: int, page_size: int) -> None:
        self.args, self.values, self.ps = args, values, page_size
        self.P = args.prefix_pages
        self.hits = int(round(self.P * args.hit_ratio))
        self.host = np.zeros((self.P, page_size), dtype=np.uint8)
        self.host.fill(1)  # touched: the engine's host pool is resident
        self.scratch = np.zeros((self.P, page_size), dtype=np.uint8)
        self.native = native_store(pool_port)
        self.kv = KVPoolStore(host="127.0.0.1", port=pool_port, socket_timeout=60)
        self.warm = [[f"sgl{page_size}-p{p}-{i}_0_k" for i in range(self.hits)]
                     for p in range(args.prefixes)]
        for keys in self.warm:
            src = np.stack([values.array(k, page_size) for k in keys]) if keys else self.scratch
            check_codes("warm batch_put_from", self.native.batch_put_from(
                keys, [src.ctypes.data + i * page_size for i in range(len(keys))],
                [page_size] * len(keys)), 0)
        self.requests = 0
        # New pages a phase may write before it stops (they stay until its
        # end): a third of the pool's memory, spread over three nodes.
        self.budget = parse_size(args.maxmemory) - len(self.warm) * self.hits * page_size

    def _keys(self, side: str, rnd: int) -> List[str]:
        n = self.requests
        self.requests += 1
        new = [f"sgl{self.ps}-r{rnd}-{side}-{n}-{i}_0_k" for i in range(self.hits, self.P)]
        return self.warm[n % len(self.warm)] + new

    def _leading_hits(self, what: str, exist: Sequence[int]) -> int:
        if list(exist) != [1] * self.hits + [0] * (self.P - self.hits):
            raise BenchError(f"{what}: batch_is_exist answered {list(exist)}")
        return self.hits

    # The timed part of one request, as each client does it.
    def native_request(self, keys: List[str]) -> None:
        s, ps = self.native, self.ps
        nh = self._leading_hits("native", s.batch_is_exist(keys))
        base = self.host.ctypes.data
        ptrs = [base + i * ps for i in range(len(keys))]
        sizes = [ps] * len(keys)
        r = s.batch_get_into(keys[:nh], ptrs[:nh], sizes[:nh])
        if r.count(ps) != nh:
            check_codes("native batch_get_into", r, ps)
        r = s.batch_put_from(keys[nh:], ptrs[nh:], sizes[nh:])
        if r.count(0) != len(r):
            check_codes("native batch_put_from", r, 0)

    def python_request(self, keys: List[str]) -> None:
        kv, ps, host = self.kv, self.ps, self.host
        nh = self._leading_hits("KVPoolStore", kv.batch_is_exist(keys))
        for i, v in enumerate(kv.get_batch(keys[:nh])):
            if len(v) != ps:
                raise BenchError(f"KVPoolStore.get_batch: {keys[i]} read {len(v)} bytes")
            host[i] = np.frombuffer(v, dtype=np.uint8)
        rc = kv.put_batch(keys[nh:], [host[i].tobytes() for i in range(nh, len(keys))])
        if rc != 0:
            raise BenchError(f"KVPoolStore.put_batch: {rc}")

    def run(self, side: str, rnd: int, verify: bool) -> dict:
        request = self.native_request if side == "native" else self.python_request
        meter = Meter()
        pages = 0
        written: List[str] = []
        while pages < 2 * self.P or (meter.wall < self.args.seconds and
                                     len(written) * self.ps < self.budget):
            keys = self._keys(side, rnd)
            # The engine computed the misses' KV into the host pool: not timed.
            for i in range(self.hits, self.P):
                self.host[i] = self.values.array(keys[i], self.ps)
            if verify:
                self.host[:self.hits] = 0
            with meter:
                request(keys)
            pages += self.P
            written += keys[self.hits:]
            if verify:
                self._verify(side, keys)
                verify = False  # one request of each side per round is enough
        # The pages written are removed after the phase, not after each
        # request, then the nodes get time to give the freed pages back
        # (see SETTLE_S): a write racing that release can evict a key.
        for i in range(0, len(written), 1024):
            check_codes("remove", self.native.batch_remove(written[i:i + 1024]), 0)
        time.sleep(SETTLE_S)
        moved = pages * self.ps  # every page of the prefix is read or written once
        return {"pages_per_s": pages / meter.wall, "gb_per_s": moved / meter.wall / 1e9,
                "cpu_us_per_page": meter.cpu / pages * 1e6, "pages": pages}

    def _verify(self, side: str, keys: List[str]) -> None:
        for i in range(self.hits):
            self.values.check_array(f"{side} hit into the host pool", keys[i], self.host[i])
        miss = keys[self.hits:]
        self.scratch[:len(miss)] = 0
        r = self.native.batch_get_into(
            miss, [self.scratch.ctypes.data + i * self.ps for i in range(len(miss))],
            [self.ps] * len(miss))
        check_codes(f"{side} misses read back", r, self.ps)
        for i, k in enumerate(miss):
            self.values.check_array(f"{side} miss written", k, self.scratch[i])

    def close(self) -> None:
        for keys in self.warm:
            check_codes("remove", self.native.batch_remove(keys), 0)
        self.native.close()
        self.kv.close()


# -------------------------------------------------------------------- main

def parse_size(text: str) -> int:
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = {"k": KIB, "m": MIB, "g": 1024 * MIB}.get(t[-1:], 1)
    n = int(t[:-1] if t[-1:] in ("k", "m", "g") else t)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return n * mult


def default_server() -> str:
    for build in ("build-release", "build"):
        path = os.path.join(ROOT, build, "server", "kvpool-server")
        if os.access(path, os.X_OK):
            return path
    return os.path.join(ROOT, "build", "server", "kvpool-server")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="kvpool's native client vs iperf3, the pure-Python client and redis-server "
                    "(bulk read, SGLang pattern); medians of rounds.")
    ap.add_argument("--server", default=default_server(),
                    help="kvpool-server binary (default: build-release's if built, else build's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="FILE", help="write every round and the medians there")
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="timed seconds per reader and round (SGLang: per side, size, round)")
    ap.add_argument("--iperf3-seconds", type=int, default=3)
    ap.add_argument("--get-pages", type=int, default=64)
    ap.add_argument("--get-page-size", type=parse_size, default=MIB)
    ap.add_argument("--page-sizes", default="4k,64k,1m", help="SGLang pattern page sizes")
    ap.add_argument("--prefix-pages", type=int, default=128, help="pages per request")
    ap.add_argument("--hit-ratio", type=float, default=0.5, help="share of a prefix that exists")
    ap.add_argument("--prefixes", type=int, default=4, help="warm prefixes requests cycle over")
    ap.add_argument("--maxmemory", default="2gb", help="of each server")
    ap.add_argument("--corrupt", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    try:
        a.page_sizes = [parse_size(s) for s in a.page_sizes.split(",") if s.strip()]
    except (argparse.ArgumentTypeError, ValueError):
        ap.error(f"--page-sizes: bad list {a.page_sizes!r}")
    try:
        parse_size(a.maxmemory)
    except (argparse.ArgumentTypeError, ValueError):
        ap.error(f"--maxmemory: bad size {a.maxmemory!r}")
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    if a.seconds <= 0 or a.iperf3_seconds < 1:
        ap.error("--seconds must be > 0 and --iperf3-seconds >= 1")
    if a.get_pages < 1 or a.prefix_pages < 2 or a.prefixes < 1:
        ap.error("--get-pages >= 1, --prefix-pages >= 2 and --prefixes >= 1 please")
    if not 0 < a.hit_ratio < 1:
        ap.error("--hit-ratio must be within (0, 1)")
    if not os.access(a.server, os.X_OK):
        ap.error(f"--server: {a.server} is not an executable")
    for tool, path in (("iperf3", shutil.which("iperf3")), ("redis-server", REDIS_SERVER)):
        if not path or not os.access(path, os.X_OK):
            ap.error(f"{tool} is not installed (scripts/install-deps.sh --test)")
    return a


def median(xs: List[Optional[float]]) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(rounds: List[dict]) -> dict:
    bulk = {}
    for reader in ("iperf3", "native", "kvpool_py", "redis_mget"):
        bulk[reader] = {f: median([r["bulk"][reader][f] for r in rounds])
                        for f in ("gb_per_s", "cpu_s_per_gb", "server_cpu_s_per_gb")}
    bulk["native_over_iperf3"] = median([r["bulk"]["native_over_iperf3"] for r in rounds])
    sgl = {}
    for size in rounds[0]["sglang"]:
        sgl[size] = {side: {f: median([r["sglang"][size][side][f] for r in rounds])
                            for f in ("pages_per_s", "gb_per_s", "cpu_us_per_page")}
                     for side in ("native", "python")}
        for f in ("speedup", "cpu_ratio"):
            sgl[size][f] = median([r["sglang"][size][f] for r in rounds])
    return {"bulk": bulk, "sglang": sgl}


def size_name(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n // KIB} KiB" if n % KIB == 0 else f"{n} B"


def fmt(x: Optional[float], spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def print_table(rep: dict) -> None:
    c, m = rep["config"], rep["median"]
    b = m["bulk"]
    print(f"\n# kvpool native client, {rep['date']}, {rep['cores']} cores, load average "
          f"{rep['loadavg']}; medians of {c['rounds']} rounds")
    print(f"server {c['server']}; native module {rep['native_module']}\n")
    print(f"## {c['get_pages']} pages of {size_name(c['get_page_size'])} read into a "
          "preallocated buffer")
    print("| reader | GB/s | x iperf3 | client CPU s/GB | server CPU s/GB |")
    print("|---|---|---|---|---|")
    names = {"iperf3": "iperf3, loopback, one stream",
             "native": "native batch_get_into, pool of 3 (to owners)",
             "kvpool_py": "redis-py KVPoolStore.get_batch, pool of 3 via one node",
             "redis_mget": "redis-py MGET, redis-server"}
    ip = b["iperf3"]["gb_per_s"]
    for reader, label in names.items():
        r = b[reader]
        print(f"| {label} | {fmt(r['gb_per_s'])} | {fmt(r['gb_per_s'] / ip)} | "
              f"{fmt(r['cpu_s_per_gb'], '.3f')} | {fmt(r['server_cpu_s_per_gb'], '.3f')} |")
    print("(iperf3's CPU columns: its receiving and its sending process.)")
    ratio = b["native_over_iperf3"]
    print(f"\nnative / iperf3 (median of the rounds' ratios): {ratio:.2f} "
          f"(target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})\n")
    hits = int(round(c["prefix_pages"] * c["hit_ratio"]))
    print(f"## SGLang pattern, pool of 3: {c['prefix_pages']}-page prefix, {hits} hits read "
          f"into the host pool, {c['prefix_pages'] - hits} misses written from it")
    print("| page | client | pages/s | GB/s | client CPU us/page | native / python pages/s | "
          "python / native CPU |")
    print("|---|---|---|---|---|---|---|")
    for size, s in m["sglang"].items():
        for side, label in (("native", "native DistributedStore"),
                            ("python", "KVPoolStore (redis-py)")):
            r = s[side]
            tail = (f"{fmt(s['speedup'])} | {fmt(s['cpu_ratio'])}" if side == "native"
                    else " | ")
            print(f"| {size_name(int(size))} | {label} | {r['pages_per_s']:.0f} | "
                  f"{fmt(r['gb_per_s'])} | {fmt(r['cpu_us_per_page'], '.1f')} | {tail} |")
    print("(The last two columns are medians of each round's ratio; both sides of a round ran "
          "one after the other.)")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        from kvpool import DistributedStore  # noqa: F401
        import kvpool._native as native_mod
    except ImportError as e:
        print(f"llm_native.py: {e}", file=sys.stderr)
        return 2
    report: dict = {
        "config": {**{k: v for k, v in vars(args).items() if k not in ("json", "corrupt")}},
        "cores": os.cpu_count(), "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "native_module": native_mod.__file__,
        "rounds": []}
    servers = Servers()
    values = Values(max([args.get_page_size] + args.page_sizes))
    try:
        pool_ports, pool_pids = start_pool(servers, args.server, 3, args.maxmemory)
        redis_port, redis_pid = start_redis(servers, args.maxmemory)
        bulk = BulkRead(args, values, pool_ports[0], pool_pids, redis_port, redis_pid)
        if bulk.native.native.nodes() != 3:
            raise BenchError(f"the native client knows {bulk.native.native.nodes()} nodes, not 3")
        sglang = {}
        for ps in args.page_sizes:
            sglang[ps] = SGLangPattern(args, values, pool_ports[0], ps)
        for rnd in range(1, args.rounds + 1):
            row: dict = {"bulk": bulk.round(), "sglang": {}}
            b = row["bulk"]
            print(f"round {rnd} bulk: iperf3 {b['iperf3']['gb_per_s']:.2f} GB/s, native "
                  f"{b['native']['gb_per_s']:.2f}, KVPoolStore {b['kvpool_py']['gb_per_s']:.2f}, "
                  f"redis MGET {b['redis_mget']['gb_per_s']:.2f}; native/iperf3 "
                  f"{b['native_over_iperf3']:.2f}", flush=True)
            for ps, pat in sglang.items():
                # Alternate which side goes first, so drift hits both.
                order = ("native", "python") if rnd % 2 else ("python", "native")
                res = {side: pat.run(side, rnd, verify=True) for side in order}
                res["speedup"] = res["native"]["pages_per_s"] / res["python"]["pages_per_s"]
                res["cpu_ratio"] = res["python"]["cpu_us_per_page"] / res["native"]["cpu_us_per_page"]
                row["sglang"][str(ps)] = res
                print(f"round {rnd} sglang {size_name(ps)}: native "
                      f"{res['native']['pages_per_s']:.0f} pages/s "
                      f"{res['native']['cpu_us_per_page']:.1f} us/page, KVPoolStore "
                      f"{res['python']['pages_per_s']:.0f} pages/s "
                      f"{res['python']['cpu_us_per_page']:.1f} us/page", flush=True)
            report["rounds"].append(row)
        for part in [bulk, *sglang.values()]:
            part.close()
    except (BenchError, redis.RedisError, OSError, RuntimeError, ValueError) as e:
        print(f"llm_native.py: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        servers.stop()
    report["median"] = summarize(report["rounds"])
    print_table(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
