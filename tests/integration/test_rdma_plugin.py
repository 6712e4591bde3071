"""RDMA libraries are loaded only when `transport rdma` is asked for (issue 18).

kvpool-server does not link libibverbs or librdmacm (ctest
server_needs_no_rdma checks its NEEDED entries and ldd); the RDMA transport
is libkvpool-rdma.so, which the server dlopens at start when `transport rdma`
is configured: from `rdma-plugin PATH`, else beside the executable, else in
the installed lib/kvpool directory.

- a plugin that cannot be loaded refuses the start, with transport-fallback
  yes too (it is an install or config error, not a machine without an RDMA
  device), and the error names the library and where it looked;
- the plugin the build put beside kvpool-server is found and loaded, and so
  is one in the installed layout's ../<libdir>/kvpool.

Over real RDMA the plugin carries the pool suites in the RDMA job
(tests/rdma/run.sh). These tests start their own processes, the same in
every mode (`own_pool`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import HOST, SERVER_BINARY, ServerProcess, pick_free_ports, stop_all

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]

PLUGIN = "libkvpool-rdma.so"


def pool_args(ports: list[int]) -> list[str]:
    # Two nodes, of which only the first runs: enough to make it set up its
    # transport at start.
    return ["--port", str(ports[0]), "--bind", HOST, "--maxmemory", "64mb",
            "--pool-nodes", " ".join(f"{HOST}:{p}" for p in ports), "--transport", "rdma"]


def refused_start(binary: str, *args: str) -> str:
    """Runs the server, which must exit non-zero at start; returns its output."""
    proc = subprocess.run([binary, *pool_args(pick_free_ports(2)), *args],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode != 0, f"the server started (exit {proc.returncode}):\n{out}"
    return out


def test_missing_plugin_refuses_to_start_naming_it(tmp_path):
    missing = str(tmp_path / "nowhere" / PLUGIN)
    for fallback in ("yes", "no"):
        out = refused_start(SERVER_BINARY, "--rdma-plugin", missing,
                            "--transport-fallback", fallback)
        assert "cannot load the RDMA transport plugin" in out, out
        assert missing in out, out
        assert "No such file" in out, out


def test_not_a_plugin_refuses_to_start(tmp_path):
    fake = tmp_path / PLUGIN
    fake.write_bytes(b"not an ELF file\n")
    out = refused_start(SERVER_BINARY, "--rdma-plugin", str(fake))
    assert str(fake) in out, out
    assert "cannot load the RDMA transport plugin" in out, out


def test_default_search_beside_the_server_then_in_the_install_libdir(tmp_path):
    # A copy of the server in a directory with no plugin beside it (and no
    # ../lib/.../kvpool): what a TCP-only install asked for rdma does.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    server = str(bin_dir / "kvpool-server")
    shutil.copy2(SERVER_BINARY, server)
    out = refused_start(server)
    assert f"{PLUGIN}: not found" in out, out
    m = re.search(r"looked for (\S+), (\S+)\)", out)
    assert m, out
    assert m.group(1) == str(bin_dir / PLUGIN), out
    # The installed layout: the plugin in ../<libdir>/kvpool from the
    # executable is found there (and then fails only for want of an RDMA
    # device on the address, with transport-fallback no).
    installed = os.path.normpath(m.group(2))
    assert installed.startswith(str(tmp_path) + "/") and "/kvpool/" in installed, out
    os.makedirs(os.path.dirname(installed))
    shutil.copy2(os.path.join(os.path.dirname(SERVER_BINARY), PLUGIN), installed)
    out = refused_start(server, "--transport-fallback", "no")
    assert f"loaded the RDMA transport plugin {m.group(2)}" in out, out
    assert "transport rdma unavailable" in out, out


def test_plugin_beside_the_server_is_loaded():
    beside = os.path.join(os.path.dirname(SERVER_BINARY), PLUGIN)
    assert os.path.exists(beside), f"the build puts {PLUGIN} beside kvpool-server: {beside}"
    ports = pick_free_ports(2)
    s = ServerProcess("--maxmemory", "64mb", "--pool-nodes",
                      " ".join(f"{HOST}:{p}" for p in ports), "--transport", "rdma",
                      "--transport-fallback", "yes", name="rdma-plugin")
    s.spawn(ports[0])
    try:
        s.wait_ready()
        log = s.log_tail(400)
        assert f"loaded the RDMA transport plugin {beside}" in log, log
        # Without an RDMA device serving the address (CI hosts) the node fell
        # back to tcp; with one it runs rdma. Either way the plugin ran.
        assert s.client().info("pool")["transport"] in ("tcp", "rdma")
    finally:
        stop_all([s])
