"""Runs the hiredis C++ client check (tests/clients/hiredis_client.cc).

The binary comes from KVPOOL_HIREDIS_CLIENT (CMake target `hiredis_client`).
Against kvpool a missing binary is a failure, not a skip. In reference mode
(KVPOOL_REFERENCE=redis) the MEXISTS run is skipped like every kvpool_only
test, and if the variable is unset the client is compiled here with g++ so
the MSET/MGET part is still checked against redis-server.
"""

import os
import shutil
import subprocess

import pytest

REFERENCE = os.environ.get("KVPOOL_REFERENCE", "").lower() == "redis"
SOURCE = os.path.join(os.path.dirname(__file__), "..", "clients", "hiredis_client.cc")


def _compile(out_dir: str) -> str:
    gxx = shutil.which("g++")
    if not gxx:
        pytest.skip("reference mode: KVPOOL_HIREDIS_CLIENT unset and no g++ to build the client")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "hiredis"], capture_output=True, text=True)
    if flags.returncode != 0:
        pytest.skip("reference mode: KVPOOL_HIREDIS_CLIENT unset and hiredis not found by pkg-config")
    binary = os.path.join(out_dir, "hiredis_client")
    proc = subprocess.run([gxx, "-std=c++20", "-O1", "-Wall", "-Wextra", "-o", binary, SOURCE] + flags.stdout.split(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"compiling {SOURCE} failed:\n{proc.stderr}"
    return binary


@pytest.fixture(scope="module")
def hiredis_client(tmp_path_factory):
    path = os.environ.get("KVPOOL_HIREDIS_CLIENT")
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            pytest.fail(f"KVPOOL_HIREDIS_CLIENT={path} is not an executable file; build the `hiredis_client` target")
        return path
    if REFERENCE:
        return _compile(str(tmp_path_factory.mktemp("hiredis")))
    pytest.fail("KVPOOL_HIREDIS_CLIENT is not set: build the CMake target `hiredis_client` "
                "(tests/clients) and set KVPOOL_HIREDIS_CLIENT to its path")


def run_client(binary, server, *extra):
    argv = [binary, server.host, str(server.port)]
    if server.password is not None:
        argv += ["--password", server.password]
    proc = subprocess.run(argv + list(extra), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"hiredis_client exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    assert proc.stdout.startswith("OK: "), proc.stdout
    return proc.stdout


@pytest.mark.kvpool_only
def test_hiredis_mset_mget_mexists(hiredis_client, server, r):
    run_client(hiredis_client, server)
    assert r.dbsize() == 0, "the client deletes every key it wrote"


def test_hiredis_mset_mget(hiredis_client, server, r):
    assert "MEXISTS skipped" in run_client(hiredis_client, server, "--no-mexists")


@pytest.mark.kvpool_only
def test_hiredis_with_password(hiredis_client, server_factory):
    srv = server_factory("--requirepass", "hpass", name="hiredis-auth")
    run_client(hiredis_client, srv)
