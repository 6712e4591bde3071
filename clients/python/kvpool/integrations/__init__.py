"""Storage backends for LLM serving engines, on kvpool's native client.

- ``kvpool.integrations.sglang``: ``KVPoolHiCacheStorage``, an SGLang HiCache
  storage backend (L3), loaded through SGLang's ``dynamic`` backend.
- ``kvpool.integrations.lmcache``: ``KVPoolConnector``, an LMCache
  ``RemoteConnector`` (and ``KVPoolConnectorAdapter`` for LMCache's remote
  storage plugins).

Neither module imports its engine when it is imported: the engine's base
class is looked up the first time the backend class is used, and a small
stand-in takes its place when the engine is not installed. Both were written
against the engines' published sources and tested by driving them the way
the engine does (tests/integration/test_llm_backends.py), not inside the
engines themselves.
"""
