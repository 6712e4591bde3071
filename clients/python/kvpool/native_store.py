"""DistributedStore: Mooncake Store's Python API on kvpool's native client.

A drop-in for ``mooncake.store.MooncakeDistributedStore`` where an engine
uses it for its KV cache (SGLang HiCache, vLLM's Mooncake connector)::

    from kvpool import DistributedStore
    store = DistributedStore()
    store.setup("", "", master_server_addr="127.0.0.1:6379")   # any node
    store.register_buffer(ptr, size)
    store.batch_put_from(keys, ptrs, sizes)      # [0, 0, ...]
    store.batch_get_into(keys, ptrs, sizes)      # [bytes read | code, ...]

Each key goes straight to the node that owns it (the pool's CLUSTER SLOTS),
all nodes in parallel; a value read is received from the socket straight
into the destination, and a value written is sent from the source without a
copy. The GIL is released while the nodes are talked to. Results are one
integer per key: bytes or 0 on success, else one of Mooncake's codes
(``OBJECT_NOT_FOUND`` -704, ``BUFFER_OVERFLOW`` -10, ``NO_AVAILABLE_HANDLE``
-200 for a node out of memory, ``INVALID_PARAMS`` -600, ``RPC_FAIL`` -900 for
a node that cannot be reached, ``INTERNAL_ERROR`` -1).

What ``setup``'s arguments mean here: ``master_server_addr`` is the address
of any kvpool node, ``"host:port"`` or ``"redis://[[user]:password@]host:port"``
(Mooncake's default master port 50051 is not ours: give the node's);
``metadata_server`` is used instead when it is a ``redis://`` URL and
``master_server_addr`` is empty. ``local_hostname``,
``global_segment_size``, ``local_buffer_size``, ``protocol`` and
``rdma_devices`` are accepted and ignored: the pool's nodes own all memory
and move values among themselves; this client contributes none.
``register_buffer`` records the range (a call fails for an overlapping or
empty one) but a transfer does not require it over TCP.
"""

from __future__ import annotations

import threading
from typing import List, Optional, Sequence, Tuple, Union
from urllib.parse import urlparse

from kvpool import _native

OK = _native.OK
INTERNAL_ERROR = _native.INTERNAL_ERROR
BUFFER_OVERFLOW = _native.BUFFER_OVERFLOW
NO_AVAILABLE_HANDLE = _native.NO_AVAILABLE_HANDLE
INVALID_PARAMS = _native.INVALID_PARAMS
OBJECT_NOT_FOUND = _native.OBJECT_NOT_FOUND
RPC_FAIL = _native.RPC_FAIL

Key = Union[str, bytes]


class BatchResult(int):
    """``put_batch``'s result: 0, or the worst code of its keys, as Mooncake
    returns it; ``.results`` holds each key's own code, aligned with keys."""

    results: List[int]

    def __new__(cls, code: int, results: List[int]) -> "BatchResult":
        r = super().__new__(cls, code)
        r.results = results
        return r


def parse_address(addr: str) -> Tuple[str, int, str, str]:
    """``host:port`` or ``redis://[[user]:password@]host[:port]`` ->
    (host, port, user, password)."""
    if "://" in addr:
        u = urlparse(addr)
        if u.scheme not in ("redis", "tcp"):
            raise ValueError(f"unsupported scheme in {addr!r}")
        return u.hostname or "127.0.0.1", u.port or 6379, u.username or "", u.password or ""
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr or "127.0.0.1", 6379, "", ""
    return host.strip("[]") or "127.0.0.1", int(port), "", ""


def _as_buffer(obj):
    """A buffer-protocol view of ``obj`` without a copy: torch tensors (which
    have no buffer protocol; any dtype, bf16 included) are viewed as their
    bytes through numpy; everything else is passed as it is."""
    if hasattr(obj, "data_ptr") and hasattr(obj, "is_contiguous"):
        if obj.device.type != "cpu" or not obj.is_contiguous():
            raise BufferError("a tensor must be a contiguous CPU tensor")
        return obj.detach().reshape(-1).view(dtype=_torch_uint8(obj)).numpy()
    return obj


def _torch_uint8(t):
    import torch
    return torch.uint8


class DistributedStore:
    """See the module docstring. Thread-safe: calls from several threads
    run in parallel, each on connections of its own."""

    def __init__(self) -> None:
        self._c: Optional[_native.Client] = None
        self._buffers: dict = {}  # ptr -> size
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def setup(self, local_hostname: str = "", metadata_server: str = "",
              global_segment_size: int = 0, local_buffer_size: int = 0,
              protocol: str = "tcp", rdma_devices: str = "",
              master_server_addr: str = "127.0.0.1:6379", *,
              timeout_ms: int = 30000, direct: bool = True) -> int:
        """Connects to a node and learns the slot map. 0, or RPC_FAIL when
        the node cannot be reached (or refused AUTH), INVALID_PARAMS for an
        address that cannot be read. ``direct=False`` sends every key to
        that node, which routes it (what the pure-Python client does)."""
        addr = master_server_addr
        if not addr and metadata_server.startswith("redis://"):
            addr = metadata_server
        try:
            host, port, user, password = parse_address(addr)
        except ValueError:
            return INVALID_PARAMS
        try:
            self._c = _native.Client(host, port, user, password, timeout_ms, direct)
        except ValueError:
            return RPC_FAIL
        return OK

    def init_all(self, protocol: str = "tcp", device_name: str = "",
                 mount_segment_size: int = 0) -> int:
        """Mooncake's second setup step: nothing to do here."""
        return OK if self._c is not None else RPC_FAIL

    def close(self) -> int:
        self._c = None
        self._buffers.clear()
        return OK

    def __enter__(self) -> "DistributedStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def native(self) -> _native.Client:
        if self._c is None:
            raise RuntimeError("DistributedStore: call setup() first")
        return self._c

    # -------------------------------------------------------------- buffers

    def register_buffer(self, ptr: int, size: int) -> int:
        if ptr <= 0 or size <= 0:
            return INVALID_PARAMS
        with self._lock:
            for p, n in self._buffers.items():
                if ptr < p + n and p < ptr + size:
                    return INVALID_PARAMS
            self._buffers[ptr] = size
        return OK

    def unregister_buffer(self, ptr: int) -> int:
        with self._lock:
            return OK if self._buffers.pop(ptr, None) is not None else INVALID_PARAMS

    # ----------------------------------------------------- zero-copy batches

    def batch_get_into(self, keys: Sequence[Key], ptrs: Sequence[int],
                       sizes: Sequence[int]) -> List[int]:
        if len(keys) != len(ptrs) or len(keys) != len(sizes):
            return [INVALID_PARAMS] * len(keys)
        return self.native.get_into(keys, ptrs, sizes) if keys else []

    def batch_put_from(self, keys: Sequence[Key], ptrs: Sequence[int],
                       sizes: Sequence[int], config=None) -> List[int]:
        if len(keys) != len(ptrs) or len(keys) != len(sizes):
            return [INVALID_PARAMS] * len(keys)
        return self.native.put_from(keys, ptrs, sizes) if keys else []

    def batch_get_into_multi_buffers(self, keys: Sequence[Key],
                                     all_ptrs: Sequence[Sequence[int]],
                                     all_sizes: Sequence[Sequence[int]],
                                     prefer_same_node: bool = True) -> List[int]:
        if len(keys) != len(all_ptrs) or len(keys) != len(all_sizes):
            return [INVALID_PARAMS] * len(keys)
        return self.native.get_into_multi(keys, all_ptrs, all_sizes) if keys else []

    def batch_put_from_multi_buffers(self, keys: Sequence[Key],
                                     all_ptrs: Sequence[Sequence[int]],
                                     all_sizes: Sequence[Sequence[int]],
                                     config=None) -> List[int]:
        if len(keys) != len(all_ptrs) or len(keys) != len(all_sizes):
            return [INVALID_PARAMS] * len(keys)
        return self.native.put_from_multi(keys, all_ptrs, all_sizes) if keys else []

    def get_into(self, key: Key, ptr: int, size: int) -> int:
        return self.batch_get_into([key], [ptr], [size])[0]

    def put_from(self, key: Key, ptr: int, size: int, config=None) -> int:
        return self.batch_put_from([key], [ptr], [size])[0]

    # ------------------------------------------------- buffer objects, bytes

    def batch_get_into_buffers(self, keys: Sequence[Key], buffers: Sequence) -> List[int]:
        """Reads each key into a writable buffer object (bytearray,
        memoryview, numpy array, CPU torch tensor): bytes read or a code."""
        if len(keys) != len(buffers):
            return [INVALID_PARAMS] * len(keys)
        return self.native.get_into_buffers(keys, [_as_buffer(b) for b in buffers]) if keys else []

    def batch_put_from_buffers(self, keys: Sequence[Key], buffers: Sequence) -> List[int]:
        """Stores each key from a buffer object (bytes, bytearray,
        memoryview, numpy array, CPU torch tensor)."""
        if len(keys) != len(buffers):
            return [INVALID_PARAMS] * len(keys)
        return self.native.put_from_buffers(keys, [_as_buffer(b) for b in buffers]) if keys else []

    def put_batch(self, keys: Sequence[Key], values: Sequence) -> BatchResult:
        """Stores each value (any buffer object: bytes, bytearray,
        memoryview, numpy array). 0 when all were stored, else the worst
        code; ``.results`` tells which keys failed."""
        if len(keys) != len(values):
            return BatchResult(INVALID_PARAMS, [INVALID_PARAMS] * len(keys))
        try:
            results = self.batch_put_from_buffers(keys, values)
        except (TypeError, BufferError):
            return BatchResult(INVALID_PARAMS, [INVALID_PARAMS] * len(keys))
        return BatchResult(min(results, default=OK), results)

    def put(self, key: Key, value, config=None) -> int:
        return self.put_batch([key], [value])

    def get_batch(self, keys: Sequence[Key]) -> List[bytes]:
        """Values aligned with keys; ``b""`` for one missing or unreadable
        (Mooncake's convention). Two round trips: sizes, then the bytes."""
        if not keys:
            return []
        sizes = self.native.size(keys)
        bufs = [bytearray(max(n, 0)) for n in sizes]
        got = self.native.get_into_buffers(keys, bufs)
        out: List[bytes] = []
        for i, n in enumerate(got):
            if n == BUFFER_OVERFLOW:  # it grew in between: read it alone
                size = self.native.size([keys[i]])[0]
                if size > 0:
                    b = bytearray(size)
                    if self.native.get_into_buffers([keys[i]], [b])[0] == size:
                        out.append(bytes(b))
                        continue
                out.append(b"")
            else:
                out.append(bytes(bufs[i][:n]) if n >= 0 else b"")
        return out

    def get(self, key: Key) -> bytes:
        return self.get_batch([key])[0]

    # ------------------------------------------------------------- metadata

    def batch_is_exist(self, keys: Sequence[Key]) -> List[int]:
        """1 present, 0 absent, negative when its node could not answer."""
        return self.native.exists(keys) if keys else []

    def is_exist(self, key: Key) -> int:
        return self.batch_is_exist([key])[0]

    def batch_get_size(self, keys: Sequence[Key]) -> List[int]:
        return self.native.size(keys) if keys else []

    def get_size(self, key: Key) -> int:
        """The value's size in bytes, or OBJECT_NOT_FOUND."""
        return self.batch_get_size([key])[0]

    def batch_remove(self, keys: Sequence[Key]) -> List[int]:
        """0 removed, OBJECT_NOT_FOUND if it was not there, or a code."""
        return self.native.remove(keys) if keys else []

    def remove(self, key: Key) -> int:
        return self.batch_remove([key])[0]

    def remove_all(self) -> int:
        """Removes every key of the pool; how many there were, or a code."""
        return self.native.remove_all()

    def last_error(self) -> str:
        return self.native.last_error() if self._c is not None else ""


MooncakeDistributedStore = DistributedStore
