"""SGLang HiCache storage (L3) on a kvpool node or pool.

Load it with SGLang's ``dynamic`` storage backend::

    python -m sglang.launch_server ... --enable-hierarchical-cache \\
        --hicache-mem-layout page_first --hicache-storage-backend dynamic \\
        --hicache-storage-backend-extra-config '{"backend_name": "kvpool",
            "module_path": "kvpool.integrations.sglang",
            "class_name": "KVPoolHiCacheStorage", "interface_v1": 1,
            "master_server_address": "10.0.0.1:6379"}'

``master_server_address`` (Mooncake's name; ``kvpool_url`` is accepted too,
then $KVPOOL_URL, then 127.0.0.1:6379) is any node of the pool, as
``host:port`` or ``redis://[:password@]host:port``. ``key_prefix`` (optional)
is put before every key, to keep models that share a pool apart.
``interface_v1: 1`` makes SGLang use the zero-copy calls ``batch_get_v1`` /
``batch_set_v1``; without it SGLang copies each page into a flat tensor and
calls ``batch_get`` / ``batch_set``, which this backend also serves.

What was assumed about SGLang (python/sglang/srt/mem_cache/hicache_storage.py,
storage/backend_factory.py, storage/mooncake_store/mooncake_store.py and
managers/cache_controller.py in sgl-project/sglang; SGLang is not installed
here and this was not run inside it):

- the dynamic backend checks ``issubclass(cls, HiCacheStorage)``, builds it as
  ``cls(storage_config, kwargs)`` and then calls
  ``register_mem_pool_host(host_pool)``;
- ``host_pool.get_page_buffer_meta(host_indices)`` gives, per page, a K and a
  V pointer (MHA) or one pointer (MLA) with their sizes; with the
  ``layer_first`` layout an MLA page is one pointer per layer (sent as one
  object in several buffers), an MHA page too, which is refused here as
  Mooncake's backend refuses it: use ``page_first``;
- a generic (non-v1) page is the flat tensor ``host_pool.get_data_page``
  gives: the page's K bytes then its V bytes (MHA) or its bytes (MLA), so it
  is stored as the same ``_k`` / ``_v`` objects and either path reads what
  the other wrote;
- ``batch_exists`` answers how many pages from the start are all there;
  ``batch_get_v1`` / ``batch_set_v1`` answer one bool per page;
- SGLang calls the backend from its prefetch and backup threads at once, so
  the store must be safe to share between threads.

Objects: ``{key_prefix}{page_key}_{tp_rank}_k`` and ``..._v`` per page (with
pipeline parallelism ``_{tp_rank}_{pp_rank}``), ``{page_key}_k`` for MLA
(every TP rank holds the same latent cache; ``_{pp_rank}_k`` with PP), as
SGLang's Mooncake backend names them. A write stores only the objects
``batch_is_exist`` does not report present; a call moves at most 128 pages.
"""

from __future__ import annotations

import os
import time
import types
from typing import Any, List, Optional

STORAGE_BATCH_PAGES = 128


class _FallbackHiCacheStorage:
    """Stands in for SGLang's HiCacheStorage base class when SGLang is absent."""

    def register_mem_pool_host(self, mem_pool_host) -> None:
        self.mem_pool_host = mem_pool_host

    def clear(self) -> None:
        pass

    def get_stats(self):
        return None


class _KVPoolHiCache:
    """The backend; the class SGLang loads is ``KVPoolHiCacheStorage``, this
    plus SGLang's HiCacheStorage (or the stand-in) as base."""

    def __init__(self, storage_config: Any = None, kwargs: Optional[dict] = None, store: Any = None):
        extra = dict(getattr(storage_config, "extra_config", None) or {})
        self.tp_rank = int(getattr(storage_config, "tp_rank", 0) or 0)
        self.pp_rank = int(getattr(storage_config, "pp_rank", 0) or 0)
        self.pp_size = int(getattr(storage_config, "pp_size", 1) or 1)
        self.is_mla = bool(getattr(storage_config, "is_mla_model", False))
        self.key_prefix = str(extra.get("key_prefix", ""))
        rank = f"{self.tp_rank}_{self.pp_rank}" if self.pp_size > 1 else f"{self.tp_rank}"
        if self.is_mla:
            self.suffixes = [f"_{self.pp_rank}_k"] if self.pp_size > 1 else ["_k"]
        else:
            self.suffixes = [f"_{rank}_k", f"_{rank}_v"]
        if store is None:
            from kvpool import DistributedStore

            addr = (extra.get("master_server_address") or extra.get("kvpool_url")
                    or os.environ.get("KVPOOL_URL") or "127.0.0.1:6379")
            store = DistributedStore()
            rc = store.setup("", "", 0, 0, "tcp", "", addr)
            if rc != 0:
                raise RuntimeError(f"kvpool: setup({addr!r}) failed with code {rc}")
        self.store = store
        self.mem_pool_host = None
        self._stats = {"prefetch_pgs": [], "backup_pgs": [], "prefetch_bandwidth": [], "backup_bandwidth": []}

    # ------------------------------------------------------------ helpers
    def _objects(self, keys: List[str]) -> List[str]:
        return [f"{self.key_prefix}{k}{s}" for k in keys for s in self.suffixes]

    def _per_page(self, ok: List[bool]) -> List[bool]:
        n = len(self.suffixes)
        return [all(ok[i:i + n]) for i in range(0, len(ok), n)]

    def _page_buffers(self, keys, host_indices):
        """Object names, pointers and sizes of these pages in the host pool;
        multi: each object is a list of buffers (layer_first MLA)."""
        names = self._objects(keys)
        ptrs, sizes = self.mem_pool_host.get_page_buffer_meta(host_indices)
        ptrs, sizes = list(ptrs), list(sizes)
        if len(ptrs) == len(names):
            return names, ptrs, sizes, False
        per = len(ptrs) // len(names)
        if not self.is_mla or per * len(names) != len(ptrs):
            raise ValueError(f"kvpool: {len(ptrs)} buffers for {len(names)} objects; "
                             "an MHA host pool must use the page_first layout")
        group = lambda xs: [xs[i:i + per] for i in range(0, len(xs), per)]  # noqa: E731
        return names, group(ptrs), group(sizes), True

    def _tensor_buffers(self, tensors):
        """Pointers and sizes of flat page tensors split into their objects
        (size 0, which no read or write accepts, where one cannot be split)."""
        n = len(self.suffixes)
        ptrs, sizes = [], []
        for t in tensors:
            nbytes = t.numel() * t.element_size()
            part = nbytes // n if t.is_contiguous() and nbytes % n == 0 and nbytes else 0
            ptrs += [t.data_ptr() + j * part for j in range(n)]
            sizes += [part] * n
        return ptrs, sizes

    def _record(self, kind: str, pages: int, nbytes: int, t0: float) -> None:
        seconds = max(time.perf_counter() - t0, 1e-9)
        self._stats[f"{kind}_pgs"].append(pages)
        self._stats[f"{kind}_bandwidth"].append(nbytes / seconds / (1 << 30))

    def _get(self, names, ptrs, sizes, multi) -> List[bool]:
        t0 = time.perf_counter()
        fn = self.store.batch_get_into_multi_buffers if multi else self.store.batch_get_into
        want = [sum(s) for s in sizes] if multi else sizes
        res = fn(names, ptrs, sizes) if names else []
        ok = [w > 0 and r == w for r, w in zip(res, want)]
        self._record("prefetch", len(names) // len(self.suffixes), sum(w for w, o in zip(want, ok) if o), t0)
        return self._per_page(ok)

    def _set_missing(self, names, ptrs, sizes, multi) -> List[bool]:
        """Write the objects batch_is_exist does not report present."""
        exist = self.store.batch_is_exist(names) if names else []
        ok = [e == 1 for e in exist]
        missing = [i for i, e in enumerate(exist) if e != 1 and (sum(sizes[i]) if multi else sizes[i]) > 0]
        if missing:
            t0 = time.perf_counter()
            fn = self.store.batch_put_from_multi_buffers if multi else self.store.batch_put_from
            res = fn([names[i] for i in missing], [ptrs[i] for i in missing], [sizes[i] for i in missing])
            for i, r in zip(missing, res):
                ok[i] = r == 0
            moved = sum(sum(sizes[i]) if multi else sizes[i] for i in missing)
            self._record("backup", -(-len(missing) // len(self.suffixes)), moved, t0)
        return self._per_page(ok)

    @staticmethod
    def _pages(n: int):
        return range(0, n, STORAGE_BATCH_PAGES)

    # ------------------------------------------------------------ zero copy (interface_v1)
    def register_mem_pool_host(self, mem_pool_host) -> None:
        self.mem_pool_host = mem_pool_host
        buf = getattr(mem_pool_host, "kv_buffer", None)
        if buf is not None and buf.numel():
            rc = self.store.register_buffer(buf.data_ptr(), buf.numel() * buf.element_size())
            if rc != 0:
                raise RuntimeError(f"kvpool: register_buffer of the host KV pool failed with code {rc}")

    def batch_get_v1(self, keys: List[str], host_indices, extra_info=None) -> List[bool]:
        ps = self.mem_pool_host.page_size
        out: List[bool] = []
        for i in self._pages(len(keys)):
            ks = keys[i:i + STORAGE_BATCH_PAGES]
            out += self._get(*self._page_buffers(ks, host_indices[i * ps:(i + len(ks)) * ps]))
        return out

    def batch_set_v1(self, keys: List[str], host_indices, extra_info=None) -> List[bool]:
        ps = self.mem_pool_host.page_size
        out: List[bool] = []
        for i in self._pages(len(keys)):
            ks = keys[i:i + STORAGE_BATCH_PAGES]
            out += self._set_missing(*self._page_buffers(ks, host_indices[i * ps:(i + len(ks)) * ps]))
        return out

    def batch_exists(self, keys: List[str], extra_info=None) -> int:
        hits = 0
        for i in self._pages(len(keys)):
            ks = keys[i:i + STORAGE_BATCH_PAGES]
            for present in self._per_page([e == 1 for e in self.store.batch_is_exist(self._objects(ks))]):
                if not present:
                    return hits
                hits += 1
        return hits

    def exists(self, key: str) -> bool:
        return self.batch_exists([key]) == 1

    # ------------------------------------------------------------ generic pages (flat tensors)
    def batch_set(self, keys: List[str], values=None, target_locations=None, target_sizes=None) -> bool:
        if values is None or len(values) != len(keys):
            return False
        ok = True
        for i in self._pages(len(keys)):
            ks, vs = keys[i:i + STORAGE_BATCH_PAGES], values[i:i + STORAGE_BATCH_PAGES]
            ptrs, sizes = self._tensor_buffers(vs)
            ok = all(self._set_missing(self._objects(ks), ptrs, sizes, False)) and ok
        return ok

    def set(self, key: str, value=None, target_location=None, target_sizes=None) -> bool:
        return self.batch_set([key], [value])

    def batch_get(self, keys: List[str], target_locations=None, target_sizes=None) -> list:
        """Each page received straight into its target tensor (allocated here
        when none is given); the tensor, or None for a page not fully read."""
        if target_locations is None:
            target_locations = [self._alloc(k) for k in keys]
        out: list = []
        for i in self._pages(len(keys)):
            ks, ts = keys[i:i + STORAGE_BATCH_PAGES], target_locations[i:i + STORAGE_BATCH_PAGES]
            ptrs, sizes = self._tensor_buffers([t if t is not None else _empty_tensor() for t in ts])
            names = self._objects(ks)
            ok = self._get(names, ptrs, sizes, False)
            out += [t if good and t is not None else None for t, good in zip(ts, ok)]
        return out

    def get(self, key: str, target_location=None, target_sizes=None):
        return self.batch_get([key], None if target_location is None else [target_location])[0]

    def _alloc(self, key: str):
        import torch

        sizes = [self.store.get_size(name) for name in self._objects([key])]
        if any(s <= 0 for s in sizes) or len(set(sizes)) != 1:
            return None
        dtype = getattr(self.mem_pool_host, "dtype", None) or torch.uint8
        t = torch.empty(sum(sizes), dtype=torch.uint8)
        itemsize = torch.empty(0, dtype=dtype).element_size()
        return t.view(dtype) if sum(sizes) % itemsize == 0 else t

    # ------------------------------------------------------------ the rest
    def clear(self) -> None:
        """Remove every key of the pool (as SGLang's Mooncake backend clears its store)."""
        self.store.remove_all()

    def get_stats(self):
        """Pages and GiB/s per batched call since the last call, as SGLang's StorageMetrics."""
        metrics = None
        for mod in ("sglang.srt.observability.metrics_collector", "sglang.srt.metrics.collector"):
            try:
                metrics = __import__(mod, fromlist=["StorageMetrics"]).StorageMetrics()
                break
            except (ImportError, AttributeError):
                continue
        if metrics is None:
            metrics = types.SimpleNamespace(**{k: [] for k in self._stats})
        for name, values in self._stats.items():
            getattr(metrics, name).extend(values)
            values.clear()
        return metrics

    def close(self) -> None:
        self.store.close()


def _empty_tensor():
    import torch

    return torch.empty(0, dtype=torch.uint8)


def _make_class():
    try:
        from sglang.srt.mem_cache.hicache_storage import HiCacheStorage as base
    except ImportError:
        base = _FallbackHiCacheStorage
    cls = types.new_class("KVPoolHiCacheStorage", (_KVPoolHiCache, base))
    cls.__module__ = __name__
    cls.__doc__ = __doc__
    return cls


def __getattr__(name: str):
    # Built on first use, so that importing this module imports no SGLang.
    if name == "KVPoolHiCacheStorage":
        cls = globals()["KVPoolHiCacheStorage"] = _make_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KVPoolHiCacheStorage", "STORAGE_BATCH_PAGES"]
