"""The alpha-beta cost model, checked against arithmetic done by hand.

Every expected number below is worked out in the comment next to it from the textbook
formulas (Thakur, Rabenseifner & Gropp 2005; NCCL's tuner), never by calling the code.
The test link has alpha = 1 us, beta = 1 GB/s at 50% efficiency (so 5e8 bytes/s really
arrive) and gamma = 1 ns per reduced byte.
"""

from __future__ import annotations

import math

import pytest

from sparkgrad.comms.model import (
    ALGORITHMS,
    LINKS,
    Link,
    SimClock,
    Topology,
    bus_bandwidth_factor,
    calibrate,
    predict,
    select_algorithm,
)
from sparkgrad.comms.model.calibrate import Measurement
from sparkgrad.errors import ConfigError

LINK = Link("test", alpha=1e-6, beta=1e9, efficiency=0.5, gamma=1e-9)


def local(n: int) -> Topology:
    return Topology.local(n, link=LINK)


@pytest.fixture(autouse=True)
def _no_nccl_algo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NCCL_ALGO", raising=False)


# ---------------------------------------------------------------- closed forms, by hand
CASES = [
    # ring all_reduce, n=4, S=4000: 2*3 steps = 6 us; 2*3/4*4000 = 6000 B / 5e8 = 12 us;
    # reduce 3/4*4000 = 3000 B * 1 ns = 3 us  -> 21 us
    ("all_reduce", "ring", 4000, 4, 21e-6),
    # ring all_reduce, n=2, S=1000: 2 us + 1000 B / 5e8 = 2 us + 500 B * 1 ns = 0.5 us -> 4.5 us
    ("all_reduce", "ring", 1000, 2, 4.5e-6),
    # tree, n=8, S=1000: 2*log2(8) = 6 steps = 6 us; 2*1000 / 5e8 = 4 us; 1000 ns = 1 us -> 11 us
    ("all_reduce", "tree", 1000, 8, 11e-6),
    # tree, n=5: ceil(log2 5) = 3, so the same 11 us as n=8
    ("all_reduce", "tree", 1000, 5, 11e-6),
    # halving-doubling, n=8, S=8000: 6 us; 2*7/8*8000 = 14000 / 5e8 = 28 us; 7000 ns = 7 us -> 41
    ("all_reduce", "halving_doubling", 8000, 8, 41e-6),
    # halving-doubling, n=6 -> p=4 core: 4 steps, 2*3/4*8000 = 12000 B, 6000 B reduced;
    # fold in/out: +2 steps, +16000 B, +8000 B reduced -> 6 us + 28000/5e8 = 56 us + 14 us = 76
    ("all_reduce", "halving_doubling", 8000, 6, 76e-6),
    # binomial broadcast, n=5, S=1000: 3 rounds * (1 us + 1000/5e8 = 2 us) = 9 us
    ("broadcast", "binomial", 1000, 5, 9e-6),
    # chain broadcast, n=4, S=1000: one segment, 3 hops * (1 us + 2 us) = 9 us
    ("broadcast", "chain", 1000, 4, 9e-6),
    # chain broadcast, n=4, S=3 MiB: k=3 segments of 1 MiB, k+n-2 = 5 hops:
    # 5 us + 5 * 1048576 / 5e8 = 10485.76 us -> 10490.76 us
    ("broadcast", "chain", 3 * 2**20, 4, 10490.76e-6),
    # binomial reduce, n=4, S=1000: 2 rounds * (1 us + 2 us + 1000 B * 1 ns = 1 us) = 8 us
    ("reduce", "binomial", 1000, 4, 8e-6),
    # reduce_scatter ring, n=4, S=4000: 3 us + 3000/5e8 = 6 us + 3000 ns = 3 us -> 12 us
    ("reduce_scatter", "ring", 4000, 4, 12e-6),
    # all_gather ring, n=4, S=4000 (output): 3 us + 6 us -> 9 us
    ("all_gather", "ring", 4000, 4, 9e-6),
    # all_to_all direct, n=5, S=5000: 4 us + 4000/5e8 = 8 us -> 12 us
    ("all_to_all", "direct", 5000, 5, 12e-6),
    # send, S=1000: 1 us + 2 us = 3 us
    ("send", "p2p", 1000, 2, 3e-6),
    # barrier, n=8: 3 rounds of 1 us; n=5 still 3 rounds; n=1: nothing to wait for
    ("barrier", "dissemination", 0, 8, 3e-6),
    ("barrier", "dissemination", 0, 5, 3e-6),
    ("all_reduce", "ring", 4000, 1, 0.0),
]


@pytest.mark.parametrize("collective,algorithm,nbytes,nranks,expected", CASES)
def test_closed_form_matches_hand_arithmetic(collective, algorithm, nbytes, nranks, expected):
    got = predict(collective, algorithm, nbytes, nranks, local(nranks))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_every_listed_algorithm_has_a_cost():
    for collective, algorithms in ALGORITHMS.items():
        for algorithm in algorithms:
            assert predict(collective, algorithm, 1 << 20, 4, local(4)) > 0


def test_two_node_model_adds_latencies_and_takes_the_bottleneck_bandwidth():
    fast = Link("fast", alpha=1e-6, beta=1e9)  # inside a node
    slow = Link("slow", alpha=10e-6, beta=1e8)  # across nodes
    topo = Topology(ranks_per_node=2, intra=fast, inter=slow, nodes=2)
    # ring all_reduce of 4000 B on 2 nodes x 2 ranks:
    # intra (L=2, 4000 B): 2 steps = 2 us, 2*1/2*4000 = 4000 B / 1e9 = 4 us
    # inter (N=2, 4000/2 = 2000 B per rail): 2 steps = 20 us, 2000 B / 1e8 = 20 us
    # total = 2 + 20 + max(4, 20) = 42 us
    assert predict("all_reduce", "ring", 4000, 4, topo) == pytest.approx(42e-6, rel=1e-12)
    # a send between nodes pays the slow link: 10 us + 4000 / 1e8 = 40 us -> 50 us
    assert predict("send", "p2p", 4000, 4, topo) == pytest.approx(50e-6, rel=1e-12)
    # 2 ranks fit in one node: only the fast link is used (2 us + 4 us)
    assert predict("all_reduce", "ring", 4000, 2, topo) == pytest.approx(6e-6, rel=1e-12)


def test_shared_link_slows_every_flow_when_ranks_outnumber_cores():
    cpu = Link("cpu", alpha=1e-6, beta=1e9, concurrency=2)  # loopback on 2 cores
    # ring all_reduce, 4 ranks, 4000 B: 6 steps = 6 us; 2*3/4*4000 = 6000 B, but 4 flows
    # share 2 cores -> each at half speed: 12000 B / 1e9 = 12 us -> 18 us
    assert predict("all_reduce", "ring", 4000, 4, Topology.local(4, cpu)) == pytest.approx(18e-6)
    # 2 ranks on 2 cores: no sharing, 2 us + 4000 / 1e9 = 4 us -> 6 us
    assert predict("all_reduce", "ring", 4000, 2, Topology.local(2, cpu)) == pytest.approx(6e-6)
    # a send is one flow: 1 us + 4 us
    assert predict("send", "p2p", 4000, 4, Topology.local(4, cpu)) == pytest.approx(5e-6)


def test_h100_node_ring_all_reduce_busbw_near_published_nccl_tests():
    """nccl-tests all_reduce_perf on 8 x H100 (NVLink4) reports ~370 GB/s busbw at 1+ GiB."""
    topo = Topology.parse("1x8-h100")
    size = 1 << 30
    seconds = predict("all_reduce", "ring", size, 8, topo)
    busbw = size / seconds * 2 * 7 / 8  # nccl-tests: busbw = algbw * 2(n-1)/n
    assert busbw == pytest.approx(370e9, rel=0.10)
    assert bus_bandwidth_factor("all_reduce", 8) == 2 * 7 / 8


# ---------------------------------------------------------------- algorithm selection
def test_ring_tree_crossover_on_h100_node(monkeypatch):
    # NCCL's own pair: ring 14a + 1.75 S/B vs tree 6a + 2 S/B (gamma 0 on GPUs), equal where
    # 8a = 0.25 S/B, i.e. S* = 32 * 1e-6 s * 370e9 B/s = 11.84 MB.
    monkeypatch.setenv("NCCL_ALGO", "ring,tree")
    topo = Topology.parse("1x8-h100")
    crossover = 32 * 1e-6 * 370e9
    assert select_algorithm("all_reduce", 8, 8, topo) == "tree"
    assert select_algorithm("all_reduce", int(crossover / 2), 8, topo) == "tree"
    assert select_algorithm("all_reduce", int(crossover * 2), 8, topo) == "ring"
    assert select_algorithm("all_reduce", 1 << 30, 8, topo) == "ring"


def test_non_power_of_two_small_picks_tree_large_picks_ring():
    topo = Topology.local(6, link=LINKS["nvlink4"])
    # n=6: tree 6 steps + 2S; halving-doubling 6 steps + 3.5S; ring 10 steps + 5/3 S
    assert select_algorithm("all_reduce", 8, 6, topo) == "tree"
    assert select_algorithm("all_reduce", 1 << 30, 6, topo) == "ring"


def test_broadcast_small_binomial_large_chain():
    topo = Topology.parse("1x8-h100")
    assert select_algorithm("broadcast", 1024, 8, topo) == "binomial"  # 3 steps vs 7
    assert select_algorithm("broadcast", 1 << 28, 8, topo) == "chain"  # ~S/B vs 3 S/B


def test_override_wins_and_is_validated(monkeypatch):
    topo = Topology.parse("1x8-h100")
    assert select_algorithm("all_reduce", 1 << 30, 8, topo, override="Tree") == "tree"
    monkeypatch.setenv("NCCL_ALGO", "tree")
    assert select_algorithm("all_reduce", 1 << 30, 8, topo) == "tree"
    assert select_algorithm("all_reduce", 1 << 30, 8, topo, override="ring") == "ring"
    # NCCL_ALGO names no broadcast algorithm: broadcast stays on automatic choice
    assert select_algorithm("broadcast", 1024, 8, topo) == "binomial"
    monkeypatch.setenv("NCCL_ALGO", "^halving_doubling,tree")
    assert select_algorithm("all_reduce", 8, 8, topo) == "ring"
    with pytest.raises(ConfigError, match="ring, tree, halving_doubling"):
        select_algorithm("all_reduce", 8, 8, topo, override="chain")
    with pytest.raises(ConfigError, match="unknown collective"):
        select_algorithm("allreduce", 8, 8, topo)
    monkeypatch.setenv("NCCL_ALGO", "ring,bogus")
    with pytest.raises(ConfigError, match="NCCL_ALGO.*bogus"):
        select_algorithm("all_reduce", 8, 8, topo)


# ---------------------------------------------------------------- topology grammar
def test_topology_parse_grammar():
    t = Topology.parse("2x8-h100")
    assert (t.nodes, t.ranks_per_node, t.world_size) == (2, 8, 16)
    assert (t.intra, t.inter) == (LINKS["nvlink4"], LINKS["ib-ndr400"])
    t = Topology.parse(" 4x4-PCIE ")
    assert (t.nodes, t.ranks_per_node, t.intra.name, t.inter.name) == (4, 4, "pcie5", "100gbe")
    t = Topology.parse("2x4:pcie5/ib-ndr400")
    assert (t.intra.name, t.inter.name) == ("pcie5", "ib-ndr400")
    assert Topology.parse("1x3:loopback").inter.name == "loopback"
    assert Topology.parse(t.describe()) == t
    assert Topology.local(3).split(3) == (3, 1)
    assert Topology.parse("2x8-h100").split(4) == (4, 1)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("8-h100", "NODESxRANKS"),
        ("2x8-tpu", "unknown system 'tpu'"),
        ("2x8:warp9", "unknown link 'warp9'"),
        ("0x8-h100", "nodes >= 1"),
        ("", "NODESxRANKS"),
        (42, "expected a string"),
    ],
)
def test_topology_parse_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        Topology.parse(spec)


def test_rank_counts_that_do_not_fit_the_topology():
    topo = Topology.parse("2x8-h100")
    with pytest.raises(ConfigError, match="whole nodes"):
        predict("all_reduce", "ring", 1024, 12, topo)
    with pytest.raises(ConfigError, match="1..16 ranks, found 17"):
        predict("all_reduce", "ring", 1024, 17, topo)
    with pytest.raises(ConfigError, match="efficiency"):
        Link("bad", alpha=0.0, beta=1e9, efficiency=1.5)


# ---------------------------------------------------------------- simulated clock
def test_sim_clock_advances_logs_and_resets():
    clock = SimClock()
    clock.advance(2e-6, "all_reduce#0")
    clock.advance(3e-6, "broadcast#1")
    clock.advance(5e-6, "all_reduce#2")
    assert clock.now == pytest.approx(10e-6)
    assert clock.events[1] == ("broadcast#1", 2e-6, 3e-6)
    assert clock.totals() == pytest.approx({"all_reduce": 7e-6, "broadcast": 3e-6})
    with pytest.raises(ConfigError, match="seconds >= 0"):
        clock.advance(-1.0)
    with pytest.raises(ConfigError):
        clock.advance(math.nan)
    clock.reset()
    assert clock.now == 0.0 and clock.events == []


# ---------------------------------------------------------------- calibration
def test_calibrate_recovers_alpha_beta_from_exact_sends():
    alpha, beta = 25e-6, 1.5e9
    points = [(s, alpha + s / beta) for s in (8, 512, 65536, 1 << 22)]
    fit = calibrate(points)
    assert fit.alpha == pytest.approx(alpha, rel=1e-9)
    assert fit.beta == pytest.approx(beta, rel=1e-9)
    assert fit.gamma == 0.0  # no reduction points: gamma keeps its given value
    assert fit.max_relative_error() < 1e-9
    assert "65536" in fit.report()


def test_calibrate_recovers_gamma_from_collectives_and_local_reductions():
    alpha, beta, gamma = 40e-6, 2e9, 0.7e-9
    points = []
    for s in (1024, 1 << 16, 1 << 20, 1 << 24):
        # ring all_reduce on 4 ranks, by hand: 6a + 1.5 S/B + 0.75 S g
        points.append(
            Measurement.of(
                "all_reduce", "ring", s, 4, 6 * alpha + 1.5 * s / beta + 0.75 * s * gamma
            )
        )
        points.append(Measurement.local_reduction(s, s * gamma))
    fit = calibrate(points)
    assert (fit.alpha, fit.beta, fit.gamma) == pytest.approx((alpha, beta, gamma), rel=1e-9)
    assert fit.link().transfer_time(1000) == pytest.approx(alpha + 1000 / beta, rel=1e-9)


def test_calibrate_accounts_for_ranks_sharing_cores():
    alpha, beta = 100e-6, 1e9
    points = []
    for s in (1024, 1 << 20, 1 << 24):
        # ring all_reduce on 2 ranks (2 cores, full speed): 2a + S/B
        points.append(Measurement.of("all_reduce", "ring", s, 2, 2 * alpha + s / beta))
        # on 4 ranks the 4 flows share 2 cores: 6a + 1.5 S/B * (4/2)
        points.append(Measurement.of("all_reduce", "ring", s, 4, 6 * alpha + 3 * s / beta))
    fit = calibrate(points, concurrency=2)
    assert (fit.alpha, fit.beta) == pytest.approx((alpha, beta), rel=1e-9)
    assert fit.link().concurrency == 2 and fit.max_relative_error() < 1e-9


def test_calibrate_fits_ranks_that_share_cores_better_than_the_full_stretch():
    """4 ranks on 2 cores took 1.5x, not 2x, the bytes time of a core each: the per-byte
    turn term comes out negative (-0.5/B), and the fit is exact again."""
    alpha, beta = 100e-6, 1e9
    points = []
    for s in (1024, 1 << 20, 1 << 24):
        points.append(Measurement.of("all_reduce", "ring", s, 2, 2 * alpha + s / beta))
        points.append(Measurement.of("all_reduce", "ring", s, 4, 6 * alpha + 1.5 * 1.5 * s / beta))
    fit = calibrate(points, concurrency=2)
    assert (fit.alpha, fit.beta) == pytest.approx((alpha, beta), rel=1e-9)
    assert fit.turn_beta_inv == pytest.approx(-0.5 / beta, rel=1e-9)
    assert fit.max_relative_error() < 1e-9
    # but sharing a core never makes a byte cheaper than having one
    with pytest.raises(ConfigError, match="turn_beta_inv >= -1/bandwidth"):
        Link("cpu", alpha=0.0, beta=1e9, concurrency=2, turn_beta_inv=-2e-9)


def test_calibrate_drives_a_transport_function_and_rejects_bad_points():
    calls = []

    def fake_send(nbytes: int) -> float:
        calls.append(nbytes)
        return 10e-6 + nbytes / 3e9

    fit = calibrate(transport_fn=fake_send, sizes=(8, 4096, 1 << 20), repeats=3)
    assert (fit.alpha, fit.beta) == pytest.approx((10e-6, 3e9), rel=1e-9)
    assert calls == [8] * 3 + [4096] * 3 + [1 << 20] * 3
    # pure bandwidth: alpha must come out as 0, never negative
    fit = calibrate([(1000, 1e-6), (2000, 2e-6), (4000, 4e-6)])
    assert fit.alpha >= 0.0 and fit.beta == pytest.approx(1e9, rel=1e-6)
    with pytest.raises(ConfigError, match="2 different sizes"):
        calibrate([(1000, 1e-6), (1000, 2e-6)])
    with pytest.raises(ConfigError, match="> 0 seconds"):
        calibrate([(1000, 0.0), (2000, 1e-6)])
