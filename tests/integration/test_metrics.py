"""/metrics (metrics-port) scraped from every node of a pool and parsed with
the Prometheus text parser (python3-prometheus-client): redis_exporter's
series names with the values INFO reports, per-peer pool series, and every
series deploy/grafana-dashboard.json uses is exported (issue 18)."""

import json
import os
import re
import socket
import urllib.request

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from conftest import HOST, Pool, ServerProcess, pick_free_ports, running

pytestmark = [pytest.mark.kvpool_only, pytest.mark.own_pool]

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "grafana-dashboard.json")


def scrape(port: int) -> dict:
    """{sample name: {frozenset(labels): value}} of one node's /metrics."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


@pytest.fixture(scope="module")
def pool():
    ports = pick_free_ports(3)
    p = Pool(3, name="metrics", node_args={i: ["--metrics-port", str(ports[i])] for i in range(3)})
    p.metrics_ports = ports
    yield from running(p)


def test_redis_exporter_series_match_info(pool):
    c = pool[0].client()
    c.flushall()
    c.mset({f"m{i}": "v" for i in range(100)})
    for i in range(5):
        c.get(f"m{i}")
    with pytest.raises(redis.ResponseError):
        c.execute_command("GET")
    m = scrape(pool.metrics_ports[0])
    cs = c.info("commandstats")
    assert m["redis_up"][frozenset()] == 1
    get = frozenset({("cmd", "get")})
    assert m["redis_commands_total"][get] == cs["cmdstat_get"]["calls"]
    assert m["redis_commands_rejected_calls_total"][get] == 1
    assert m["redis_commands_duration_seconds_total"][get] * 1e6 == pytest.approx(cs["cmdstat_get"]["usec"], abs=1)
    assert m["redis_errors_total"][frozenset({("err", "ERR")})] >= 1
    p99 = m["redis_latency_percentiles_usec"][frozenset({("cmd", "get"), ("quantile", "0.99")})]
    assert p99 > 0
    # Keys per node: this node's own share of the pool's 100.
    total = sum(scrape(p)["redis_db_keys"][frozenset({("db", "db0")})] for p in pool.metrics_ports)
    assert total == 100
    info = m["redis_instance_info"]
    (labels,) = info.keys()
    assert dict(labels)["redis_mode"] == "cluster" and dict(labels)["redis_version"].startswith("7.")


def test_pool_peer_series(pool):
    m = scrape(pool.metrics_ports[0])
    up = m["kvpool_pool_peer_up"]
    addrs = {dict(l)["addr"] for l in up}
    assert addrs == {f"{n.host}:{n.port}" for n in pool.nodes[1:]}
    assert all(v == 1 for v in up.values())
    assert sum(m["kvpool_pool_peer_calls_total"].values()) > 0


TCP_TRANSPORT_COUNTERS = ["frames_sent", "frames_tagged", "frames_refused", "connections"]


def test_pool_transport_counters_in_info_and_metrics(pool):
    """The transport's own counters (TCP: frames, their MAC, links): INFO pool
    pool_transport_<name> and the counter kvpool_pool_transport_<name>_total
    on every node, equal, and moving with traffic."""
    def both(i):
        info = pool[i].client().info("pool")
        m = scrape(pool.metrics_ports[i])
        return ({n: info.get("pool_transport_" + n) for n in TCP_TRANSPORT_COUNTERS},
                {n: m.get(f"kvpool_pool_transport_{n}_total", {}).get(frozenset()) for n in TCP_TRANSPORT_COUNTERS})

    with urllib.request.urlopen(f"http://{HOST}:{pool.metrics_ports[0]}/metrics", timeout=5) as r:
        families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
    for n in TCP_TRANSPORT_COUNTERS:
        fam = families[f"kvpool_pool_transport_{n}"]  # the parser drops _total from a counter's name
        assert fam.type == "counter" and fam.documentation.startswith("tcp: "), (n, fam.type, fam.documentation)
    # Links are made per I/O thread on first use, each with an untagged
    # handshake: this client's traffic once first, so the links it takes exist.
    c = pool[0].client()

    def traffic():
        c.mset({f"t{i}": "v" * 1000 for i in range(200)})
        assert len(c.mget([f"t{i}" for i in range(200)])) == 200

    traffic()
    before = {}
    for i in range(3):
        info, metrics = both(i)
        assert None not in info.values() and None not in metrics.values(), (i, info, metrics)
        # A scrape comes after INFO: never less, and each node sees its two peers' links.
        assert all(metrics[n] >= info[n] for n in TCP_TRANSPORT_COUNTERS), (i, info, metrics)
        assert info["connections"] >= 2 and info["frames_refused"] == 0, (i, info)
        assert 0 < info["frames_tagged"] < info["frames_sent"], (i, info)  # handshakes go untagged
        before[i] = info
    traffic()
    after, _ = both(0)
    assert after["frames_sent"] > before[0]["frames_sent"]
    assert after["frames_tagged"] - before[0]["frames_tagged"] == after["frames_sent"] - before[0]["frames_sent"]
    assert after["frames_refused"] == 0


def test_every_dashboard_series_is_exported(pool):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    named = set()
    for e in exprs:
        named |= set(re.findall(r"\b((?:redis|kvpool)_[a-z0-9_]+)", e))
    assert len(named) >= 15, named
    c = pool[0].client()
    c.set("x", "1")
    c.get("x")
    try:
        c.execute_command("GET")
    except redis.ResponseError:
        pass
    exported = set()
    for port in pool.metrics_ports:
        exported |= set(scrape(port))
    missing = sorted(named - exported)
    assert not missing, f"the dashboard names series no node exports: {missing}"


def test_default_metrics_port_9121_or_off_when_taken():
    """metrics-port's default (-1): /metrics on 9121, redis_exporter's port,
    when it is free; when it is taken the node still starts, says so in its
    log and serves without /metrics. The suite's other servers run with
    --metrics-port 0 (conftest), so nothing else holds 9121 here."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((HOST, 9121))
    holder.listen(1)
    try:
        taken = ServerProcess(name="metrics-taken")
        taken.default_metrics = True
        taken.start()
        try:
            assert taken.client().ping()
            assert "/metrics is off" in taken.log_tail(50), taken.log_tail(50)
        finally:
            taken.stop()
    finally:
        holder.close()
    srv = ServerProcess(name="metrics-default")
    srv.default_metrics = True
    srv.start()
    try:
        m = scrape(9121)
        assert m["redis_up"][frozenset()] == 1
        labels = next(iter(m["redis_instance_info"]))
        assert ("tcp_port", str(srv.port)) in labels, labels
    finally:
        srv.stop()
