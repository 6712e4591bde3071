"""A load client for replica tests: writes (MSET) and reads (MGET,
MEXISTS) its own keys through one node (another when that one fails),
recording what was acknowledged, what may or may not have landed (a write
that failed), and every stale read or miss it saw; and the check of a
pool's final contents against those records."""

from __future__ import annotations

import random
import threading
import time

import redis

from conftest import Pool


class LoadClient(threading.Thread):
    """Writes and reads its own keys through one node (others when it is
    down), recording what was acknowledged."""

    def __init__(self, p: Pool, cid: int, keys: int, stop: threading.Event, seed: int = 0,
                 prefix: str = "load"):
        super().__init__(daemon=True)
        self.seed = seed
        self.p, self.cid, self.stop = p, cid, stop
        self.keys = [f"{prefix}:{cid}:{i}" for i in range(keys)]
        self.acked = {}          # key -> last acknowledged seq (0 = deleted)
        self.unsure = {}         # key -> seqs written after it, outcome unknown
        self.seq = 0
        self.errors, self.misses, self.stale = [], [], []
        self.ops = 0
        self.node = cid % p.n
        self.conn = None

    def _client(self):
        if self.conn is None:
            alive = [i for i in range(self.p.n) if self.p.nodes[i].alive()]
            self.node = self.node if self.node in alive else random.choice(alive)
            self.conn = self.p.nodes[self.node].client(socket_timeout=5)
        return self.conn

    def _failed(self, what, e):
        self.errors.append((time.monotonic(), what, repr(e)[:200]))
        self.conn = None
        self.node = (self.node + 1) % self.p.n

    def run(self):
        rnd = random.Random(self.seed * 1000 + self.cid)
        while not self.stop.is_set():
            self.ops += 1
            batch = rnd.sample(self.keys, 20)
            if rnd.random() < 0.5:
                self.seq += 1
                vals = {k: f"{k}={self.seq}" for k in batch}
                try:
                    self._client().mset(vals)
                except (redis.RedisError, OSError) as e:
                    for k in batch:
                        self.unsure.setdefault(k, set()).add(self.seq)
                    self._failed("mset", e)
                    continue
                for k in batch:
                    self.acked[k] = self.seq
                    self.unsure.pop(k, None)
            elif rnd.random() < 0.3:
                # MEXISTS: every acknowledged key exists.
                t0 = time.monotonic()
                want = {k: self.acked.get(k) for k in batch}
                try:
                    got = self._client().execute_command("MEXISTS", *batch)
                except (redis.RedisError, OSError) as e:
                    self._failed("mexists", e)
                    continue
                self.misses += [(t0, k) for k, v in zip(batch, got) if want[k] and v != 1]
            else:
                t0 = time.monotonic()
                want = {k: self.acked.get(k) for k in batch}
                try:
                    got = self._client().mget(batch)
                except (redis.RedisError, OSError) as e:
                    self._failed("mget", e)
                    continue
                for k, v in zip(batch, got):
                    if want[k] is None:
                        continue
                    if v is None:
                        self.misses.append((t0, k))
                        continue
                    seq = int(v.decode().rsplit("=", 1)[1])
                    if seq < want[k]:
                        self.stale.append((t0, k, seq, want[k], self.node))


def verify_acked(clients, conns) -> None:
    """Every client's key, read through `conns` in turn, holds its last
    acknowledged write or one written after it whose outcome is unknown
    (absent if never acknowledged)."""
    bad = []
    for t in clients:
        for n in range(0, len(t.keys), 500):
            part = t.keys[n:n + 500]
            got = conns[(n // 500) % len(conns)].mget(part)
            for k, v in zip(part, got):
                ok = {t.acked[k]} if k in t.acked else {None}
                ok |= t.unsure.get(k, set())
                seq = None if v is None else int(v.decode().rsplit("=", 1)[1])
                if seq not in ok:
                    bad.append((k, seq, sorted(x for x in ok if x is not None)))
    assert not bad, f"{len(bad)} keys differ from the acknowledged writes, e.g. {bad[:5]}"
