"""kvpool's batch store API for LLM serving engines (SGLang HiCache, LMCache).

The same calls as Mooncake Store's Python client -- ``put_batch``,
``get_batch``, ``batch_is_exist`` -- on top of any kvpool node (a single node
or any node of a pool), over the Redis protocol with redis-py::

    from kvpool import KVPoolStore
    store = KVPoolStore("redis://127.0.0.1:6379")
    store.put_batch(["p0", "p1"], [b"...", b"..."])    # 0 on success
    store.batch_is_exist(["p0", "p1", "p2"])           # [1, 1, 0]
    store.get_batch(["p0", "p2"])                      # [b"...", b""]
"""

from kvpool.store import KVPoolStore, KVPoolError

__all__ = ["KVPoolStore", "KVPoolError"]
__version__ = "0.1.0"
