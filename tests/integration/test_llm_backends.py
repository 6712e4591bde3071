"""kvpool.integrations (SGLang HiCache storage, LMCache remote connector)
driven the way the engines drive them, on the native client, against a real
single node and a real three-node pool.

torch CPU tensors stand in for the engines' pinned host memory: `HostPool`
below is SGLang's host KV pool reduced to what a storage backend touches
(`kv_buffer`, `page_size`, `get_page_buffer_meta`, the flat data pages) in
its MHA page_first, MLA page_first and MLA layer_first layouts; `CPUBackend`
is LMCache's local CPU backend (`allocate`, memory objects with a tensor and
a reference count). Neither engine is installed; where a test needs the
engine's base class (loading through SGLang's `dynamic` backend, LMCache's
plugin adapter) a minimal module with the same names is put in sys.modules.

SGLang pattern: instance A backs pages up (batch_set_v1, 128 pages a call);
instance B, with its own host pool, asks how many pages of a longer prefix
exist (batch_exists), gets the hits into its pool (batch_get_v1) and backs
the whole prefix up, which writes only the misses. Every page is compared
byte for byte; every pointer handed to the store lies inside the host pool
(zero copy); a node killed in the pool fails exactly the pages with an
object on it.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import sys
import types
from abc import ABC, abstractmethod

import pytest
import torch

import kvpool
from conftest import fast_failover_pool
from kvpool.integrations import lmcache as kv_lmcache
from kvpool.integrations import sglang as kv_sglang
from pool_util import SlotMap

pytestmark = pytest.mark.kvpool_only

BATCH = 128


# ------------------------------------------------------------------ servers

@pytest.fixture(scope="module")
def pool():
    yield from fast_failover_pool("llmb")


@pytest.fixture(params=["single", "pool"])
def target(request, server):
    """(entry node, its pool or None), with an empty keyspace."""
    if request.param == "single":
        node, p = server, None
    else:
        p = request.getfixturevalue("pool")
        node = p.nodes[0]
    node.client().flushall()
    return node, p


def new_store(node):
    s = kvpool.DistributedStore()
    assert s.setup("", "", 0, 0, "tcp", "", f"{node.host}:{node.port}") == 0
    return s


class Recorder:
    """The store, with every pointer it is handed checked against the
    registered host memory, and the objects of each call counted."""

    def __init__(self, store):
        self.store, self.ranges, self.calls = store, [], []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def register_buffer(self, ptr, size):
        self.ranges.append((ptr, ptr + size))
        return self.store.register_buffer(ptr, size)

    def _check(self, name, keys, ptrs, sizes):
        flat = [(p, n) for ps, ns in zip(ptrs, sizes)
                for p, n in (zip(ps, ns) if isinstance(ps, list) else [(ps, ns)])]
        for p, n in flat:
            assert any(lo <= p and p + n <= hi for lo, hi in self.ranges), f"{name}: {p:#x}+{n} not in host memory"
        self.calls.append((name, list(keys)))

    def batch_get_into(self, keys, ptrs, sizes):
        self._check("get", keys, ptrs, sizes)
        return self.store.batch_get_into(keys, ptrs, sizes)

    def batch_put_from(self, keys, ptrs, sizes):
        self._check("put", keys, ptrs, sizes)
        return self.store.batch_put_from(keys, ptrs, sizes)

    def batch_get_into_multi_buffers(self, keys, ptrs, sizes):
        self._check("get", keys, ptrs, sizes)
        return self.store.batch_get_into_multi_buffers(keys, ptrs, sizes)

    def batch_put_from_multi_buffers(self, keys, ptrs, sizes):
        self._check("put", keys, ptrs, sizes)
        return self.store.batch_put_from_multi_buffers(keys, ptrs, sizes)

    def put_keys(self):
        return [k for name, keys in self.calls if name == "put" for k in keys]


# ------------------------------------------------------------------ SGLang

class HostPool:
    """SGLang's host KV pool reduced to what a storage backend touches."""

    def __init__(self, pages, kind, page_size=16, layers=4, heads=2, head_dim=64, dtype=torch.bfloat16):
        self.kind, self.page_size, self.layers, self.dtype = kind, page_size, layers, dtype
        self.itemsize = torch.empty(0, dtype=dtype).element_size()
        self.size = pages * page_size
        self.layout = "layer_first" if kind == "mla_layer_first" else "page_first"
        self.mla = kind.startswith("mla")
        self.dim = head_dim * (1 if self.mla else heads)  # per token and layer (and K or V)
        shape = {"mha": (2, self.size, layers, heads, head_dim), "mla": (self.size, layers, 1, head_dim),
                 "mla_layer_first": (layers, self.size, 1, head_dim)}[kind]
        self.kv_buffer = torch.zeros(shape, dtype=dtype)
        self.free = list(range(pages))

    def alloc(self, n):
        """Host indices of n pages taken from scattered slots (like the allocator)."""
        slots, self.free = self.free[-n:][::-1], self.free[:-n]
        assert len(slots) == n
        return torch.cat([torch.arange(s * self.page_size, (s + 1) * self.page_size) for s in slots])

    def get_page_buffer_meta(self, indices):
        it, ps, base = self.itemsize, self.page_size, self.kv_buffer.data_ptr()
        ptrs, size = [], 0
        for t in indices.tolist()[::ps]:
            if self.kind == "mha":
                tok = self.layers * self.dim * it
                ptrs += [base + t * tok, base + (self.size + t) * tok]
                size = ps * tok
            elif self.kind == "mla":
                tok = self.layers * self.dim * it
                ptrs.append(base + t * tok)
                size = ps * tok
            else:
                ptrs += [base + (layer * self.size + t) * self.dim * it for layer in range(self.layers)]
                size = ps * self.dim * it
        return ptrs, [size] * len(ptrs)

    def _page(self, index):
        i = int(index)
        if self.kind == "mla":
            return self.kv_buffer[i:i + self.page_size]
        return self.kv_buffer[:, i:i + self.page_size]

    def get_data_page(self, index, flat=True):
        return self._page(index).flatten()

    def get_dummy_flat_data_page(self):
        return torch.zeros(self._page(0).numel(), dtype=self.dtype)

    def set_from_flat_data_page(self, index, data_page):
        page = self._page(index)
        page.copy_(data_page.reshape(page.shape))

    def fill(self, indices, seed):
        """Random contents for the pages at these host indices."""
        g = torch.Generator().manual_seed(seed)
        for i in indices.tolist()[::self.page_size]:
            page = self._page(i)
            page.copy_(torch.randn(page.shape, generator=g, dtype=torch.float32).to(self.dtype))

    def pages(self, indices):
        """The bytes of each page (K then V)."""
        return [self.get_data_page(i).view(torch.uint8).numpy().tobytes() for i in indices.tolist()[::self.page_size]]


def storage_config(node, kind, tp_rank=0, **extra):
    return types.SimpleNamespace(
        tp_rank=tp_rank, tp_size=2, pp_rank=0, pp_size=1, attn_cp_rank=0, attn_cp_size=1,
        is_mla_model=kind.startswith("mla"), enable_storage_metrics=True, is_page_first_layout=True,
        model_name="Qwen/Qwen3-8B",
        extra_config={"backend_name": "kvpool", "module_path": "kvpool.integrations.sglang",
                      "class_name": "KVPoolHiCacheStorage", "interface_v1": 1,
                      "master_server_address": f"{node.host}:{node.port}", **extra})


def hicache(node, kind, host_pool, record=True, tp_rank=0):
    """A backend as SGLang's dynamic loader builds it, then register_mem_pool_host."""
    cfg = storage_config(node, kind, tp_rank)
    store = Recorder(new_store(node)) if record else None
    b = kv_sglang.KVPoolHiCacheStorage(cfg, {}, store=store) if record else kv_sglang.KVPoolHiCacheStorage(cfg, {})
    b.register_mem_pool_host(host_pool)
    return b


def page_keys(n, tag):
    return [f"{tag}{i:05d}" + "ab" * 28 for i in range(n)]


def backup(b, keys, indices, ps):
    """HiCacheController's write-through: batches of 128 pages."""
    ok = []
    for i in range(0, len(keys), BATCH):
        ok += b.batch_set_v1(keys[i:i + BATCH], indices[i * ps:(i + BATCH) * ps])
    return ok


def hit_query(b, keys):
    """HiCacheController._storage_hit_query: consecutive hits, 128 pages a call."""
    hits = 0
    for i in range(0, len(keys), BATCH):
        n = b.batch_exists(keys[i:i + BATCH])
        hits += n
        if n < len(keys[i:i + BATCH]):
            break
    return hits


def prefetch(b, keys, indices, ps):
    ok = []
    for i in range(0, len(keys), BATCH):
        ok += b.batch_get_v1(keys[i:i + BATCH], indices[i * ps:(i + BATCH) * ps])
    return ok


KINDS = ["mha", "mla", "mla_layer_first"]


@pytest.mark.parametrize("kind", KINDS)
def test_sglang_prefix_hits_then_misses(target, kind):
    node, _ = target
    a_pool, b_pool = HostPool(400, kind), HostPool(400, kind)
    a, b = hicache(node, kind, a_pool), hicache(node, kind, b_pool)
    ps = a_pool.page_size
    keys = page_keys(300, f"{kind}-")
    try:
        # A computed and backs up the first 200 pages
        a_idx = a_pool.alloc(200)
        a_pool.fill(a_idx, seed=1)
        assert backup(a, keys[:200], a_idx, ps) == [True] * 200
        want = a_pool.pages(a_idx)
        puts = a.store.calls
        assert all(len(k) <= BATCH * len(a.suffixes) for _, k in puts)
        assert len(a.store.put_keys()) == 200 * len(a.suffixes)

        # B: a 300-page prefix; 200 hit, fetched into its own pool
        assert hit_query(b, keys) == 200
        b_idx = b_pool.alloc(300)
        assert prefetch(b, keys[:200], b_idx[:200 * ps], ps) == [True] * 200
        assert b_pool.pages(b_idx[:200 * ps]) == want
        assert prefetch(b, keys[200:], b_idx[200 * ps:], ps) == [False] * 100

        # B computes the other 100 and backs up all 300: only the 100 are written
        b_pool.fill(b_idx[200 * ps:], seed=2)
        marker = keys[7] + b.suffixes[0]  # an object already there is left alone
        sentinel = b"\x5a" * (len(want[7]) // len(b.suffixes))
        assert b.store.put(marker, sentinel) == 0
        assert backup(b, keys, b_idx, ps) == [True] * 300
        written = set(b.store.put_keys())
        assert written == set(b._objects(keys[200:]))
        assert b.store.get(marker) == sentinel
        assert hit_query(b, keys) == 300

        # a third instance reads the whole prefix back
        c_pool = HostPool(400, kind)
        c = hicache(node, kind, c_pool)
        c_idx = c_pool.alloc(300)
        assert prefetch(c, keys, c_idx, ps) == [True] * 300
        got = c_pool.pages(c_idx)
        assert got[200:] == b_pool.pages(b_idx[200 * ps:])
        assert got[:7] + got[8:200] == want[:7] + want[8:200]
        c.close()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("kind", ["mha", "mla"])
def test_sglang_page_with_a_missing_object_is_a_miss(target, kind):
    node, _ = target
    hp = HostPool(120, kind)
    b = hicache(node, kind, hp)
    ps = hp.page_size
    keys = page_keys(100, f"hole-{kind}-")
    try:
        idx = hp.alloc(100)
        hp.fill(idx, seed=3)
        assert backup(b, keys, idx, ps) == [True] * 100
        assert b.store.remove(keys[50] + b.suffixes[-1]) == 0
        assert b.batch_exists(keys) == 50
        assert b.exists(keys[49]) and not b.exists(keys[50])
        # an object of another size (another model, page size, dtype) does not fit the page
        short = keys[70] + b.suffixes[0]
        assert b.store.put(short, b.store.get(short)[:-2]) == 0
        ok = prefetch(b, keys, hp.alloc(20).repeat(5), ps)  # reads land in scratch pages
        assert ok == [True] * 50 + [False] + [True] * 19 + [False] + [True] * 29
        # other TP ranks have objects of their own (MHA); MLA ones are shared
        other = hicache(node, kind, HostPool(120, kind), tp_rank=1)
        assert other.batch_exists(keys) == (50 if kind == "mla" else 0)
        other.close()
    finally:
        b.close()


@pytest.mark.parametrize("kind", KINDS)
def test_sglang_generic_pages_and_zero_copy_read_each_other(target, kind):
    """Without interface_v1 SGLang hands flat page tensors to batch_set and
    batch_get; they are stored as the same objects the zero-copy calls use."""
    node, _ = target
    hp = HostPool(80, kind)
    b = hicache(node, kind, hp, record=False)
    ps = hp.page_size
    keys = page_keys(40, f"gen-{kind}-")
    try:
        idx = hp.alloc(40)
        hp.fill(idx, seed=4)
        want = hp.pages(idx)
        flat = [hp.get_data_page(i) for i in idx.tolist()[::ps]]
        assert b.batch_set(keys[:20], flat[:20]) is True
        assert b.set(keys[20], flat[20]) is True
        assert backup(b, keys[21:], idx[21 * ps:], ps) == [True] * 19

        dummies = [hp.get_dummy_flat_data_page() for _ in keys] + [hp.get_dummy_flat_data_page()]
        got = b.batch_get(keys + ["gen-never-written"], dummies)
        assert got[-1] is None
        assert [g.view(torch.uint8).numpy().tobytes() for g in got[:-1]] == want
        assert all(g is d for g, d in zip(got[:-1], dummies))  # received in place
        other = HostPool(80, kind)
        o_idx = other.alloc(40)
        for i, page in zip(o_idx.tolist()[::ps], got[:-1]):
            other.set_from_flat_data_page(i, page)
        assert other.pages(o_idx) == want
        alone = b.get(keys[5])
        assert alone.dtype == hp.dtype and alone.view(torch.uint8).numpy().tobytes() == want[5]
        assert b.get("gen-never-written") is None
        assert prefetch(b, keys[:21], hp.alloc(21), ps) == [True] * 21
    finally:
        b.close()


def test_sglang_stats_clear_and_bad_layout(target):
    node, _ = target
    hp = HostPool(40, "mha")
    b = hicache(node, "mha", hp)
    keys = page_keys(30, "stats-")
    try:
        idx = hp.alloc(30)
        assert backup(b, keys, idx, hp.page_size) == [True] * 30
        assert prefetch(b, keys, idx, hp.page_size) == [True] * 30
        s = b.get_stats()
        assert sum(s.backup_pgs) == 30 and sum(s.prefetch_pgs) == 30
        assert all(x > 0 for x in s.backup_bandwidth + s.prefetch_bandwidth)
        assert b.get_stats().backup_pgs == []
        b.clear()
        assert b.batch_exists(keys) == 0

        # an MHA pool in layer_first has 2 x layers buffers per page: refused
        hp.get_page_buffer_meta = lambda ind: ([0] * (len(ind) // hp.page_size * 8), [1] * (len(ind) // hp.page_size * 8))
        with pytest.raises(ValueError, match="page_first"):
            b.batch_get_v1(keys[:2], idx[:2 * hp.page_size])
    finally:
        b.close()


@pytest.mark.parametrize("kind", ["mha", "mla"])
def test_sglang_node_killed_midway(pool, kind):
    """Node 3 dies between the backup and the prefetch: exactly the pages
    with an object on it fail, to read and to write; the rest land."""
    pool.nodes[0].client().flushall()
    slots = SlotMap.of(pool)
    hp = HostPool(600, kind)
    b = hicache(pool.nodes[0], kind, hp)
    ps = hp.page_size
    keys = page_keys(200, f"kill-{kind}-")
    new = page_keys(100, f"kill2-{kind}-")
    on_dead = lambda k: any(slots.node_of(o) == 2 for o in b._objects([k]))  # noqa: E731
    try:
        idx = hp.alloc(200)
        hp.fill(idx, seed=5)
        want = hp.pages(idx)
        assert backup(b, keys, idx, ps) == [True] * 200
        dead = [on_dead(k) for k in keys]
        assert any(dead) and not all(dead)

        pool.kill(2)
        pool.wait_state(2, "down", observers=[0, 1], timeout=10)
        assert b.batch_exists(keys) == dead.index(True)
        r_idx = hp.alloc(200)
        ok = prefetch(b, keys, r_idx, ps)
        assert ok == [not d for d in dead]
        got = hp.pages(r_idx)
        assert [g for g, d in zip(got, dead) if not d] == [w for w, d in zip(want, dead) if not d]

        n_idx = hp.alloc(100)
        hp.fill(n_idx, seed=6)
        n_dead = [on_dead(k) for k in new]
        assert backup(b, new, n_idx, ps) == [not d for d in n_dead]
        c_idx = hp.alloc(100)
        assert prefetch(b, new, c_idx, ps) == [not d for d in n_dead]
        n_want, n_got = hp.pages(n_idx), hp.pages(c_idx)
        assert [g for g, d in zip(n_got, n_dead) if not d] == [w for w, d in zip(n_want, n_dead) if not d]
    finally:
        b.close()
        pool.restart(2)


@pytest.fixture
def fake_sglang(monkeypatch):
    """sglang.srt.mem_cache.hicache_storage with SGLang's abstract HiCacheStorage."""
    class HiCacheStorage(ABC):
        def register_mem_pool_host(self, mem_pool_host):
            self.mem_pool_host = mem_pool_host

        @abstractmethod
        def get(self, key, target_location=None, target_sizes=None): ...

        @abstractmethod
        def batch_get(self, keys, target_locations=None, target_sizes=None): ...

        @abstractmethod
        def set(self, key, value=None, target_location=None, target_sizes=None): ...

        @abstractmethod
        def batch_set(self, keys, values=None, target_locations=None, target_sizes=None): ...

        @abstractmethod
        def exists(self, key): ...

    names = ["sglang", "sglang.srt", "sglang.srt.mem_cache", "sglang.srt.mem_cache.hicache_storage"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules[names[-1]].HiCacheStorage = HiCacheStorage
    kv_sglang.__dict__.pop("KVPoolHiCacheStorage", None)
    yield HiCacheStorage
    kv_sglang.__dict__.pop("KVPoolHiCacheStorage", None)


def test_sglang_dynamic_backend_loading(server, r, fake_sglang):
    """What StorageBackendFactory._create_dynamic_backend does with extra_config."""
    cfg = storage_config(server, "mha")
    extra = cfg.extra_config
    module = importlib.import_module(extra["module_path"])
    cls = getattr(module, extra["class_name"])
    assert issubclass(cls, fake_sglang)
    backend = cls(cfg, {})
    hp = HostPool(20, "mha")
    backend.register_mem_pool_host(hp)
    idx = hp.alloc(10)
    hp.fill(idx, seed=7)
    keys = page_keys(10, "dyn-")
    assert backend.batch_set_v1(keys, idx) == [True] * 10
    assert backend.batch_exists(keys) == 10
    assert r.get(keys[0] + "_0_k") is not None and r.get(keys[0] + "_0_v") is not None
    backend.close()


# ------------------------------------------------------------------ LMCache

class MemObj:
    """LMCache's MemoryObj: a tensor from the local CPU backend, ref-counted."""

    def __init__(self, backend, tensor, fmt):
        self.backend, self.tensor, self.fmt, self.refs = backend, tensor, fmt, 1

    def get_memory_format(self):
        return self.fmt

    def ref_count_down(self):
        self.refs -= 1
        self.backend.live -= 1


class CPUBackend:
    def __init__(self):
        self.live = 0
        self.arena = torch.zeros(128 << 20, dtype=torch.uint8)  # the pinned buffer stand-in
        self.used = 0

    def allocate(self, shape, dtype, fmt):
        n = torch.Size(shape).numel() * torch.empty(0, dtype=dtype).element_size()
        assert self.used + n <= self.arena.numel(), "test arena exhausted"
        t = self.arena[self.used:self.used + n].view(dtype).view(shape)
        self.used += (n + 255) // 256 * 256
        self.live += 1
        return MemObj(self, t, fmt)


class Key:
    def __init__(self, s):
        self.s = s

    def to_string(self):
        return self.s


KV_2LTD = 1


def chunks(backend, n, tag, tokens=256, last_tokens=100, seed=0):
    """A prompt's chunks in LMCache's KV_2LTD layout [2, layers, tokens, hidden], the last one partial."""
    g = torch.Generator().manual_seed(seed)
    keys, objs = [], []
    for i in range(n):
        t = last_tokens if i == n - 1 else tokens
        obj = backend.allocate((2, 4, t, 128), torch.bfloat16, KV_2LTD)
        obj.tensor.copy_(torch.randn(obj.tensor.shape, generator=g).to(torch.bfloat16))
        keys.append(Key(f"Qwen/Qwen3-8B@1@0@{tag}{i:04d}{'c' * 56}@bfloat16"))
        objs.append(obj)
    return keys, objs


def connector(node, backend):
    return kv_lmcache.KVPoolConnector(f"kvpool://{node.host}:{node.port}", None, backend)


def test_lmcache_store_look_up_retrieve(target):
    node, _ = target
    backend = CPUBackend()
    conn = connector(node, backend)
    keys, objs = chunks(backend, 12, "p")
    try:
        asyncio.run(conn.batched_put(keys, objs))
        missing = Key("Qwen/Qwen3-8B@1@0@nope@bfloat16")
        assert conn.batched_contains(keys + [missing] + keys) == 12
        assert conn.batched_contains([missing] + keys) == 0
        assert asyncio.run(conn.batched_async_contains("req-1", keys[:5])) == 5
        assert conn.exists_sync(keys[3]) and asyncio.run(conn.exists(keys[11]))
        assert not conn.exists_sync(missing)

        live = backend.live
        got = asyncio.run(conn.batched_get(keys + [missing]))
        assert got[-1] is None
        for want, obj in zip(objs, got[:-1]):
            assert obj.tensor.shape == want.tensor.shape and obj.tensor.dtype == torch.bfloat16
            assert torch.equal(obj.tensor.view(torch.int16), want.tensor.view(torch.int16))
            assert obj.get_memory_format() == KV_2LTD
        assert backend.live == live + 12  # the miss allocated nothing
        one = asyncio.run(conn.get(keys[11]))
        assert one.tensor.shape == (2, 4, 100, 128) and torch.equal(one.tensor, objs[11].tensor)
        assert asyncio.run(conn.get(missing)) is None

        asyncio.run(conn.put(keys[0], objs[1]))  # overwrite: the new chunk wins
        assert torch.equal(asyncio.run(conn.get(keys[0])).tensor, objs[1].tensor)
        assert asyncio.run(conn.list()) == sorted(k.to_string() for k in keys)
        assert conn.remove_sync(keys[2]) and not conn.exists_sync(keys[2])
        assert conn.batched_contains(keys) == 2
        # a record whose bytes are gone: read as a miss, its buffer given back
        assert conn.store.remove("{" + keys[4].to_string() + "}:kv") == 0
        live = backend.live
        assert asyncio.run(conn.batched_get(keys[3:6]))[1] is None
        assert backend.live == live + 2
    finally:
        asyncio.run(conn.close())


def test_lmcache_node_killed(pool):
    pool.nodes[0].client().flushall()
    slots = SlotMap.of(pool)
    backend = CPUBackend()
    conn = connector(pool.nodes[0], backend)
    keys, objs = chunks(backend, 40, "k", last_tokens=256, seed=1)
    new_keys, new_objs = chunks(backend, 20, "n", seed=2)
    on_dead = lambda k: slots.node_of("{" + k.to_string() + "}:kv") == 2  # noqa: E731
    dead = [on_dead(k) for k in keys]
    assert any(dead) and not all(dead)
    try:
        asyncio.run(conn.batched_put(keys, objs))
        pool.kill(2)
        pool.wait_state(2, "down", observers=[0, 1], timeout=10)
        assert conn.batched_contains(keys) == dead.index(True)
        live = backend.live
        got = asyncio.run(conn.batched_get(keys))
        assert [g is None for g in got] == dead
        assert backend.live == live + dead.count(False)  # failed reads gave their buffers back
        for g, want in zip(got, objs):
            assert g is None or torch.equal(g.tensor, want.tensor)
        n_dead = [on_dead(k) for k in new_keys]
        with pytest.raises(RuntimeError, match=f"{n_dead.count(True)} of 20 chunks not stored"):
            asyncio.run(conn.batched_put(new_keys, new_objs))
        assert [conn.exists_sync(k) for k in new_keys] == [not d for d in n_dead]
        got = asyncio.run(conn.batched_get(new_keys))
        assert [g is None for g in got] == n_dead
        assert all(torch.equal(g.tensor, w.tensor) for g, w in zip(got, new_objs) if g is not None)
    finally:
        asyncio.run(conn.close())
        pool.restart(2)


@pytest.fixture
def fake_lmcache(monkeypatch):
    """The LMCache names the connector module looks up: RemoteConnector,
    ConnectorAdapter and MemoryFormat."""
    class RemoteConnector(ABC):
        @abstractmethod
        async def exists(self, key): ...

        @abstractmethod
        def exists_sync(self, key): ...

        @abstractmethod
        async def get(self, key): ...

        @abstractmethod
        async def put(self, key, memory_obj): ...

        @abstractmethod
        async def list(self): ...

        @abstractmethod
        async def close(self): ...

    class ConnectorAdapter(ABC):
        def __init__(self, schema=""):
            self.schema = schema

        def can_parse(self, url):
            return self.schema != "" and url.startswith(self.schema)

        @abstractmethod
        def create_connector(self, context): ...

    class MemoryFormat(enum.Enum):
        UNDEFINED = 0
        KV_2LTD = 1

    mods = {n: types.ModuleType(n) for n in [
        "lmcache", "lmcache.v1", "lmcache.v1.memory_management", "lmcache.v1.storage_backend",
        "lmcache.v1.storage_backend.connector", "lmcache.v1.storage_backend.connector.base_connector"]}
    mods["lmcache.v1.storage_backend.connector.base_connector"].RemoteConnector = RemoteConnector
    mods["lmcache.v1.storage_backend.connector"].ConnectorAdapter = ConnectorAdapter
    mods["lmcache.v1.memory_management"].MemoryFormat = MemoryFormat
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    for name in ("KVPoolConnector", "KVPoolConnectorAdapter"):
        kv_lmcache.__dict__.pop(name, None)
    yield RemoteConnector, ConnectorAdapter, MemoryFormat
    for name in ("KVPoolConnector", "KVPoolConnectorAdapter"):
        kv_lmcache.__dict__.pop(name, None)


def test_lmcache_loaded_as_remote_storage_plugin(server, r, fake_lmcache):
    RemoteConnector, ConnectorAdapter, MemoryFormat = fake_lmcache
    module = importlib.import_module("kvpool.integrations.lmcache")
    adapter = getattr(module, "KVPoolConnectorAdapter")()
    assert isinstance(adapter, ConnectorAdapter)
    url = f"kvpool://{server.host}:{server.port}"
    assert adapter.can_parse(url) and not adapter.can_parse("redis://x:1")
    backend = CPUBackend()
    ctx = types.SimpleNamespace(url=url, loop=None, local_cpu_backend=backend, config=None, metadata=None)
    conn = adapter.create_connector(ctx)
    assert isinstance(conn, RemoteConnector)
    keys, objs = chunks(backend, 3, "plug", seed=3)
    for o in objs:
        o.fmt = MemoryFormat.KV_2LTD
    asyncio.run(conn.batched_put(keys, objs))
    got = asyncio.run(conn.batched_get(keys))
    assert [g.get_memory_format() for g in got] == [MemoryFormat.KV_2LTD] * 3
    assert all(torch.equal(g.tensor, o.tensor) for g, o in zip(got, objs))
    asyncio.run(conn.close())

    # the external:// scheme builds it with keywords, the address in extra_config
    cfg = types.SimpleNamespace(extra_config={"kvpool_url": f"{server.host}:{server.port}"})
    conn2 = module.KVPoolConnector(loop=None, local_cpu_backend=backend, config=cfg)
    assert conn2.batched_contains(keys) == 3
    assert asyncio.run(conn2.list()) == sorted(k.to_string() for k in keys)
    asyncio.run(conn2.close())
