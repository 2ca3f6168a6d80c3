"""NCCL's protocol choice switches at the sizes its tuning tables say (src/graph/tuning.cc)."""

import pytest

from sparkgrad.comms.model.costs import predict
from sparkgrad.comms.model.topology import Topology
from sparkgrad.errors import ConfigError
from sparkgrad.simulate.protocols import bus_bandwidth, choose, protocol_time

NODE = Topology.parse("1x8-h100")
B = 370e9  # nvlink4: 450 GB/s x 370/450
# ring all_reduce on 8 ranks: 14 steps, 2 * 7/8 of the bytes cross each link
LAT = {"LL": 3.6 + 14 * 0.47, "LL128": 10.0 + 14 * 1.9, "Simple": 8.4 + 14 * 3.4}  # us
BW = {"LL": B / 4, "LL128": B * 0.92, "Simple": B}


def crossover(p: str, q: str) -> float:
    """The size where ring/p and ring/q take equally long: the latencies' gap over the slopes'."""
    return (LAT[q] - LAT[p]) * 1e-6 / (1.75 * (1 / BW[p] - 1 / BW[q]))


@pytest.mark.parametrize("p, q", [("LL", "LL128"), ("LL128", "Simple")])
def test_ring_protocols_cross_where_the_tables_say(p, q):
    size = crossover(p, q)
    below, above = size * 0.98, size * 1.02
    t = lambda proto, s: protocol_time("all_reduce", "ring", proto, s, 8, NODE)  # noqa: E731
    assert t(p, below) < t(q, below)
    assert t(q, above) < t(p, above)
    assert t(p, size) == pytest.approx(t(q, size), rel=1e-9)


def test_tuner_moves_from_ll128_to_simple_near_47_mb():
    size = crossover("LL128", "Simple")
    assert 40e6 < size < 55e6  # ~47 MB with these tables
    low, high = (
        choose("all_reduce", size * 0.95, 8, NODE),
        choose("all_reduce", size * 1.05, 8, NODE),
    )
    assert (low.algorithm, low.protocol) == ("ring", "LL128")
    assert (high.algorithm, high.protocol) == ("ring", "Simple")
    assert "beats" in high.reason


def test_tiny_all_reduce_picks_tree_ll():
    c = choose("all_reduce", 1024, 8, NODE)
    # tree/LL: 4.4 + 2 * log2(8) * 0.52 us of latency; ring/LL 10.18 us
    assert (c.algorithm, c.protocol) == ("tree", "LL")
    assert c.seconds == pytest.approx((4.4 + 6 * 0.52) * 1e-6 + 2 * 1024 / (B * 0.9 / 3.8))


def test_ll128_needs_nvlink_only():
    two = Topology.parse("2x8-h100")
    protos = {choose("all_reduce", s, 16, two).protocol for s in (1e3, 1e5, 1e7, 1e9)}
    assert "LL128" not in protos


def test_large_ring_reaches_nccl_tests_busbw():
    c = choose("all_reduce", 2**31, 8, NODE)
    assert bus_bandwidth(c) / 1e9 == pytest.approx(368.0, abs=1.0)


def test_nccl_proto_restricts(monkeypatch):
    monkeypatch.setenv("NCCL_PROTO", "Simple")
    assert choose("all_reduce", 1024, 8, NODE).protocol == "Simple"
    monkeypatch.setenv("NCCL_PROTO", "^LL,LL128")
    assert choose("all_reduce", 1024, 8, NODE).protocol == "Simple"
    monkeypatch.setenv("NCCL_PROTO", "fast")
    with pytest.raises(ConfigError, match="NCCL_PROTO"):
        choose("all_reduce", 1024, 8, NODE)


def test_loopback_uses_the_measured_link():
    local = Topology.local(2)
    c = choose("all_reduce", 1 << 20, 2, local)
    assert c.protocol == "Simple" and "loopback" in c.reason
    assert c.seconds == predict("all_reduce", "ring", 1 << 20, 2, local)
    assert choose("all_reduce", 1 << 20, 1, local).seconds == 0.0


def test_ring_across_nodes_is_bound_by_the_nics_of_a_node():
    # NCCL's flat ring: each channel leaves a node once, so a node's 8 NICs carry what one
    # rank sends; the ring runs at min(NVLink, 8 x NIC) = min(370, 8 x 45) GB/s on H100s
    two = Topology.parse("2x8-h100")
    size = 2**33
    t = protocol_time("all_reduce", "ring", "Simple", size, 16, two)
    latency = 1.9 * (8.4 + 28 * 3.4 + 2 * 9.6) * 1e-6  # 30 steps, 2 across; the plateau x1.9
    assert t == pytest.approx(latency + 2 * 15 / 16 * size / (8 * 45e9), rel=1e-9)
    # one rank per node (a data-parallel group strided across nodes): its own NIC only
    one_per_node = Topology(ranks_per_node=1, intra=two.intra, inter=two.inter, nodes=4)
    t1 = protocol_time("all_reduce", "ring", "Simple", size, 4, one_per_node)
    assert t1 == pytest.approx(1.9 * (8.4 + 6 * 9.6) * 1e-6 + 1.5 * size / 45e9, rel=1e-9)


def test_nccl_algo_restricts_the_algorithm(monkeypatch):
    assert choose("all_reduce", 1024, 8, NODE).algorithm == "tree"
    monkeypatch.setenv("NCCL_ALGO", "ring")
    assert choose("all_reduce", 1024, 8, NODE).algorithm == "ring"
    monkeypatch.setenv("NCCL_ALGO", "^ring")
    assert choose("all_reduce", 2**30, 8, NODE).algorithm == "tree"
