"""The truth for ZeRO in the paper's precision: one process doing the same maths by hand.

:func:`train_reference` is a plain loop, written here without ZeRO, MixedPrecision or
GradScaler: a 16-bit copy of the parameters computes forward and backward under
``sg.autocast``, the loss is multiplied by the loss scale (fp16), the 16-bit gradients are
upcast to fp32 and divided by the scale, one inf/NaN skips the step and halves the scale,
otherwise the optimizer steps fp32 master weights, and the 16-bit copy is cast down from
them. :func:`run_zero` trains ZeRO under the engine's MixedPrecision on thread ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.distributed.state import resolve
from sparkgrad.engine.precision import MixedPrecision
from sparkgrad.parallel.zero.strategy import ZeRO

LOW = {"fp16": sg.float16, "bf16": sg.bfloat16}


def train_reference(
    model: sg.nn.Module,
    factory: Callable,
    loss_fn: Callable,
    batches: list,
    precision: str,
    scale: float = 2.0**16,
) -> dict[str, Any]:
    """Final fp32 master ``state``, per-step ``losses``, final ``scale``, ``skipped`` steps."""
    low = LOW[precision]
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())
    master = [sg.tensor(p.array.astype(np.float32), requires_grad=True) for p in params]
    for p in params:
        p.array = p.array.astype(low)  # the 16-bit copy forward and backward use
    optimizer = factory(master)
    scale = scale if precision == "fp16" else 1.0
    losses, skipped = [], 0
    for x, y in batches:
        for p in params:
            p.grad = None
        with sg.autocast("cpu", dtype=low):
            loss = loss_fn(model(sg.tensor(x)), sg.tensor(y))
        (loss * scale).backward()
        losses.append(float(loss.item()))
        grads = [p.grad.array.astype(np.float32) / np.float32(scale) for p in params]
        if all(np.isfinite(g).all() for g in grads):
            for m, g in zip(master, grads):
                m.grad = sg.tensor(g)
            optimizer.step()
        else:
            skipped, scale = skipped + 1, scale * 0.5
        for p, m in zip(params, master):
            p.array = m.array.astype(low)
    state = {n: m.array.copy() for n, m in zip(names, master)}
    return {"state": state, "losses": losses, "scale": scale, "skipped": skipped}


def run_zero(
    models: list[sg.nn.Module],
    factory: Callable,
    loss_fn: Callable,
    batches: list,
    stage: int,
    precision: str,
    scale: float = 2.0**16,
    before_step: Callable[[ZeRO], None] | None = None,
    load: tuple[dict, dict] | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """ZeRO-``stage`` under ``MixedPrecision(precision)`` on ``len(models)`` thread ranks,
    from the full state ``load`` (model, optimizer) if given."""
    world = len(models)

    def rank_fn(rank: int, world_size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            amp = MixedPrecision(precision, device, resolve(None), init_scale=scale)
            s = ZeRO(
                models[rank].to(device),
                amp.optimizer_factory(factory),
                amp.loss_fn(loss_fn),
                stage=stage,
                precision=precision,
            )
            amp.attach(s)
            start = None
            if load is not None:
                s.load_full_state(*load)
                start = (s.full_state_dict(), s.full_optimizer_state_dict())
            if before_step is not None:
                before_step(s)
            losses, sent = [], s.timeline.bytes_sent
            for x, y in batches:
                n = len(x) // world
                mine = slice(rank * n, (rank + 1) * n)
                x_mine, y_mine = (
                    sg.tensor(x[mine], device=device),
                    sg.tensor(y[mine], device=device),
                )
                losses.append(s.train_step(x_mine, y_mine))
            step_bytes = (s.timeline.bytes_sent - sent) / len(batches)  # sent per step
            sixteen = [to_numpy(u.gather()) for u in s.units]  # what the model computes with
            masters = [to_numpy(u.gather(u.master.tensor.array)) for u in s.units if u.master]
            return {
                "losses": losses,
                "step_bytes": step_bytes,
                "state": s.full_state_dict(),
                "opt": s.full_optimizer_state_dict(),
                "amp": amp.report(),
                "sixteen": sixteen,
                "masters": masters,
                "ledger": s.memory_ledger().as_dict(),
                "strategy": s,
                "start": start,
            }
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)
