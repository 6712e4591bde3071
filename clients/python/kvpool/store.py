"""KVPoolStore: Mooncake-Store-shaped batch API over kvpool (see __init__)."""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Union

import redis

Key = Union[str, bytes]

# Mooncake's convention: 0 is success, negative values are errors.
OK = 0
ERR_INVALID = -1     # bad arguments (lengths differ, wrong types)
ERR_UNAVAILABLE = -2  # a node could not take the write (down, timeout)
ERR_NO_MEMORY = -3    # the owner is at maxmemory with noeviction
ERR_INTERNAL = -4     # anything else the server refused


class KVPoolError(Exception):
    """Raised by the single-key calls when the server cannot answer."""


def _chunks(n: int, size: int) -> Iterable[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


class KVPoolStore:
    """A handle on a kvpool node (any node of a pool sees every key).

    Contract of every batch call:
      * results are aligned one-to-one with ``keys``, duplicates included;
      * an empty ``keys`` makes no request and returns an empty result;
      * a batch larger than ``batch_size`` keys is split into several
        commands sent together in one pipeline (one round trip), never one
        key at a time;
      * no exception escapes a batch call for a server-side or connection
        failure: it is reported in the result (see each method).

    Keys may be ``str`` (UTF-8 encoded) or ``bytes``; values are ``bytes``.
    Thread-safe: redis-py's connection pool hands each call its own
    connection.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: Optional[str] = None,
        batch_size: int = 512,
        socket_timeout: Optional[float] = 30.0,
        max_connections: Optional[int] = None,
    ) -> None:
        """Connect lazily to ``url`` ("redis://[:password@]host:port[/db]") or
        to host/port. ``batch_size`` bounds the keys of one command."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        kwargs = dict(socket_timeout=socket_timeout, max_connections=max_connections)
        if url is not None:
            self._pool = redis.ConnectionPool.from_url(url, **kwargs)
        else:
            self._pool = redis.ConnectionPool(host=host, port=port, db=db, password=password,
                                              **kwargs)
        self._r = redis.Redis(connection_pool=self._pool)

    # ---------------------------------------------------------------- batch

    def put_batch(self, keys: Sequence[Key], values: Sequence[bytes]) -> int:
        """Stores every pair (MSET per batch). Returns 0 when all were
        stored, else a negative code: -1 bad arguments, -2 a node was
        unavailable (some keys may be stored), -3 out of memory, -4 other."""
        if len(keys) != len(values):
            return ERR_INVALID
        if not keys:
            return OK
        try:
            pipe = self._r.pipeline(transaction=False)
            for part in _chunks(len(keys), self.batch_size):
                args = []
                for i in part:
                    args.append(keys[i])
                    args.append(values[i])
                pipe.execute_command("MSET", *args)
            results = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError):
            return ERR_UNAVAILABLE
        except (redis.DataError, TypeError):
            return ERR_INVALID
        worst = OK
        for r in results:
            if isinstance(r, Exception):
                msg = str(r)
                if msg.startswith("OOM"):
                    code = ERR_NO_MEMORY
                elif "unavailable" in msg:
                    code = ERR_UNAVAILABLE
                else:
                    code = ERR_INTERNAL
                worst = min(worst, code)
        return worst

    def get_batch(self, keys: Sequence[Key]) -> List[bytes]:
        """Values aligned with ``keys``; ``b""`` for a key that is missing
        or whose node could not answer (MGET per batch)."""
        if not keys:
            return []
        try:
            pipe = self._r.pipeline(transaction=False)
            for part in _chunks(len(keys), self.batch_size):
                pipe.execute_command("MGET", *[keys[i] for i in part])
            results = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError, redis.DataError, TypeError):
            return [b""] * len(keys)
        out: List[bytes] = []
        for part, r in zip(_chunks(len(keys), self.batch_size), results):
            if isinstance(r, Exception) or not isinstance(r, list):
                out.extend([b""] * len(part))
            else:
                out.extend(v if v is not None else b"" for v in r)
        return out

    def batch_is_exist(self, keys: Sequence[Key]) -> List[int]:
        """1 present, 0 absent, -1 its node could not answer, aligned with
        ``keys``: one POOL MEXISTS per batch, all in one round trip. The
        check never refreshes a TTL or changes eviction order."""
        if not keys:
            return []
        try:
            pipe = self._r.pipeline(transaction=False)
            for part in _chunks(len(keys), self.batch_size):
                pipe.execute_command("POOL", "MEXISTS", *[keys[i] for i in part])
            results = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError, redis.DataError, TypeError):
            return [-1] * len(keys)
        out: List[int] = []
        for part, r in zip(_chunks(len(keys), self.batch_size), results):
            if isinstance(r, Exception) or not isinstance(r, list) or len(r) != len(part):
                out.extend([-1] * len(part))
            else:
                out.extend(int(x) for x in r)
        return out

    # ----------------------------------------------------------- single key

    def put(self, key: Key, value: bytes) -> int:
        """Stores one value; 0 or a negative code as put_batch."""
        return self.put_batch([key], [value])

    def get(self, key: Key) -> bytes:
        """The value, or ``b""`` if missing or unreachable."""
        return self.get_batch([key])[0]

    def is_exist(self, key: Key) -> int:
        """1 present, 0 absent, -1 unknown (its node could not answer)."""
        return self.batch_is_exist([key])[0]

    def remove(self, key: Key) -> int:
        """Deletes the key: 0 if it was removed or absent, negative if its
        node could not answer."""
        try:
            self._r.execute_command("DEL", key)
            return OK
        except (redis.ConnectionError, redis.TimeoutError):
            return ERR_UNAVAILABLE
        except redis.ResponseError as e:
            return ERR_UNAVAILABLE if "unavailable" in str(e) else ERR_INTERNAL

    def close(self) -> None:
        """Closes every connection; the store must not be used after."""
        self._pool.disconnect()

    def __enter__(self) -> "KVPoolStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
