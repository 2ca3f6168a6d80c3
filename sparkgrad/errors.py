"""One small hierarchy of errors, shared by every layer.

Every message says what was expected, what was found and, where it helps, what to do.
The CLI turns any ``SparkgradError`` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations


class SparkgradError(Exception):
    """Base class of every error sparkgrad raises on purpose."""


class ShapeError(SparkgradError, ValueError):
    """Operand shapes do not fit the operation (the message names both shapes)."""


class GradError(SparkgradError, RuntimeError):
    """Autograd was asked for something it cannot do (backward twice, integer grads, ...)."""


class NonFiniteLossError(SparkgradError, FloatingPointError):
    """The training loss became inf or NaN (the message names the step and what to do)."""


class InPlaceError(SparkgradError, RuntimeError):
    """An in-place update cannot write its result (a dtype it can't take, expanded storage)."""


class DeviceError(SparkgradError, RuntimeError):
    """A device was asked for that is not available, or tensors live on different devices."""


class CommError(SparkgradError, RuntimeError):
    """A collective or a transport failed."""


class CollectiveTimeout(CommError, TimeoutError):
    """A peer did not answer within the timeout (the message names the missing ranks)."""


class CollectiveMismatch(CommError):
    """Ranks called different collectives, or the same one with different shapes or dtypes."""


class DataFormatError(SparkgradError, ValueError):
    """A data file is not in the format it claims to be (the message names the file)."""


class CheckpointError(SparkgradError, RuntimeError):
    """A checkpoint or exported file is missing, truncated or tampered with."""


class ConfigError(SparkgradError, ValueError):
    """A run was configured with values that cannot work together."""


# -- asynchronous training (issue 20): the parameter server and its workers ----------------------
class WorkerLost(CommError):
    """A worker of an asynchronous run died or stopped answering (the message names it)."""


class ServerLost(CommError):
    """The parameter server of an asynchronous run closed, failed or stopped answering."""
