"""Optimizers and learning-rate schedules, shaped like ``torch.optim``.

Read ``optimizer`` (groups, state, state dicts) → ``sgd`` → ``adam`` → ``lr_scheduler``;
then the other adaptive methods: ``adagrad`` (sum of squared gradients), ``rmsprop`` (a
running average of them), ``adadelta`` (a running average of the updates as well).
Every update follows PyTorch's maths and order of operations, in place on the raw arrays.
"""

from sparkgrad.autodiff.optim import lr_scheduler
from sparkgrad.autodiff.optim.adadelta import Adadelta
from sparkgrad.autodiff.optim.adagrad import Adagrad
from sparkgrad.autodiff.optim.adam import Adam, AdamW
from sparkgrad.autodiff.optim.optimizer import Optimizer
from sparkgrad.autodiff.optim.rmsprop import RMSprop
from sparkgrad.autodiff.optim.sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "Adadelta",
    "Adagrad",
    "RMSprop",
    "lr_scheduler",
]
