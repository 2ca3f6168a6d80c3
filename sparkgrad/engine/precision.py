"""``--precision fp32|fp16|bf16``: mixed precision around any strategy, without touching it.

Every strategy's ``train_step`` runs forward, ``loss.backward()`` and
``optimizer.step()`` its own way. Mixed precision needs three things there, and each can be
attached from the outside, so one block serves every model and every strategy:

1. **autocast** (``sg.autocast(device, dtype)``) around ``train_step`` and ``predict``:
   matmuls, linear layers, convolutions and attention compute in float16/bfloat16, the
   losses in float32 (:mod:`sparkgrad.autodiff.amp.op_lists`). The parameters stay float32:
   they are the master weights, and their gradients come back float32.
2. **loss scaling** (fp16 only; bf16 has float32's range and needs none, as PyTorch says):
   the loss function's result passes through :class:`ScaleGrad`, which is the identity
   forward (the printed loss is the true one) and multiplies the gradient by the scaler's
   scale backward — what ``scaler.scale(loss).backward()`` seeds, exactly.
3. **the scaler's step**: the optimizer's ``step`` becomes ``scaler.step(opt)`` then
   ``scaler.update()``: unscale, check for inf/NaN, skip or step, back off or grow. With
   more than one rank the found-inf flag is all-reduced over the world group, so a rank
   whose gradients (or gradient shard, or pipeline stage) overflowed makes every rank skip.

The run reports the final loss scale and how many steps were skipped; ``--init-scale`` and
``--growth-interval`` are GradScaler's ``init_scale`` and ``growth_interval``, and
checkpoints carry the scaler's state (:meth:`MixedPrecision.state_dict`), so a resumed
run goes on with the scale it had.

**ZeRO** goes further than autocast: under ``--precision fp16|bf16`` it holds its
parameters and gradients in 16 bits and an fp32 master copy of its shard for the
optimizer (the paper's precision, :mod:`sparkgrad.parallel.zero.master_weights`). The
pieces above compose with it unchanged: the scaler sees the fp32 master shards' gradients,
unscales and checks *this rank's shard*, and the all-reduced flag makes every rank skip.
"""

from __future__ import annotations

import functools
from typing import Any

from sparkgrad.autodiff.amp import GradScaler, autocast
from sparkgrad.autodiff.amp.precision_names import sixteen_bit_dtype
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.grad_mode import no_grad


class ScaleGrad(Function):
    """z = a (the loss, unchanged);  dL/da = g · scale (the loss scaler's current scale)"""

    @staticmethod
    def forward(ctx: Context, a: Any, scaler: GradScaler) -> Any:
        ctx.scaler = scaler
        return a.copy()

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad * grad.dtype.type(ctx.scaler.get_scale()), None


class _Unpatched:
    """The optimizer as the scaler sees it: its param groups and its *own* step."""

    def __init__(self, optimizer: Any, step: Any) -> None:
        self.param_groups, self.step = optimizer.param_groups, step


class MixedPrecision:
    """The pieces ``--precision`` attaches: autocast dtype, scaler, and the wrappers."""

    def __init__(
        self,
        precision: str,
        device: str = "cpu",
        process_group: Any = None,
        init_scale: float = 2.0**16,
        growth_interval: int = 2000,
    ) -> None:
        self.dtype = sixteen_bit_dtype(precision)  # None for fp32
        self.precision, self.device = precision, device
        self.scaler = None
        if precision == "fp16":
            self.scaler = GradScaler(
                device,
                init_scale=init_scale,
                growth_interval=growth_interval,
                process_group=process_group,
            )

    @property
    def enabled(self) -> bool:
        return self.precision != "fp32"

    def loss_fn(self, loss_fn: Any) -> Any:
        """``loss_fn`` whose result scales the gradient by the loss scale (fp16)."""
        if self.scaler is None:
            return loss_fn

        @functools.wraps(loss_fn)
        def scaled(*args: Any, **kwargs: Any) -> Any:
            self._start_scale()
            return ScaleGrad.apply(loss_fn(*args, **kwargs), self.scaler)

        # a strategy that must compute the loss its own way (tensor parallelism's
        # vocab-parallel cross-entropy) swaps the inner loss and keeps this scaling
        scaled.with_loss = self.loss_fn
        return scaled

    def optimizer_factory(self, factory: Any) -> Any:
        """``factory`` whose optimizers step through the scaler (fp16)."""
        if self.scaler is None:
            return factory

        def build(params: Any) -> Any:
            optimizer = factory(params)
            inner = _Unpatched(optimizer, optimizer.step)

            def step(*args: Any, **kwargs: Any) -> Any:
                self._start_scale()
                out = self.scaler.step(inner, *args, **kwargs)
                self.scaler.update()
                return out

            optimizer.step = step  # the instance's step: type, state_dict & co unchanged
            return optimizer

        return build

    def attach(self, strategy: Any) -> Any:
        """Run ``strategy``'s ``train_step`` and ``predict`` under autocast (a no-op for fp32)."""
        if not self.enabled:
            return strategy
        train_step, predict = strategy.train_step, strategy.predict

        def autocast_train_step(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.device, dtype=self.dtype):
                return train_step(*args, **kwargs)

        def autocast_predict(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.device, dtype=self.dtype):
                out = predict(*args, **kwargs)
            with no_grad():
                return out.float()  # scores and eval losses in float32

        strategy.train_step, strategy.predict = autocast_train_step, autocast_predict
        return strategy

    def _start_scale(self) -> None:
        self.scaler._lazy_init_scale_growth_tracker()

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state for a checkpoint (``{}`` without a scaler): GradScaler's
        ``state_dict`` (``scale``, ``_growth_tracker``, the factors) plus ``skipped_steps``."""
        if self.scaler is None:
            return {}
        return {**self.scaler.state_dict(), "skipped_steps": self.scaler.skipped_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from a checkpoint's scale, growth tracker and skip count. The factors and
        the interval stay this run's (``--growth-interval``): a checkpoint carries state,
        never settings."""
        if self.scaler is None or not state:
            return
        own = self.scaler.state_dict()
        keep = ("growth_factor", "backoff_factor", "growth_interval")
        # a shorter --growth-interval than the checkpoint's tracker: grow at the next clean step
        tracker = min(int(state["_growth_tracker"]), own["growth_interval"] - 1)
        self.scaler.load_state_dict(
            {**state, **{k: own[k] for k in keep}, "_growth_tracker": tracker}
        )
        self.scaler.skipped_steps = int(state.get("skipped_steps", 0))

    def report(self) -> dict[str, Any]:
        """``{"precision", "loss_scale", "skipped_steps"}`` (scale 1.0 and 0 without a scaler)."""
        return {
            "precision": self.precision,
            "loss_scale": self.scaler.get_scale() if self.scaler else 1.0,
            "skipped_steps": self.scaler.skipped_steps if self.scaler else 0,
        }
