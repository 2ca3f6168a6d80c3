"""Asynchronous training through the parameter server: the truths it can be held to.

Async is not bit-equal to anything, so each mode is checked against what it promises:

- ``sync`` through the server takes the same steps as one process on the global batch
  (weights within rtol 1e-5, same seed, SGD with momentum) — the server's arithmetic is
  right;
- ``async`` and ``hogwild`` (shared memory and through the server) converge: test accuracy
  of the server's final weights on the embedded digits above a threshold;
- ``ssp`` never lets a push arrive more than ``S`` clocks ahead of the slowest worker, for
  S in {0, 1, 3}, with one worker slowed down on purpose; the same slow worker under
  ``async`` does get far ahead, so the measurement can fail;
- the server shuts down cleanly: no thread, socket or shared-memory block left.

Workers are threads here (real sockets on loopback, the same ``train_rank`` the Spark
tasks run); the process variants are in ``test_async_faults.py``.
"""

from __future__ import annotations

import os
from multiprocessing import shared_memory

import numpy as np
import pytest

from sparkgrad.engine.async_launch import run_local
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.job import train_rank
from tests.parallel.async_helpers import open_sockets, ps_threads, small_config, within

pytestmark = pytest.mark.slow  # parameter-server trainings on real sockets: the full suite runs it

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


# Plain SGD for 2 epochs, and SGD with momentum 0.9 for 1: past ~100 steps at momentum 0.9
# the float32 rounding of the two-halves mean grows to 1e-4 (DDP drifts exactly as much).
@pytest.mark.parametrize("momentum, epochs", [(0.0, 2), (0.9, 1)])
def test_sync_through_the_server_equals_single_process_training(momentum, epochs):
    config = small_config(mode="sync", epochs=epochs, momentum=momentum)
    run = within(120, run_local, config, "threads", timeout=20)
    assert run.outcomes == {0: "ok", 1: "ok"}
    truth = small_config(strategy="single", world_size=1, epochs=epochs, momentum=momentum)
    single = train_rank(None, truth)
    steps = single["steps"]
    assert run.stats["updates"] == steps and run.stats["pushes"] == 2 * steps
    assert run.stats["version_lag"] == {0: 2 * steps}  # one averaged step per clock
    for name, expected in single["state_dict"].items():
        np.testing.assert_allclose(run.state_dict[name], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "mode, shared_memory",
    [("async", True), ("hogwild", True), ("hogwild", False)],
    ids=["async", "hogwild-shared-memory", "hogwild-through-server"],
)
def test_asynchronous_modes_converge_on_the_digits(mode, shared_memory):
    # plain SGD: with momentum 0.9 a stale gradient is replayed ~10 times, so how far async
    # gets depends on the scheduling of a loaded machine; without it, convergence does not
    config = small_config(mode=mode, epochs=2, momentum=0.0, lr=0.1)
    run = within(120, run_local, config, "threads", timeout=20, shared_memory=shared_memory)
    assert run.outcomes == {0: "ok", 1: "ok"}, run.outcomes
    steps_per_worker = run.stats["pushes_per_worker"]
    assert steps_per_worker[0] == steps_per_worker[1] > 50
    assert run.stats["lost"] == {}
    accuracy = run.accuracy()
    assert accuracy >= 0.85, f"{mode}: test accuracy {accuracy:.3f} after 2 epochs"
    assert run.history and run.history[-1]["test_accuracy"] >= 0.8  # worker 0's own view


def test_hogwild_on_shared_memory_trains_the_shared_vector_not_copies():
    """No weights cross the socket: each step is a NOTE, a few dozen bytes."""
    run = within(120, run_local, small_config(mode="hogwild"), "threads", timeout=20)
    sent = [rep["bytes_sent"] for rep in run.stats["reports"].values()]
    weights_bytes = (784 * 32 + 32 + 32 * 10 + 10) * 4
    assert max(sent) < weights_bytes, sent  # less than ONE push of the gradient


@pytest.mark.parametrize("staleness", [0, 1, 3])
def test_ssp_never_lets_a_worker_run_more_than_s_clocks_ahead(staleness):
    config = small_config(mode="ssp", staleness=staleness)
    slow = {1: {"delay_s": 0.01}}  # worker 1 is the straggler
    run = within(120, run_local, config, "threads", timeout=20, faults=slow)
    assert run.outcomes == {0: "ok", 1: "ok"}
    assert run.stats["pushes"] == 2 * run.stats["pushes_per_worker"][0] > 100
    assert run.stats["max_clock_gap"] <= staleness, run.stats["clock_gap"]
    if staleness > 0:  # the bound was reached, not merely never approached
        assert run.stats["max_clock_gap"] == staleness, run.stats["clock_gap"]


def test_without_a_bound_the_fast_worker_runs_far_ahead():
    """The same straggler under async: the measurement sees gaps ssp would have refused."""
    run = within(120, run_local, small_config(mode="async"), "threads", timeout=20,
                 faults={1: {"delay_s": 0.01}})  # fmt: skip
    assert run.stats["max_clock_gap"] > 3, run.stats["clock_gap"]


def test_snapshots_give_an_accuracy_curve_over_samples():
    run = within(120, run_local, small_config(mode="async"), "threads", timeout=20,
                 snapshot_every=20)  # fmt: skip
    curve = run.curve()
    samples = [s for s, _ in curve]
    assert samples == sorted(samples) and samples[:2] == [0, 20 * 32]
    assert curve[-1][1] > curve[0][1] + 0.2  # it learned in between


def test_the_server_shuts_down_cleanly_threads_sockets_shared_memory():
    sockets_before = open_sockets()
    run = within(120, run_local, small_config(mode="hogwild"), "threads", timeout=20)
    assert run.outcomes == {0: "ok", 1: "ok"}
    assert ps_threads() == []
    assert open_sockets() <= sockets_before
    assert isinstance(run.stats["shared_memory"], str)
    with pytest.raises(FileNotFoundError):  # the block is gone
        shared_memory.SharedMemory(name=run.stats["shared_memory"])
    assert run.state_dict["0.weight"].shape == (32, 784)  # readable after close


def test_server_shared_memory_block_is_removed_at_close():
    from sparkgrad.comms.auth import new_secret
    from sparkgrad.engine.async_launch import make_server

    config = small_config(mode="hogwild")
    server = make_server(config, new_secret())
    name = server.shared.name
    shared_memory.SharedMemory(name=name).close()  # exists while the server runs
    server.close()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=name)
    assert np.isfinite(server.state_dict()["0.weight"]).all()


def test_mode_sync_on_the_command_line_is_the_synchronous_strategy():
    assert not RunConfig().validate().uses_parameter_server
    assert RunConfig(mode="async").validate().uses_parameter_server
