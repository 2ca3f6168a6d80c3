"""The vocabulary split over the tensor-parallel ranks: embedding, head and cross-entropy.

A language model's two widest matrices are ``(V, d)``: the token embedding and the head.
Megatron-LM cuts both along the vocabulary. Rank ``r`` keeps the rows of its slice
``[lo, hi)`` of the ``V`` ids (:func:`vocab_sizes`: the first ``V % tp`` ranks get one row
more, so any ``V`` works and nothing is padded)::

    embedding  ids (N, T) -> rows of W[lo:hi] for ids in the slice, 0 for the others
               -> g: all_reduce (or reduce_scatter along T under sequence parallelism)
               every id is in exactly one slice, so the sum is the full lookup
    head       x (N, T, d) -f-> x W[lo:hi]ᵀ = logits[..., lo:hi]      (column parallel,
               never gathered: the V-wide logits are the largest activation of the model)
    loss       cross-entropy from the slices: only per-row numbers cross ranks

The cross-entropy of row ``i`` with target ``y`` is ``log Σ_v exp(z_v) - z_y``. Each of its
pieces reduces over the ranks without any rank seeing all ``V`` logits:

1. ``m = max_r max_{v in slice r} z_v``       one ``all_reduce(MAX)`` of ``(rows,)``
2. ``s = Σ_r Σ_{v in slice r} exp(z_v - m)``   one ``all_reduce(SUM)`` of ``(2, rows)``,
   ``z_y - m`` from the one rank whose slice holds ``y`` (0 elsewhere)  carrying both
3. ``loss = log s - (z_y - m)``, the same number on every rank.

The gradient needs no communication at all (:class:`VocabParallelCrossEntropyFn`): the
softmax of this rank's slice is ``exp(z - m) / s``, both known locally after step 2.
With the head's weight tied to the embedding (``tie_weights=True``) both use the same
``(V_r, d)`` slice, so the tie survives the split: one parameter, two users.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.nn.embedding import Embedding
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.tensor.comm_ops import (
    reduce_from_tensor_parallel_region,
    reduce_scatter_to_sequence_parallel_region,
)
from sparkgrad.parallel.tensor.splits import Split


def vocab_sizes(vocab_size: int, n: int) -> tuple[int, ...]:
    """Rows per rank: ``V // n`` each, one more on the first ``V % n`` ranks (11 / 3: 4, 4, 3)."""
    if vocab_size < n:
        raise ConfigError(
            f"vocabulary parallelism over {n} ranks gives every rank a slice of the "
            f"vocabulary: expected at least {n} tokens, found a vocabulary of {vocab_size}"
        )
    return tuple(vocab_size // n + (r < vocab_size % n) for r in range(n))


class VocabSliceLookup(Function):
    """z[i] = W[ids[i] - lo] if lo ≤ ids[i] < hi else 0;  dL/dW[j] = Σ_{i: ids[i] = lo+j} g[i]"""

    @staticmethod
    def forward(ctx: Context, weight: Any, ids: Any, lo: int = 0, padding_idx: Any = None) -> Any:
        xp = array_module(weight)
        mine = (ids >= lo) & (ids < lo + weight.shape[0])
        local = xp.where(mine, ids - lo, 0)
        ctx.save_for_backward(local, mine)
        ctx.shape, ctx.padding = weight.shape, padding_idx
        return weight[local] * mine[..., None].astype(weight.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        local, mine = ctx.saved_tensors
        xp = array_module(grad)
        gw = xp.zeros(ctx.shape, dtype=grad.dtype)
        rows = grad.reshape(-1, ctx.shape[1])[mine.reshape(-1)]
        xp.add.at(gw, local.reshape(-1)[mine.reshape(-1)], rows)
        if ctx.padding is not None:  # this rank's row of padding_idx learns nothing
            gw[ctx.padding] = 0
        return gw, None


class VocabParallelEmbedding(Module):
    """``nn.Embedding`` whose rows are split over ``group`` by vocabulary slice.

    Each rank looks up the ids of its slice (zero rows for the rest) and the partial
    lookups are summed: ``all_reduce`` (g), or under sequence parallelism a
    ``reduce_scatter`` along the sequence, so each rank keeps ``(N, T/tp, d)``.
    """

    @classmethod
    def from_embedding(
        cls, embedding: Embedding, group: Any, sequence_parallel: bool = False
    ) -> VocabParallelEmbedding:
        """Keep this rank's rows of ``embedding.weight`` (built whole from the seed)."""
        layer, r = cls(), group.rank()
        sizes = vocab_sizes(embedding.num_embeddings, group.size())
        lo = layer.lo = sum(sizes[:r])
        layer.num_embeddings, layer.embedding_dim = embedding.weight.shape
        layer.group, layer.sequence_parallel = group, sequence_parallel
        layer.shard_dims = {"weight": Split(0, sizes=sizes)}
        pad = embedding.padding_idx  # kept only by the rank whose slice holds it
        layer.padding_idx = pad - lo if pad is not None and lo <= pad < lo + sizes[r] else None
        rows = embedding.weight.array[lo : lo + sizes[r]]
        layer.weight = Parameter(rows.copy())  # a copy: a view would keep all V rows alive
        return layer

    def forward(self, ids: Tensor) -> Tensor:
        raw = ids.array if isinstance(ids, Tensor) else ids
        partial = VocabSliceLookup.apply(self.weight, raw, lo=self.lo, padding_idx=self.padding_idx)
        if self.sequence_parallel:
            return reduce_scatter_to_sequence_parallel_region(partial, self.group)
        return reduce_from_tensor_parallel_region(partial, self.group)

    def extra_repr(self) -> str:
        hi = self.lo + self.weight.shape[0]
        return f"{self.num_embeddings}, {self.embedding_dim}, rows=[{self.lo}, {hi})"


class VocabParallelCrossEntropyFn(Function):
    """L_i = log Σ_r Σ_{v∈r} exp(z_iv) - z_iy;  dL/dz_slice = (softmax(z_i) - onehot(y_i))_slice

    The gradient of this rank's slice of the logits is its slice of ``softmax - onehot``:
    ``exp(z - m) / s`` (``m`` and ``s`` reduced over the ranks in forward), minus 1 at the
    target column only on the rank whose slice holds the target; zero for ignored rows,
    divided by the number of counted rows for ``reduction="mean"``. No communication.
    """

    @staticmethod
    def forward(
        ctx: Context,
        logits: Any,
        target: Any,
        group: Any = None,
        lo: int = 0,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> Any:
        xp = array_module(logits)
        z = logits.reshape(-1, logits.shape[-1]).astype(np.float32)  # a fresh float32 copy
        t = target.reshape(-1)
        rows = xp.arange(z.shape[0])
        m = z.max(axis=1)
        _all_reduce(m, group, "max")  # 1. the row maxima over the whole vocabulary
        z -= m[:, None]
        valid = t != ignore_index
        mine = valid & (t >= lo) & (t < lo + z.shape[1])
        idx = xp.where(mine, t - lo, 0)
        e = xp.exp(z)
        both = xp.stack([e.sum(axis=1), xp.where(mine, z[rows, idx], 0.0)])
        _all_reduce(both, group, "sum")  # 2. Σ exp(z - m) and z_y - m, in one message
        s, target_logit = both
        loss = (xp.log(s) - target_logit) * valid
        e /= s[:, None]  # this rank's slice of the softmax
        ctx.save_for_backward(e, idx, mine, valid)
        ctx.meta = (reduction, logits.shape, logits.dtype)
        if reduction == "none":
            return loss.reshape(target.shape)
        total = xp.asarray(loss.sum(dtype=np.float32))
        if reduction == "sum":
            return total
        with np.errstate(invalid="ignore"):  # no counted target: NaN, silently, as PyTorch
            return (total / valid.sum()).astype(np.float32)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        softmax, idx, mine, valid = ctx.saved_tensors
        reduction, shape, dtype = ctx.meta
        xp = array_module(softmax)
        d = softmax.copy()
        d[xp.arange(d.shape[0])[mine], idx[mine]] -= 1.0  # onehot, restricted to the slice
        d *= valid[:, None]
        if reduction == "none":
            d *= grad.reshape(-1, 1)
        else:
            d *= grad / valid.sum() if reduction == "mean" else grad
        return d.reshape(shape).astype(dtype, copy=False), None


def _all_reduce(arr: Any, group: Any, op: str) -> None:
    if group.size() > 1:
        group.pg.all_reduce(arr, op=op)


class VocabParallelCrossEntropy(Module):
    """``TokenCrossEntropy`` on vocab-parallel logits ``(..., V_r)`` and targets ``(...)``.

    Targets are global ids; ``ignore_index`` rows count nowhere (PyTorch's mean divides by
    the counted rows). Where this rank's slice starts is asked of the group once per slice
    width (an ``all_gather`` of one number), so the module needs only the group.
    """

    def __init__(self, tp_group: Any, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"reduction must be mean, sum or none, found {reduction!r}")
        self.group, self.ignore_index, self.reduction = tp_group, ignore_index, reduction
        self._starts: dict[int, tuple[int, int]] = {}

    def _slice(self, width: int) -> tuple[int, int]:
        """``(lo, V)``: where this rank's ``width`` columns start, and the whole vocabulary."""
        if width not in self._starts:
            widths = [width]
            if self.group.size() > 1:
                widths = [int(w) for w in self.group.pg.all_gather(np.array([width]))[:, 0]]
            self._starts[width] = (sum(widths[: self.group.rank()]), sum(widths))
        return self._starts[width]

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        raw = target.array if isinstance(target, Tensor) else target
        lo, vocab = self._slice(logits.shape[-1])
        if tuple(raw.shape) != tuple(logits.shape[:-1]):
            raise ConfigError(
                f"vocab-parallel cross_entropy: expected targets of shape "
                f"{tuple(logits.shape[:-1])}, found {tuple(raw.shape)}"
            )
        bad = (raw != self.ignore_index) & ((raw < 0) | (raw >= vocab))
        if bad.any():
            raise IndexError(f"target {int(raw[bad][0])} is out of bounds for {vocab} classes")
        return VocabParallelCrossEntropyFn.apply(
            logits, raw, group=self.group, lo=lo, ignore_index=self.ignore_index,
            reduction=self.reduction,
        )  # fmt: skip


def vocab_parallel_loss(loss_fn: Any, group: Any) -> Any:
    """The vocab-parallel loss that stands in for ``loss_fn`` (a token cross-entropy).

    Accepts a :class:`VocabParallelCrossEntropy` (kept), or a ``TokenCrossEntropy`` /
    ``nn.CrossEntropyLoss`` without class weights or smoothing (its ``ignore_index`` kept).
    fp16's loss scaling (:meth:`sparkgrad.engine.precision.MixedPrecision.loss_fn`) is kept
    around the vocab-parallel loss: its ``with_loss`` wraps the replacement the same way.
    Any other loss (or wrapper) cannot be split: ConfigError.
    """
    if isinstance(loss_fn, VocabParallelCrossEntropy):
        return loss_fn
    with_loss = getattr(loss_fn, "with_loss", None)
    if with_loss is not None:  # the same loss scaling, around the split loss
        return with_loss(vocab_parallel_loss(inspect.unwrap(loss_fn), group))
    plain = getattr(loss_fn, "weight", None) is None and not getattr(loss_fn, "label_smoothing", 0)
    if type(loss_fn).__name__ in ("TokenCrossEntropy", "CrossEntropyLoss") and plain:
        reduction = getattr(loss_fn, "reduction", "mean")
        return VocabParallelCrossEntropy(group, loss_fn.ignore_index, reduction)
    inner = inspect.unwrap(loss_fn)
    found = type(inner).__name__ if isinstance(inner, Module) else repr(inner)
    wrapped = " inside a wrapper" if inner is not loss_fn else ""
    raise ConfigError(
        "tensor parallelism on the GPT computes the loss from vocabulary slices: expected a "
        f"TokenCrossEntropy (or VocabParallelCrossEntropy) loss, found {found}{wrapped}"
    )
