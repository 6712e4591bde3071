#!/usr/bin/env python3
"""The LLM KV-cache serving pattern, against kvpool and redis-server side by
side (issue 8).

An engine keeps a prefix cache of pages (KV blocks of one model) outside the
GPU. For each request it asks which pages of the prompt's prefix exist
(`batch_is_exist`), fetches the hits (`get_batch`) and writes the misses
(`put_batch`), all in batches of hundreds of pages of 64 KiB - 4 MiB. This
script replays that pattern:

  * `--prefixes` warm prefixes, each of `--pages` pages of `--page-size`
    bytes; a fraction `--hit-ratio` of every request's pages exists (the
    leading part of its prefix), the rest are new pages it writes;
  * `--concurrency` worker processes issue `--requests` requests each;
  * it reports pages/s, GB/s moved and p50/p99 per call, and with
    `--compare-redis` runs the same pattern against redis-server through an
    adapter that uses what a redis client would: EXISTS per page (pipelined,
    one round trip), MGET, MSET.

Two micro-benchmarks give the issue's speed targets: `get_batch` of 64 pages
of 1 MiB through one node vs redis-server's MGET of the same pages (and the
loopback TCP bandwidth iperf3 measures in the same run), and
`batch_is_exist` of 512 keys vs 512 pipelined EXISTS on redis-server.

`--verify` checks every value read back equals what was written (values are
derived from their key, so any process can check).

  bench/llm_workload.py --server build-release/server/kvpool-server --compare-redis
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))

import redis  # noqa: E402

from kvpool import KVPoolStore  # noqa: E402

KIB = 1024
MIB = 1024 * 1024


# ------------------------------------------------------------------ values

def page_value(key: bytes, size: int) -> bytes:
    """Deterministic bytes for a key: any process can verify them."""
    block = hashlib.blake2b(key, digest_size=64).digest()
    reps = size // len(block) + 1
    return (block * reps)[:size]


# ------------------------------------------------------------------ stores

class RedisStore:
    """The same three calls, the way a plain redis client does them."""

    def __init__(self, host: str, port: int) -> None:
        self.r = redis.Redis(host=host, port=port, socket_timeout=60)

    def batch_is_exist(self, keys: Sequence[bytes]) -> List[int]:
        pipe = self.r.pipeline(transaction=False)
        for k in keys:
            pipe.exists(k)
        return [int(x) for x in pipe.execute()]

    def get_batch(self, keys: Sequence[bytes]) -> List[bytes]:
        if not keys:
            return []
        return [v if v is not None else b"" for v in self.r.mget(keys)]

    def put_batch(self, keys: Sequence[bytes], values: Sequence[bytes]) -> int:
        if not keys:
            return 0
        self.r.mset(dict(zip(keys, values)))
        return 0

    def remove_batch(self, keys: Sequence[bytes]) -> None:
        if keys:
            self.r.unlink(*keys)

    def close(self) -> None:
        self.r.close()


class KVPool:
    def __init__(self, host: str, port: int) -> None:
        self.s = KVPoolStore(host=host, port=port, batch_size=512, socket_timeout=60)

    def batch_is_exist(self, keys):
        return self.s.batch_is_exist(keys)

    def get_batch(self, keys):
        return self.s.get_batch(keys)

    def put_batch(self, keys, values):
        return self.s.put_batch(keys, values)

    def remove_batch(self, keys):
        if keys:
            self.s._r.unlink(*keys)

    def close(self):
        self.s.close()


def open_store(kind: str, host: str, port: int):
    return KVPool(host, port) if kind == "kvpool" else RedisStore(host, port)


# ---------------------------------------------------------------- workload

def prefix_keys(prefix: int, pages: int) -> List[bytes]:
    return [b"model:llama:prefix:%d:page:%d" % (prefix, i) for i in range(pages)]


def warm(kind: str, host: str, port: int, args) -> None:
    store = open_store(kind, host, port)
    hits = int(round(args.pages * args.hit_ratio))
    for p in range(args.prefixes):
        keys = prefix_keys(p, args.pages)[:hits]
        for i in range(0, len(keys), 64):
            part = keys[i:i + 64]
            rc = store.put_batch(part, [page_value(k, args.page_size) for k in part])
            if rc != 0:
                raise RuntimeError(f"warm-up put_batch failed: {rc}")
    store.close()


def worker(kind: str, host: str, port: int, args, wid: int, out: "mp.Queue") -> None:
    store = open_store(kind, host, port)
    hits_per_req = int(round(args.pages * args.hit_ratio))
    lat: Dict[str, List[float]] = {"exist": [], "get": [], "put": []}
    moved = 0
    pages_done = 0
    errors = 0
    for n in range(args.requests):
        p = (wid * 7919 + n) % args.prefixes
        warm_keys = prefix_keys(p, args.pages)[:hits_per_req]
        # The rest of this prompt's pages are new: unique to the request.
        new_keys = [b"model:llama:req:%d:%d:page:%d" % (wid, n, i)
                    for i in range(hits_per_req, args.pages)]
        keys = warm_keys + new_keys

        t0 = time.perf_counter()
        exist = store.batch_is_exist(keys)
        t1 = time.perf_counter()
        hit = [k for k, e in zip(keys, exist) if e == 1]
        miss = [k for k, e in zip(keys, exist) if e != 1]
        got = store.get_batch(hit)
        t2 = time.perf_counter()
        values = [page_value(k, args.page_size) for k in miss]
        t3 = time.perf_counter()
        rc = store.put_batch(miss, values)
        t4 = time.perf_counter()

        lat["exist"].append(t1 - t0)
        lat["get"].append(t2 - t1)
        lat["put"].append(t4 - t3)
        moved += sum(len(v) for v in got) + sum(len(v) for v in values)
        pages_done += len(keys)
        if rc != 0:
            errors += 1
        if args.verify:
            if exist != [1] * len(warm_keys) + [0] * len(new_keys):
                errors += 1
            for k, v in zip(hit, got):
                if v != page_value(k, args.page_size):
                    errors += 1
            back = store.get_batch(miss)
            for k, v in zip(miss, back):
                if v != page_value(k, args.page_size):
                    errors += 1
        # Keep memory flat: this request's new pages are not reused.
        store.remove_batch(miss)
    store.close()
    out.put({"lat": lat, "moved": moved, "pages": pages_done, "errors": errors})


def pct(xs: List[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_workload(kind: str, host: str, port: int, args) -> dict:
    warm(kind, host, port, args)
    q: "mp.Queue" = mp.Queue()
    procs = [mp.Process(target=worker, args=(kind, host, port, args, w, q))
             for w in range(args.concurrency)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [q.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    lat = {k: sum((r["lat"][k] for r in results), []) for k in ("exist", "get", "put")}
    moved = sum(r["moved"] for r in results)
    pages = sum(r["pages"] for r in results)
    return {
        "store": kind,
        "pages_per_s": pages / wall,
        "gb_per_s": moved / wall / 1e9,
        "errors": sum(r["errors"] for r in results),
        **{f"{k}_p50_ms": pct(v, 0.50) * 1e3 for k, v in lat.items()},
        **{f"{k}_p99_ms": pct(v, 0.99) * 1e3 for k, v in lat.items()},
    }


# ----------------------------------------------------- micro-benchmarks

def micro_get(kind: str, host: str, port: int, pages: int, size: int, seconds: float) -> dict:
    store = open_store(kind, host, port)
    keys = [b"micro:get:%d" % i for i in range(pages)]
    store.put_batch(keys, [page_value(k, size) for k in keys])
    n, t0 = 0, time.perf_counter()
    lat = []
    while time.perf_counter() - t0 < seconds:
        a = time.perf_counter()
        got = store.get_batch(keys)
        lat.append(time.perf_counter() - a)
        assert len(got) == pages and all(len(v) == size for v in got)
        n += 1
    wall = time.perf_counter() - t0
    store.remove_batch(keys)
    store.close()
    return {"calls_per_s": n / wall, "gbit_per_s": n * pages * size * 8 / wall / 1e9,
            "p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3}


def micro_exist(kind: str, host: str, port: int, nkeys: int, seconds: float) -> dict:
    store = open_store(kind, host, port)
    keys = [b"micro:ex:%d" % i for i in range(nkeys)]
    store.put_batch(keys[::2], [b"v"] * len(keys[::2]))
    n, t0 = 0, time.perf_counter()
    lat = []
    while time.perf_counter() - t0 < seconds:
        a = time.perf_counter()
        r = store.batch_is_exist(keys)
        lat.append(time.perf_counter() - a)
        assert r == [1 - (i % 2) for i in range(nkeys)]
        n += 1
    wall = time.perf_counter() - t0
    store.remove_batch(keys)
    store.close()
    return {"calls_per_s": n / wall, "p50_ms": pct(lat, 0.5) * 1e3,
            "p99_ms": pct(lat, 0.99) * 1e3}


def iperf3_gbit(seconds: int = 3) -> Optional[float]:
    if not shutil.which("iperf3"):
        return None
    port = free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds),
                              "-J"], capture_output=True, text=True, timeout=seconds + 30)
        data = json.loads(out.stdout)
        return data["end"]["sum_received"]["bits_per_second"] / 1e9
    except Exception:
        return None
    finally:
        srv.kill()
        srv.wait()


# ---------------------------------------------------------------- servers

def free_port() -> int:
    import random
    for _ in range(200):
        p = random.randint(20000, 45000)
        ok = True
        for q in (p, p + 10000):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise RuntimeError("no free port")


class Servers:
    """Starts what the run needs; stops all of it on exit."""

    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []
        self.dir = tempfile.mkdtemp(prefix="llm-bench-")

    def start(self, argv: List[str], port: int) -> bool:
        """Starts argv and waits for PING on port: False if the process
        exited first (a port it needs was taken meanwhile)."""
        log = open(os.path.join(self.dir, f"{port}.log"), "w")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        deadline = time.time() + 60  # a sanitizer build starts slowly
        while time.time() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if redis.Redis(port=port).ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"server on {port} did not start: {argv}")

    def kvpool(self, binary: str, maxmemory: str, nodes: int = 1) -> int:
        for _ in range(5):
            ports = [free_port() for _ in range(nodes)]
            pool = " ".join(f"127.0.0.1:{p}" for p in ports) if nodes > 1 else ""
            started = len(self.procs)
            ok = True
            for p in ports:
                # No /metrics: its default port (9121) is one for the whole
                # machine, and the test suite runs this beside other servers.
                argv = [binary, "--port", str(p), "--bind", "127.0.0.1", "--maxmemory", maxmemory,
                        "--loglevel", "warning", "--metrics-port", "0"]
                if pool:
                    argv += ["--pool-nodes", pool, "--pool-secret", "bench"]
                if not self.start(argv, p):
                    ok = False
                    break
            if ok:
                break
            for proc in self.procs[started:]:  # another process took a port: again
                proc.kill()
                proc.wait()
            del self.procs[started:]
        else:
            raise RuntimeError(f"kvpool-server did not start (logs in {self.dir})")
        if nodes > 1:
            deadline = time.time() + 20
            while time.time() < deadline:
                text = redis.Redis(port=ports[0]).execute_command("POOL", "NODES")
                text = text.decode() if isinstance(text, bytes) else str(text)
                if text.count(" up ") == nodes:
                    break
                time.sleep(0.1)
        return ports[0]

    def redis(self, maxmemory: str) -> int:
        p = free_port()
        if not self.start(["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--maxmemory", maxmemory,
                           "--maxmemory-policy", "allkeys-lru"], p):
            raise RuntimeError(f"redis-server on {p} did not start (logs in {self.dir})")
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------- main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=os.path.join(HERE, "..", "build-release", "server",
                                                     "kvpool-server"),
                    help="kvpool-server binary to start")
    ap.add_argument("--host", help="use a running kvpool node instead of starting one")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--pool", type=int, default=1, help="start a pool of N nodes (default 1)")
    ap.add_argument("--compare-redis", action="store_true", help="run against redis-server too")
    ap.add_argument("--prefixes", type=int, default=8)
    ap.add_argument("--pages", type=int, default=64, help="pages per request")
    ap.add_argument("--page-size", type=int, default=256 * KIB)
    ap.add_argument("--hit-ratio", type=float, default=0.5)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--requests", type=int, default=20, help="per worker")
    ap.add_argument("--maxmemory", default="2gb")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--micro", action="store_true",
                    help="also the issue's micro-benchmarks (64 x 1 MiB get, 512-key exist)")
    ap.add_argument("--seconds", type=float, default=5.0, help="per micro-benchmark")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args(argv)
    if not 0 <= args.hit_ratio <= 1:
        ap.error("--hit-ratio must be within [0, 1]")
    if not 64 * KIB <= args.page_size <= 4 * MIB and not args.verify:
        ap.error("--page-size must be within 64 KiB - 4 MiB")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    servers = Servers()
    report: dict = {"config": {k: v for k, v in vars(args).items() if k != "server"},
                    "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        if args.host:
            targets = [("kvpool", args.host, args.port)]
        else:
            targets = [("kvpool", "127.0.0.1", servers.kvpool(args.server, args.maxmemory,
                                                              args.pool))]
        if args.compare_redis:
            targets.append(("redis", "127.0.0.1", servers.redis(args.maxmemory)))
        report["workload"] = [run_workload(k, h, p, args) for k, h, p in targets]
        if args.micro:
            report["get_64x1MiB"] = {k: micro_get(k, h, p, 64, MIB, args.seconds)
                                     for k, h, p in targets}
            report["exist_512"] = {k: micro_exist(k, h, p, 512, args.seconds)
                                   for k, h, p in targets}
            report["iperf3_gbit"] = iperf3_gbit()
    finally:
        servers.stop()
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 1 if any(w["errors"] for w in report["workload"]) else 0


def print_report(rep: dict) -> None:
    c = rep["config"]
    print(f"# LLM KV-cache workload ({rep['date']}, {rep['cores']} cores): {c['pages']} pages x "
          f"{c['page_size'] // KIB} KiB, hit ratio {c['hit_ratio']}, "
          f"{c['concurrency']} workers x {c['requests']} requests, pool of {c['pool']}")
    print("| store | pages/s | GB/s | exist p50/p99 ms | get p50/p99 ms | put p50/p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for w in rep["workload"]:
        print(f"| {w['store']} | {w['pages_per_s']:.0f} | {w['gb_per_s']:.2f} | "
              f"{w['exist_p50_ms']:.2f}/{w['exist_p99_ms']:.2f} | "
              f"{w['get_p50_ms']:.2f}/{w['get_p99_ms']:.2f} | "
              f"{w['put_p50_ms']:.2f}/{w['put_p99_ms']:.2f} | {w['errors']} |")
    if "get_64x1MiB" in rep:
        g = rep["get_64x1MiB"]
        e = rep["exist_512"]
        print()
        print("| micro | kvpool | redis | ratio | target |")
        print("|---|---|---|---|---|")
        kv, rd = g["kvpool"], g.get("redis")
        print(f"| get_batch 64 x 1 MiB (Gbit/s) | {kv['gbit_per_s']:.2f} | "
              f"{rd['gbit_per_s']:.2f} | {kv['gbit_per_s'] / rd['gbit_per_s']:.2f} | >= 2.0 |"
              if rd else f"| get_batch 64 x 1 MiB (Gbit/s) | {kv['gbit_per_s']:.2f} | - | - | |")
        if rep.get("iperf3_gbit"):
            print(f"| get_batch vs iperf3 loopback ({rep['iperf3_gbit']:.1f} Gbit/s) | "
                  f"{kv['gbit_per_s'] / rep['iperf3_gbit']:.2f} | | | >= 0.5 |")
        kv, rd = e["kvpool"], e.get("redis")
        if rd:
            print(f"| batch_is_exist 512 keys (calls/s; redis: 512 pipelined EXISTS) | "
                  f"{kv['calls_per_s']:.0f} | {rd['calls_per_s']:.0f} | "
                  f"{kv['calls_per_s'] / rd['calls_per_s']:.2f} | >= 3.0 |")


if __name__ == "__main__":
    sys.exit(main())
