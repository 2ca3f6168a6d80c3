"""``SingleProcess``: no parallelism -- the plain training loop every strategy must equal.

Every equality test of the project compares a parallel strategy with this one: same seed,
same global batch, same optimizer, and (up to float reduction order) the same weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.parallel.strategy import (
    LossFn,
    OptimizerFactory,
    Strategy,
    local_predict,
    numpy_optimizer_state,
    numpy_state,
)


class SingleProcess(Strategy):
    """No parallelism: the plain loop, the truth every other strategy is compared with."""

    name = "single"
    predict_is_collective = False

    def __init__(self, model: Module, optimizer_factory: OptimizerFactory, loss_fn: LossFn) -> None:
        super().__init__(0, 1)
        self.model, self.loss_fn = model, loss_fn
        self.optimizer = optimizer_factory(model.parameters())

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        self.optimizer.zero_grad()
        with self.timeline.span("forward"):
            loss = self.loss_fn(self.model(x), y)
        with self.timeline.span("backward"):
            loss.backward()
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return float(loss.item())

    def predict(self, x: Tensor) -> Tensor:
        return local_predict(self.model, x)

    def full_state_dict(self) -> dict[str, np.ndarray]:
        return numpy_state(self.model)

    def full_optimizer_state_dict(self) -> dict[str, Any]:
        return numpy_optimizer_state(self.optimizer)

    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        self.model.load_state_dict(model_state)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
