"""Pipelines under ``--precision fp16|bf16``: one process's numbers, micro-batch by micro-batch.

Under autocast an MLP stage ends in a 16-bit ReLU; the stages talk in their float32 wire
dtype (exact: every 16-bit value is a float32 value) and the gradient coming back is cast
to the activation's dtype again. Each micro-batch runs its own ``backward()`` through the
weights' cast copies, made once per autocast region (PyTorch's cache).

The truth is one process doing exactly that, by hand: one autocast region per step, the
micro-batches' losses (through fp16's loss scaling) divided by ``m``, one backward each,
then the scaler's step. The weights, the losses and the predictions must be equal bit for
bit: nothing about the arithmetic changes when the layers sit on other ranks.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.distributed.state import resolve
from sparkgrad.engine.precision import MixedPrecision
from sparkgrad.parallel.pipeline.model_parallel import ModelParallel
from sparkgrad.parallel.pipeline.pipeline_parallel import PipelineParallel
from tests.parallel.strategy_truth import make_batches, make_model, optimizer_factory

LOCK = threading.Lock()


def one_process(precision: str, batches: list, m: int) -> dict:
    """Weights, losses and the first batch's logits of one process (module docstring)."""
    amp = MixedPrecision(precision, init_scale=2.0**10)
    model = make_model()
    optimizer = amp.optimizer_factory(optimizer_factory("adam"))(model.parameters())
    loss_fn, losses = amp.loss_fn(F.cross_entropy), []
    for x, y in batches:
        optimizer.zero_grad()
        total = 0.0
        with sg.autocast("cpu", dtype=amp.dtype):
            for xs, ys in zip(np.split(x, m), np.split(y, m)):
                loss = loss_fn(model(sg.tensor(xs)), sg.tensor(ys)) / m
                loss.backward()
                total += float(loss.item())
            optimizer.step()
        losses.append(total)
    with sg.no_grad(), sg.autocast("cpu", dtype=amp.dtype):
        logits = model(sg.tensor(batches[0][0])).float().numpy()
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return {"state": state, "losses": losses, "logits": logits, "scale": amp.report()}


def on_stages(cls: type, world: int, precision: str, batches: list, **options: object) -> list:
    def rank_fn(rank: int, size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=size)
        try:
            amp = MixedPrecision(precision, "cpu", resolve(None), init_scale=2.0**10)
            with LOCK:
                model = make_model()
            s = cls(model, amp.optimizer_factory(optimizer_factory("adam")),
                    amp.loss_fn(F.cross_entropy), **options)  # fmt: skip
            amp.attach(s)
            losses = [s.train_step(sg.tensor(x), sg.tensor(y)) for x, y in batches]
            logits = s.predict(sg.tensor(batches[0][0])).numpy()
            state = s.full_state_dict()
            return {"state": state, "losses": losses, "logits": logits, "scale": amp.report()}
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


CASES = [(ModelParallel, 2, {}), (PipelineParallel, 2, {"micro_batches": 2, "schedule": "gpipe"}),
         (PipelineParallel, 4, {"micro_batches": 4})]  # fmt: skip


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize(("cls", "world", "options"), CASES, ids=["model", "gpipe", "1f1b"])
def test_a_pipeline_under_autocast_computes_what_one_process_does(cls, world, options, precision):
    batches = make_batches(steps=3, batch=8)
    truth = one_process(precision, batches, int(options.get("micro_batches", 1)))
    for r in on_stages(cls, world, precision, batches, **options):
        for k, v in truth["state"].items():
            np.testing.assert_array_equal(r["state"][k], v, err_msg=k)
        assert r["losses"] == pytest.approx(truth["losses"], rel=1e-6)
        np.testing.assert_array_equal(r["logits"], truth["logits"])
        assert r["scale"] == truth["scale"]
