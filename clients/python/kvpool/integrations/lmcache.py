"""An LMCache remote connector on a kvpool node or pool.

Load it through LMCache's remote storage plugins (``kvpool://`` URLs)::

    remote_storage_plugins: ["kvpool"]
    extra_config:
      remote_storage_plugin.kvpool.module_path: kvpool.integrations.lmcache
      remote_storage_plugin.kvpool.class_name: KVPoolConnectorAdapter
    remote_url: "kvpool://10.0.0.1:6379"

or through the older ``external://`` scheme
(``external://host:0/kvpool.integrations.lmcache/?connector_name=KVPoolConnector``
with the node address in ``extra_config: {kvpool_url: "host:port"}``).

Each chunk is two objects sharing a hash tag, so they live on one node:
``{<key>}:kv``, the chunk's bytes, sent from and received straight into the
memory object's tensor (``put_from`` / ``batch_get_into``), and
``{<key>}:meta``, a small JSON record of its shape, dtype and memory format,
written after the bytes (a reader that sees the record finds the bytes).
``exists`` and ``batched_contains`` look at the records; a get reads the
records (one batch), allocates from the local CPU backend, then receives
every chunk's bytes in one batch.

What was assumed about LMCache (lmcache/v1/storage_backend/connector/
base_connector.py, __init__.py, external_adapter.py, redis_connector.py and
mooncakestore_connector.py in LMCache/LMCache; LMCache is not installed here
and this was not run inside it):

- a RemoteConnector has async ``exists``, ``get``, ``put``, ``list``,
  ``close``, ``batched_get``, ``batched_put``, and sync ``exists_sync``;
  ``batched_contains(keys)`` (sync) answers how many keys from the start are
  present, as LMCache's RESP connector does;
- keys have ``to_string()``; a memory object has ``tensor`` (contiguous, CPU),
  ``get_memory_format()`` and ``ref_count_down()``;
  ``local_cpu_backend.allocate(shape, dtype, fmt)`` returns one or None;
- ``put`` does not drop the caller's reference (as the Mooncake and RESP
  connectors); a get that fails drops the reference of what it allocated;
- the format is an enum of ``lmcache.v1.memory_management.MemoryFormat``
  (stored as its value; passed back as that enum when LMCache is there).
"""

from __future__ import annotations

import asyncio
import json
import os
import types
from typing import Any, List, Optional


class _FallbackRemoteConnector:
    """Stands in for LMCache's RemoteConnector base class when LMCache is absent."""


def _key(key: Any) -> str:
    return key.to_string() if hasattr(key, "to_string") else str(key)


def _address(url: str) -> str:
    """kvpool://host:port, redis://..., or host:port -> what setup() takes."""
    if url.startswith("kvpool://"):
        return "redis://" + url[len("kvpool://"):].rstrip("/")
    return url


class _KVPoolConnector:
    """The connector; LMCache loads ``KVPoolConnector``, this plus LMCache's
    RemoteConnector (or the stand-in) as base."""

    def __init__(self, url: Optional[str] = None, loop=None, local_cpu_backend=None,
                 config=None, metadata=None, store: Any = None):
        if config is not None and metadata is not None:
            try:  # LMCache's newer RemoteConnector computes its chunk attributes here
                super().__init__(config, metadata)
            except TypeError:  # an older one (or the stand-in) takes no arguments
                pass
        extra = dict(getattr(config, "extra_config", None) or {})
        self.loop = loop
        self.local_cpu_backend = local_cpu_backend
        self.key_prefix = str(extra.get("kvpool_key_prefix", ""))
        addr = _address(url or extra.get("kvpool_url") or os.environ.get("KVPOOL_URL") or "127.0.0.1:6379")
        if store is None:
            from kvpool import DistributedStore

            store = DistributedStore()
            rc = store.setup("", "", 0, 0, "tcp", "", addr)
            if rc != 0:
                raise RuntimeError(f"kvpool: setup({addr!r}) failed with code {rc}")
        self.store = store
        self._addr = addr

    # ------------------------------------------------------------ names and records
    def _kv(self, key) -> str:
        return "{" + self.key_prefix + _key(key) + "}:kv"

    def _meta(self, key) -> str:
        return "{" + self.key_prefix + _key(key) + "}:meta"

    @staticmethod
    def _record(obj) -> bytes:
        t = obj.tensor
        fmt = obj.get_memory_format()
        return json.dumps({"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
                           "fmt": getattr(fmt, "value", fmt), "nbytes": t.numel() * t.element_size()}).encode()

    def _allocate(self, record: bytes):
        import torch

        try:
            meta = json.loads(record)
            dtype = getattr(torch, meta["dtype"])
            fmt = meta["fmt"]
            try:
                from lmcache.v1.memory_management import MemoryFormat

                fmt = MemoryFormat(fmt)
            except ImportError:
                pass
            obj = self.local_cpu_backend.allocate(torch.Size(meta["shape"]), dtype, fmt)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None, 0
        return obj, int(meta["nbytes"])

    # ------------------------------------------------------------ sync cores
    def _contains(self, keys) -> List[bool]:
        return [e == 1 for e in self.store.batch_is_exist([self._meta(k) for k in keys])] if keys else []

    def _put(self, keys, objs) -> List[bool]:
        if not keys:
            return []
        ptrs = [o.tensor.data_ptr() for o in objs]
        sizes = [o.tensor.numel() * o.tensor.element_size() for o in objs]
        landed = self.store.batch_put_from([self._kv(k) for k in keys], ptrs, sizes)
        good = [i for i, rc in enumerate(landed) if rc == 0]
        if not good:
            return [False] * len(keys)
        recorded = self.store.put_batch([self._meta(keys[i]) for i in good], [self._record(objs[i]) for i in good])
        ok = [False] * len(keys)
        for i, rc in zip(good, getattr(recorded, "results", [recorded] * len(good))):
            ok[i] = rc == 0
        return ok

    def _get(self, keys) -> list:
        if not keys:
            return []
        records = self.store.get_batch([self._meta(k) for k in keys])
        out: list = [None] * len(keys)
        want = []  # (index, obj, nbytes)
        for i, rec in enumerate(records):
            if rec:
                obj, nbytes = self._allocate(rec)
                if obj is not None:
                    want.append((i, obj, nbytes))
        if not want:
            return out
        got = self.store.batch_get_into([self._kv(keys[i]) for i, _, _ in want],
                                        [o.tensor.data_ptr() for _, o, _ in want], [n for _, _, n in want])
        for (i, obj, nbytes), n in zip(want, got):
            if n == nbytes:
                out[i] = obj
            else:
                obj.ref_count_down()
        return out

    # ------------------------------------------------------------ RemoteConnector
    async def _run(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    async def exists(self, key) -> bool:
        return (await self._run(self._contains, [key]))[0]

    def exists_sync(self, key) -> bool:
        return self._contains([key])[0]

    async def get(self, key):
        return (await self._run(self._get, [key]))[0]

    async def put(self, key, memory_obj) -> None:
        if not (await self._run(self._put, [key], [memory_obj]))[0]:
            raise RuntimeError(f"kvpool: put of {_key(key)} failed")

    async def list(self) -> List[str]:
        """Keys of every chunk stored (a SCAN of the whole pool)."""
        return await self._run(self._list)

    def _list(self) -> List[str]:
        import redis

        r = redis.Redis.from_url(self._addr if "://" in self._addr else "redis://" + self._addr)
        try:
            head = "{" + self.key_prefix
            return sorted(k.decode()[len(head):-len("}:meta")]
                          for k in r.scan_iter(match=head.replace("[", "\\[") + "*}:meta", count=1000))
        finally:
            r.close()

    async def close(self) -> None:
        self.store.close()

    def support_batched_get(self) -> bool:
        return True

    async def batched_get(self, keys) -> list:
        return await self._run(self._get, list(keys))

    def support_batched_put(self) -> bool:
        return True

    async def batched_put(self, keys, memory_objs) -> None:
        ok = await self._run(self._put, list(keys), list(memory_objs))
        if not all(ok):
            failed = [_key(k) for k, good in zip(keys, ok) if not good]
            raise RuntimeError(f"kvpool: {len(failed)} of {len(ok)} chunks not stored: {failed[:3]}")

    def support_batched_contains(self) -> bool:
        return True

    def batched_contains(self, keys) -> int:
        """How many keys, from the first, are present."""
        hits = self._contains(list(keys))
        return hits.index(False) if False in hits else len(hits)

    def support_batched_async_contains(self) -> bool:
        return True

    async def batched_async_contains(self, lookup_id: str, keys, pin: bool = False) -> int:
        return await self._run(self.batched_contains, list(keys))

    def remove_sync(self, key) -> bool:
        return self.store.batch_remove([self._meta(key), self._kv(key)]) == [0, 0]

    def __repr__(self) -> str:
        return f"<KVPoolConnector {self._addr}>"


def _make_connector():
    try:
        from lmcache.v1.storage_backend.connector.base_connector import RemoteConnector as base
    except ImportError:
        base = _FallbackRemoteConnector
    cls = types.new_class("KVPoolConnector", (_KVPoolConnector, base))
    cls.__module__ = __name__
    return cls


def _make_adapter():
    from lmcache.v1.storage_backend.connector import ConnectorAdapter  # needs LMCache

    def __init__(self):
        ConnectorAdapter.__init__(self, "kvpool://")

    def create_connector(self, context):
        connector = __getattr__("KVPoolConnector")
        return connector(context.url, context.loop, context.local_cpu_backend,
                         context.config, getattr(context, "metadata", None))

    cls = types.new_class("KVPoolConnectorAdapter", (ConnectorAdapter,),
                          exec_body=lambda ns: ns.update(__init__=__init__, create_connector=create_connector))
    cls.__module__ = __name__
    return cls


_MAKERS = {"KVPoolConnector": _make_connector, "KVPoolConnectorAdapter": _make_adapter}


def __getattr__(name: str):
    # Built on first use, so that importing this module imports no LMCache.
    if name in _MAKERS:
        cls = globals()[name] = _MAKERS[name]()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KVPoolConnector", "KVPoolConnectorAdapter"]
