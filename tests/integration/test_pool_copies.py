"""POOL COPIES key: per copy of the key's slot, primary first,
[address, state, version, digest].

On the default server (a single node, or node 1 of a pool without
replicas): one entry, the key's owner, in-sync; version and digest nil for
an absent key; the digest is kvhash64 (storage/util/digest.h), checked
against a Python rendering of it; wrong arity is the standard error. With
replicas: test_replicas.py.
"""

from __future__ import annotations

import pytest

from pool_util import copies, kvhash64
from util import err

pytestmark = pytest.mark.kvpool_only


def test_one_copy_without_replicas(server):
    c = server.client()
    value = b"copy me \x00\xff" * 5
    c.set("cp:one", value)
    owner = c.execute_command("POOL", "KEYNODE", "cp:one").decode()
    [entry] = copies(c, "cp:one")
    assert entry[0] == owner and entry[1] == "in-sync"
    assert isinstance(entry[2], int) and entry[2] > 0
    assert entry[3] == kvhash64(value)
    assert kvhash64(b"hello, world") == "31b4f7f220c0b92b"  # digest_test's vector
    c.delete("cp:one")
    assert copies(c, "cp:one") == [[owner, "in-sync", None, None]]
    raw = server.raw()
    assert err(raw, "POOL", "COPIES") == "ERR wrong number of arguments for 'pool|copies' command"
    assert err(raw, "POOL", "COPIES", "a", "b").startswith("ERR wrong number of arguments")
    assert any("POOL COPIES" in line.decode() for line in c.execute_command("POOL", "HELP"))
