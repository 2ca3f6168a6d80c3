"""A two-rank ``fit`` equals one process training on the same rows, step for step.

The row order is the one ``sparkgrad/spark/ml/training.py`` documents: rank ``d`` holds
rows ``j·D + d``; every epoch one seeded permutation ``π`` of the local rows (the same on
every rank) picks each step's local rows; global step ``k`` is the union of the ranks'
rows. The reference below writes that order out with NumPy and trains plain sparkgrad
(no Spark, no strategy): the weights must agree to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.dataset import DistributedSampler
from sparkgrad.models.mlp import build_mlp
from sparkgrad.spark.ml import SparkgradClassifier

pytestmark = pytest.mark.slow  # fits on Spark, compared with one process: the full suite runs them

ROWS, FEATURES, CLASSES, HIDDEN = 203, 12, 3, [16]
BATCH, EPOCHS, LR, MOMENTUM, SEED = 16, 2, 0.1, 0.9, 7


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((ROWS, FEATURES)).astype(np.float32)
    y = (x[:, :CLASSES].argmax(axis=1)).astype(np.int64)
    return x, y


def _reference(x: np.ndarray, y: np.ndarray, world: int) -> dict[str, np.ndarray]:
    """One process, the same global batches: rows pi[j]*world + d for d < world."""
    local_rows, per_rank = ROWS // world, BATCH // world
    model = build_mlp(tuple(HIDDEN), SEED, n_in=FEATURES, n_out=CLASSES)
    opt = sg.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = sg.nn.CrossEntropyLoss()
    sampler = DistributedSampler(range(local_rows), 1, 0, shuffle=True, seed=SEED, drop_last=True)
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        order = np.array(list(sampler))
        for k in range(local_rows // per_rank):
            local = order[k * per_rank : (k + 1) * per_rank]
            rows = np.concatenate([local * world + d for d in range(world)])
            opt.zero_grad()
            loss_fn(model(sg.tensor(x[rows])), sg.tensor(y[rows])).backward()
            opt.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("strategy", "dp"),
    [("data", 2), pytest.param("tensor", 1, marks=pytest.mark.slow)],
    ids=["data: rows split 2 ways", "tensor: every row on both ranks"],
)
def test_two_rank_fit_equals_single_process_training(spark, strategy, dp):
    x, y = _data()
    df = spark.createDataFrame(
        [(row.tolist(), int(label)) for row, label in zip(x, y)], "features array<float>, label int"
    )
    clf = SparkgradClassifier(
        numRanks=2,
        batchSize=BATCH,
        maxIter=EPOCHS,
        stepSize=LR,
        momentum=MOMENTUM,
        seed=SEED,
        strategy=strategy,
        model={"name": "mlp", "hidden": HIDDEN},
    )
    fitted = clf.fit(df).stateDict()
    expected = _reference(x, y, world=dp)
    assert sorted(fitted) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(fitted[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # and the order really matters: the other sharding's order gives other weights
    other = _reference(x, y, world=3 - dp)
    assert not np.allclose(other["0.weight"], expected["0.weight"], atol=1e-5)
