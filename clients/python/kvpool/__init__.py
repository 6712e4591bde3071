"""kvpool's batch store API for LLM serving engines (SGLang HiCache, vLLM,
LMCache).

Two clients, both on any kvpool node (a single node or any node of a pool):

* ``DistributedStore`` (alias ``MooncakeDistributedStore``): Mooncake
  Store's API -- ``setup``, ``register_buffer``, ``batch_put_from`` /
  ``batch_get_into`` (and ``_multi_buffers``), ``batch_is_exist``,
  ``get_size``, ``remove`` ... -- on the native client (``kvpool._native``,
  C++ on hiredis): keys go straight to their owners, values land in the
  caller's buffers without a copy, the GIL is released during I/O::

      from kvpool import DistributedStore
      store = DistributedStore()
      store.setup("", "", master_server_addr="127.0.0.1:6379")
      store.batch_put_from(["p0"], [tensor.data_ptr()], [tensor.nbytes])

* ``KVPoolStore``: pure Python on redis-py, needing no compiler --
  ``put_batch``, ``get_batch``, ``batch_is_exist`` through one node::

      from kvpool import KVPoolStore
      store = KVPoolStore("redis://127.0.0.1:6379")
      store.put_batch(["p0", "p1"], [b"...", b"..."])    # 0 on success
      store.batch_is_exist(["p0", "p1", "p2"])           # [1, 1, 0]
      store.get_batch(["p0", "p2"])                      # [b"...", b""]
"""

from pkgutil import extend_path

# The native module may live in a build tree's kvpool/ (CMake puts it in
# <build>/clients/python/kvpool) rather than beside this file.
__path__ = extend_path(__path__, __name__)

from kvpool.store import KVPoolStore, KVPoolError  # noqa: E402

__all__ = ["KVPoolStore", "KVPoolError"]
__version__ = "0.2.0"

try:
    from kvpool.native_store import (  # noqa: E402
        BUFFER_OVERFLOW, INTERNAL_ERROR, INVALID_PARAMS, NO_AVAILABLE_HANDLE,
        OBJECT_NOT_FOUND, OK, RPC_FAIL, BatchResult, DistributedStore,
        MooncakeDistributedStore)
    __all__ += ["DistributedStore", "MooncakeDistributedStore", "BatchResult", "OK",
                "INTERNAL_ERROR", "BUFFER_OVERFLOW", "NO_AVAILABLE_HANDLE",
                "INVALID_PARAMS", "OBJECT_NOT_FOUND", "RPC_FAIL"]
except ImportError as _e:  # no kvpool._native built for this Python
    _native_error = _e

    def __getattr__(name):
        if name in ("DistributedStore", "MooncakeDistributedStore"):
            raise ImportError(f"kvpool.{name} needs the native module kvpool._native, which "
                              f"could not be imported ({_native_error}); build it with "
                              f"`pip install clients/python` or the CMake build") from _native_error
        raise AttributeError(name)
