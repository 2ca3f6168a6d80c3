"""``sparkgrad.simulate``: whole training steps on modelled GPU clusters, from shapes only.

- :mod:`.devices`    H100 / H200 / A100 specs and this machine's CPU, measured
- :mod:`.roofline`   an op's time: max(FLOPs / peak, bytes / bandwidth) + launch overhead
- :mod:`.workload`   a GPT step's ops and collectives per rank of a dp x pp x tp x cp mesh
- :mod:`.mlp`        an MLP step's ops and collectives, split as each strategy splits it
- :mod:`.protocols`  NCCL's algorithm + protocol choice (LL / LL128 / Simple), with reasons
- :mod:`.cluster`    ``Cluster.parse("32x8-h100")``: device + links, and where groups land
- :mod:`.schedule`   the strategy's order on compute / blocking / async lanes per stage
- :mod:`.memory`     model states (ZeRO's ledger) and activations per rank
- :mod:`.predict`    ``simulate_step(StepConfig(...))`` -> step time, tokens/s, MFU, memory
- :mod:`.trace`      the predicted timeline as a Chrome trace (the profiler's format)
- :mod:`.validation` published results the model is checked against (docs/simulator.md)
- :mod:`.local`      predicted vs measured MLP steps of every strategy on this machine, on
                     thread-ranks or TCP processes (``--validate-local [--transport tcp]``):
                     :mod:`.local_case` calibrates and measures each row in the same
                     seconds, from :mod:`.local_calibrate` (device, per-op overhead and
                     efficiency) and :mod:`.local_links` (the collectives, timed after
                     compute); :mod:`.local_worker` is one TCP rank
- :mod:`.cli`        ``python -m sparkgrad.simulate --model gpt ... --cluster 32x8-h100``
"""

from sparkgrad.simulate.cluster import Cluster
from sparkgrad.simulate.devices import DEVICES, Device, cpu_device, get_device
from sparkgrad.simulate.predict import Prediction, StepConfig, simulate_step
from sparkgrad.simulate.protocols import CommChoice, choose
from sparkgrad.simulate.roofline import OpCost, matmul_cost, op_cost
from sparkgrad.simulate.workload import GPTShape, Mesh

__all__ = [
    "DEVICES",
    "Cluster",
    "CommChoice",
    "Device",
    "GPTShape",
    "Mesh",
    "OpCost",
    "Prediction",
    "StepConfig",
    "choose",
    "cpu_device",
    "get_device",
    "matmul_cost",
    "op_cost",
    "simulate_step",
]
