"""Links: what one hop between two ranks costs, as (alpha, beta, efficiency, gamma).

The whole cost model rests on the classic *alpha-beta* model (Hockney; used by
Thakur, Rabenseifner and Gropp in "Optimization of Collective Communication
Operations in MPICH", 2005, and by NCCL's tuner): sending one message of ``S``
bytes over a link costs

    t(S) = alpha + S / (beta * efficiency)        (+ S * gamma if the bytes are reduced)

- ``alpha``       seconds of fixed cost per message (one algorithm *step*): software
                  overhead, kernel launch, wire latency;
- ``beta``        the link's nominal bandwidth in bytes/s, per direction, from the spec sheet;
- ``efficiency``  the fraction of ``beta`` a collective library really gets (packet
                  headers, protocol, flow control), 0 < efficiency <= 1;
- ``gamma``       seconds per byte to *reduce* (add) received data into a local buffer:
                  compute, not wire; ~0 on a GPU where NCCL fuses it with the copy.
- ``concurrency`` how many transfers can run at full speed at once (0: every pair of
                  ranks has its own wire, as with NVLink through NVSwitch). Loopback
                  TCP has no wire: the CPU cores copy every byte, so ``n`` ranks sending
                  at once on ``c < n`` cores each get ``c/n`` of the speed.
- ``turn_alpha``, ``turn_beta_inv``  (loopback only, fitted by ``calibrate``) what ranks
                  sharing a core pay on top of that: with ``e = n/c - 1`` extra ranks per
                  core, a rank also waits ``e * turn_alpha`` per step for its turn on a core
                  (the scheduler, its caches refilled) and ``e * turn_beta_inv`` per byte it
                  sends: positive when sharing costs more than the plain ``n/c`` stretch
                  (bytes wait in the kernel while their rank is off the core), negative
                  when it costs less (with a core each, ranks did not keep every core busy
                  either), but never below ``-1/bandwidth``: sharing a core never makes a
                  byte cheaper than having one.

Presets (numbers from public specifications; each line says where it comes from):

- ``nvlink4``   H100 SXM: 18 NVLink4 links = 900 GB/s bidirectional = 450 GB/s per
                direction. nccl-tests ``all_reduce_perf`` on an 8 x H100 DGX reaches a
                bus bandwidth of ~370 GB/s, i.e. ~82% of 450: that ratio is the efficiency.
                alpha ~1 us per step (NCCL tuner's NVLink hop latency is 0.6-1 us).
- ``pcie5``     PCIe Gen5 x16: 32 GT/s x 16 lanes x 128/130 = ~63 GB/s per direction;
                ~80% survives TLP headers and flow control. alpha ~2 us.
- ``ib-ndr400`` InfiniBand NDR, 400 Gb/s per port = 50 GB/s per direction (one
                ConnectX-7 per GPU on a DGX H100); ``ib_write_bw`` reaches ~96%,
                NCCL ~90%. alpha ~5 us per network step (NCCL's net latency).
- ``100gbe``    100 Gb/s Ethernet = 12.5 GB/s per direction, ~90% with TCP/RoCE;
                alpha ~10 us (kernel TCP stack).
- ``loopback``  sparkgrad's TCP transport between processes on 127.0.0.1, as fitted by
                ``python -m sparkgrad.benchmark.collectives`` on the 2-core development
                machine (2 ranks: ~200 us per step, mostly Python; ~1.7 GB/s; NumPy add
                ~0.03 ns/B; 2 cores): only a default, run
                :func:`sparkgrad.comms.model.calibrate.calibrate` (the benchmark does) for yours.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkgrad.errors import ConfigError


@dataclass(frozen=True)
class Link:
    """One kind of hop between two ranks: t(S) = alpha + S / (beta * efficiency) [+ S * gamma].

    Args:
        name: short preset name, e.g. ``"nvlink4"``.
        alpha: seconds per message (per algorithm step).
        beta: nominal bandwidth in bytes per second, one direction.
        efficiency: achievable fraction of ``beta`` (0 < efficiency <= 1).
        gamma: seconds per byte to reduce received data locally (default 0).
        concurrency: transfers that run at full speed at once (default 0: no sharing).
        turn_alpha: extra seconds per step per extra rank per core (default 0).
        turn_beta_inv: extra seconds per sent byte per extra rank per core (default 0;
            >= -1/bandwidth).
    """

    name: str
    alpha: float
    beta: float
    efficiency: float = 1.0
    gamma: float = 0.0
    concurrency: int = 0
    turn_alpha: float = 0.0
    turn_beta_inv: float = 0.0

    def __post_init__(self) -> None:
        if not self.alpha >= 0.0:
            raise ConfigError(f"Link {self.name!r}: expected alpha >= 0 s, found {self.alpha}")
        if not self.beta > 0.0:
            raise ConfigError(f"Link {self.name!r}: expected beta > 0 bytes/s, found {self.beta}")
        if not 0.0 < self.efficiency <= 1.0:
            raise ConfigError(
                f"Link {self.name!r}: expected 0 < efficiency <= 1, found {self.efficiency}"
            )
        if not self.gamma >= 0.0:
            raise ConfigError(f"Link {self.name!r}: expected gamma >= 0 s/byte, found {self.gamma}")
        if not self.turn_alpha >= 0.0:
            raise ConfigError(
                f"Link {self.name!r}: expected turn_alpha >= 0 s/step, found {self.turn_alpha}"
            )
        if not self.turn_beta_inv >= -1.0 / self.bandwidth:
            raise ConfigError(
                f"Link {self.name!r}: expected turn_beta_inv >= -1/bandwidth = "
                f"{-1.0 / self.bandwidth:.3g} s/byte, found {self.turn_beta_inv}"
            )
        if self.concurrency < 0:
            raise ConfigError(
                f"Link {self.name!r}: expected concurrency >= 0, found {self.concurrency}"
            )

    @property
    def bandwidth(self) -> float:
        """Achievable bandwidth in bytes/s: ``beta * efficiency``."""
        return self.beta * self.efficiency

    def slowdown(self, flows: int) -> float:
        """How much slower each of ``flows`` transfers at once runs: max(1, flows / concurrency)."""
        return max(1.0, flows / self.concurrency) if self.concurrency else 1.0

    def transfer_time(self, nbytes: float) -> float:
        """Seconds to send one message of ``nbytes``: ``alpha + nbytes / (beta * efficiency)``."""
        return self.alpha + nbytes / self.bandwidth


GB = 1e9  # spec sheets count bandwidth in decimal gigabytes

LINKS: dict[str, Link] = {
    "nvlink4": Link("nvlink4", alpha=1e-6, beta=450 * GB, efficiency=370 / 450),
    "pcie5": Link("pcie5", alpha=2e-6, beta=64 * GB, efficiency=0.80),
    "ib-ndr400": Link("ib-ndr400", alpha=5e-6, beta=50 * GB, efficiency=0.90),
    "100gbe": Link("100gbe", alpha=10e-6, beta=12.5 * GB, efficiency=0.90),
    "loopback": Link("loopback", alpha=200e-6, beta=1.7 * GB, gamma=0.03e-9, concurrency=2),
}


def get_link(name: str) -> Link:
    """Return the preset called ``name``, or raise ``ConfigError`` listing the presets."""
    try:
        return LINKS[name]
    except KeyError:
        raise ConfigError(
            f"unknown link {name!r}: expected one of {', '.join(sorted(LINKS))}"
        ) from None
