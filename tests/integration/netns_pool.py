"""A pool whose nodes each run in a network namespace of their own.

The namespaces hang off one bridge on the host (a veth pair each), every
node at its own address on a private /24, so a node can be partitioned from
the others while every process keeps running: isolate(i) (blackhole routes
between it and its peers; clients on the host still reach it) or cut(i)
(its link down: unreachable from the host too), undone by rejoin / mend.

Needs root, ip(8) and permission to make namespaces: `can_netns()` says
whether this environment allows it (CI runs as root).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

from conftest import EXTRA_SERVER_ARGS, SERVER_BINARY, Pool, ServerProcess, stop_all

_POOLS = itertools.count()


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _free_net(tag: int) -> str:
    """A 10.232.X prefix whose /24 no interface uses yet, starting from the
    pool's tag: pytest-xdist workers (other pids) build pools at the same time."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=10).stdout
    for k in range(200):
        net = f"10.232.{(tag + k) % 200 + 20}"
        if f" {net}." not in used:
            return net
    raise RuntimeError("no free 10.232.X.0/24 for a namespaced pool")


def can_netns() -> bool:
    """Root, ip(8), and namespaces this environment lets us make."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"kvprobe{os.getpid() % 100000}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
        return made.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class NsNode(ServerProcess):
    """A node running in its own network namespace, at its own address."""

    def __init__(self, ns: str, host: str, *extra_args: str, name: str):
        super().__init__(*extra_args, name=name)
        self.ns = ns
        self.host = host

    def argv(self) -> list[str]:
        return (["ip", "netns", "exec", self.ns, SERVER_BINARY, "--port", str(self.port), "--bind",
                 self.host, "--protected-mode", "no"] + EXTRA_SERVER_ARGS + self.extra_args +
                self.pool_args)


class NsPool(Pool):
    """Pool's interface (start, kill, restart, wait_state, ...) on namespaced
    nodes, plus cut(i) / mend(i). stop() also removes the namespaces."""

    PORT = 7001

    def __init__(self, n: int = 3, name: str = "ns", **opts):
        super().__init__(n, name=name, **opts)
        # Interface names are at most 15 characters: "kv" + 5 digits + 3.
        tag = (os.getpid() % 10000) * 10 + next(_POOLS) % 10
        self.net = _free_net(tag)
        self.bridge = f"kv{tag}br"
        self.nss = [f"kv{tag}n{i}" for i in range(n)]
        self.links = [f"kv{tag}h{i}" for i in range(n)]
        self.nodes = [NsNode(self.nss[i], f"{self.net}.{i + 1}", *self.extra_args,
                             name=f"{name}-n{i + 1}") for i in range(n)]
        for s in self.nodes:
            s.pool = self
        self._made = False

    @property
    def pool_nodes_arg(self) -> str:
        return " ".join(f"{s.host}:{self.PORT}" for s in self.nodes)

    def _make_network(self) -> None:
        self._made = True
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.net}.254/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i in range(self.n):
            ip("netns", "add", self.nss[i])
            ip("link", "add", self.links[i], "type", "veth", "peer", "name", "eth0",
               "netns", self.nss[i])
            ip("link", "set", self.links[i], "master", self.bridge)
            ip("link", "set", self.links[i], "up")
            ip("-n", self.nss[i], "addr", "add", f"{self.net}.{i + 1}/24", "dev", "eth0")
            ip("-n", self.nss[i], "link", "set", "eth0", "up")
            ip("-n", self.nss[i], "link", "set", "lo", "up")

    def start(self, wait_up: bool = True) -> "NsPool":
        self._make_network()
        self.ports = [self.PORT] * self.n
        for s in self.nodes:
            s.pool_args = ["--pool-nodes", self.pool_nodes_arg, "--pool-secret", self.secret]
            s.spawn(self.PORT)
        for s in self.nodes:
            s.wait_ready()
        if wait_up:
            self.wait_all_up()
        return self

    def isolate(self, i: int) -> None:
        """Node i and the other nodes stop hearing each other (blackhole
        routes both ways); clients on the host still reach every node."""
        for j in range(self.n):
            if j != i:
                ip("-n", self.nss[i], "route", "add", "blackhole", f"{self.nodes[j].host}/32")
                ip("-n", self.nss[j], "route", "add", "blackhole", f"{self.nodes[i].host}/32")

    def rejoin(self, i: int) -> None:
        for j in range(self.n):
            if j != i:
                ip("-n", self.nss[i], "route", "del", "blackhole", f"{self.nodes[j].host}/32")
                ip("-n", self.nss[j], "route", "del", "blackhole", f"{self.nodes[i].host}/32")

    def cut(self, i: int) -> None:
        """Node i stops hearing anyone (and being heard)."""
        ip("link", "set", self.links[i], "down")

    def mend(self, i: int) -> None:
        ip("link", "set", self.links[i], "up")

    def stop(self) -> None:
        stop_all(self.nodes)
        if not self._made:
            return
        # The host end first: a namespace outlives its deletion while its
        # sockets linger, and its veth pair with it.
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=10)
        for ns in self.nss:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=10)
