"""The pool over RDMA really uses RDMA (issue 4). Runs in the RDMA job
(tests/rdma/run.sh: the Soft-RoCE guest, or a machine with an RDMA device),
where KVPOOL_POOL_TRANSPORT=rdma makes every pool start with `--transport
rdma --transport-fallback no`; the rest of the pool suite runs there too.

A silent fall back to TCP must fail: INFO's pool section must name rdma as
every peer's transport, and the counters of one-sided operations must move
when values cross nodes.
"""

from __future__ import annotations

import pytest

from conftest import POOL_TRANSPORT, Pool, stop_all

pytestmark = [
    pytest.mark.kvpool_only,
    pytest.mark.skipif(POOL_TRANSPORT != "rdma",
                       reason="needs RDMA verbs: runs in the RDMA job (tests/rdma/run.sh)"),
]


def peers(info_pool: dict) -> dict:
    return {k: v for k, v in info_pool.items() if k.startswith("peer")}


def test_values_move_one_sided_over_rdma():
    p = Pool(3, name="rdma")
    p.start()
    try:
        c1, c2 = p[0].client(), p[1].client()
        keys = [f"rdma:{i}".encode() for i in range(300)]
        vals = [bytes([i % 256]) * (1000 + 37 * i) for i in range(300)]
        big = bytes(range(256)) * (8 * 1024 * 1024 // 256)  # larger than a staging buffer
        assert c1.mset(dict(zip(keys, vals)))
        assert c1.set(b"rdma:big", big)
        assert c2.mget(keys) == vals
        assert c2.get(b"rdma:big") == big
        # Values larger than a call carries (a staging buffer, 4 MiB) move in
        # chunks: MSET's kOpPutBegin/PutChunk/PutEnd, MGET's kOpGetChunk,
        # a whole command's argument sent ahead and its reply fetched in
        # chunks (kOpArgChunk, kOpReplyChunk), on every node pair.
        chunked = {f"rdma:chunked:{i}".encode(): bytes([(i * 7 + j) % 251 for j in range(251)])
                   * ((9 * 1024 * 1024 + 13 * i) // 251) for i in range(3)}
        assert c2.mset(chunked)
        assert c1.mget(list(chunked)) == list(chunked.values())
        assert p[2].client().getrange(b"rdma:chunked:1", 0, -1) == chunked[b"rdma:chunked:1"]
        assert p[2].client().set(b"rdma:chunked:0", big, get=True) == chunked[b"rdma:chunked:0"]
        assert c1.get(b"rdma:chunked:0") == big
        assert c2.execute_command("MEXISTS", *keys[:10], b"nope") == [1] * 10 + [0]

        for node in p.nodes:
            info = node.client().info("pool")
            assert info["transport"] == "rdma", info
            ps = peers(info)
            assert len(ps) == 2, info
            for name, peer in ps.items():
                assert peer["transport"] == "rdma", (name, peer)
        # Values crossed nodes: one-sided operations were posted. The owner
        # READs put values from the requester and WRITEs get values to it.
        writes = reads = 0
        for node in p.nodes:
            for peer in peers(node.client().info("pool")).values():
                writes += int(peer["rdma_writes"])
                reads += int(peer["rdma_reads"])
        assert writes > 0 and reads > 0, (writes, reads)
        # The RDMA transport's own counters (RdmaStats) reach INFO pool: the
        # pool has a secret, so its SENDs carry a MAC, and none was refused.
        for node in p.nodes:
            info = node.client().info("pool")
            assert info["pool_transport_segments_tagged"] > 0, info
            assert info["pool_transport_connections"] >= 2, info
            assert info["pool_transport_segments_refused"] == 0, info
    finally:
        stop_all(p.nodes)
