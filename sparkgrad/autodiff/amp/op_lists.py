"""Which ops autocast runs in which precision: PyTorch's lists, mapped onto sparkgrad's ops.

Source: PyTorch's ``aten/src/ATen/autocast_mode.h`` (``AT_FORALL_LOWER_PRECISION_FP``,
``AT_FORALL_FP32``, ``AT_FORALL_FP32_SET_OPT_DTYPE``, ``AT_FORALL_PROMOTE``) and
``autocast_mode.cpp`` (the ``AutocastCPU`` registrations), as documented in the "Autocast
Op Reference" of https://pytorch.org/docs/stable/amp.html. The lists are per device, and
they differ: on the CPU PyTorch lowers the same matmul-like ops but keeps only the losses
(not softmax, layer norm, exp/log or sums) in float32.

Every policy applies to *eligible* inputs only: floating tensors that are not float64, on
the autocast's device. Integer tensors (targets, token ids) and float64 are never touched.

==================  ===========================================  ==========================
policy              ``device_type="cpu"``                        ``device_type="cuda"``
==================  ===========================================  ==========================
lower precision     matmul / mm / bmm / ``@`` (``MatMul``),      the same
(cast to the        linear (``Linear``), conv2d (``Conv2d``),
autocast dtype)     scaled_dot_product_attention
                    (``ScaledDotProductAttention``, and so
                    MultiheadAttention's matmuls)
float32             cross_entropy, nll_loss, mse_loss, l1_loss,  the CPU list (but
(cast up)           smooth_l1_loss, huber_loss,                  binary_cross_entropy is
                    binary_cross_entropy(_with_logits)           *banned*, as PyTorch)
                                                                 plus softmax, log_softmax,
                                                                 layer_norm, sum, exp,
                                                                 expm1, log, log2, log10,
                                                                 log1p, reciprocal, rsqrt,
                                                                 pow, softplus, sinh, cosh,
                                                                 tan, asin, acos
promote (to the     cat, stack                                   cat, stack, atan2, dot
widest input type)
==================  ===========================================  ==========================

Everything else (relu, gelu, add, dropout, embedding, mean, max, batch_norm ...) runs in
whatever dtype its inputs have: an op fed a bfloat16 activation answers bfloat16, one fed
float32 weights answers float32 — exactly PyTorch's "ops not listed" rule. Note what that
means on the CPU: ``softmax(linear(x))`` is bfloat16 there in PyTorch and here alike, while
a softmax of float32 data stays float32 (autocast never lowers it). ``dot`` is not listed
on the CPU (it keeps its inputs' dtype) but ``matmul`` of two vectors is (as in PyTorch).
ZeRO-3's gathered linear (``GatheredLinear``, sparkgrad.parallel.zero.shard_unit) is
lowered like ``Linear``: its input is rounded and its output is 16-bit, so a stage-3 layer
computes what an ``nn.Linear`` does under autocast (its weights are gathered 16-bit shards in
ZeRO's own precision, and its weight shard's gradient comes back through the cast).

The lists name op *classes* (``Function`` subclasses); ``tests/autodiff/amp`` checks that
each name still exists, so a renamed op cannot silently fall off a list.
"""

from __future__ import annotations

LOWER = "lower"  # run in the autocast dtype (float16 / bfloat16)
FP32 = "fp32"  # run in float32
PROMOTE = "promote"  # run in the widest floating dtype among the inputs
BANNED = "banned"  # unsafe under autocast: raise, as PyTorch does

_LOWER_OPS = ("MatMul", "Linear", "Conv2d", "ScaledDotProductAttention", "GatheredLinear")
_CPU_FP32_OPS = (
    "CrossEntropy",
    "NLLLoss",
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
)
_CUDA_EXTRA_FP32_OPS = (
    "Softmax",
    "LogSoftmax",
    "LayerNorm",
    "Sum",
    "Exp",
    "Expm1",
    "Log",
    "Log2",
    "Log10",
    "Log1p",
    "Reciprocal",
    "Rsqrt",
    "Pow",
    "Softplus",
    "Sinh",
    "Cosh",
    "Tan",
    "Asin",
    "Acos",
)

POLICIES: dict[str, dict[str, str]] = {
    "cpu": {
        **dict.fromkeys(_LOWER_OPS, LOWER),
        **dict.fromkeys(_CPU_FP32_OPS, FP32),
        **dict.fromkeys(("Cat", "Stack"), PROMOTE),
    },
    "cuda": {
        **dict.fromkeys(_LOWER_OPS, LOWER),
        **dict.fromkeys(_CPU_FP32_OPS + _CUDA_EXTRA_FP32_OPS, FP32),
        **dict.fromkeys(("Cat", "Stack", "Atan2", "Dot"), PROMOTE),
        "BinaryCrossEntropy": BANNED,
    },
}

BANNED_MESSAGE = (
    "binary_cross_entropy and BCELoss are unsafe to autocast. Many models use a sigmoid "
    "layer right before the binary cross entropy layer. In this case, combine the two layers "
    "using binary_cross_entropy_with_logits or BCEWithLogitsLoss, which are safe to autocast."
)


def policy_of(device_type: str, op_name: str) -> str | None:
    """The policy of op class ``op_name`` under autocast on ``device_type`` (None: unlisted)."""
    return POLICIES[device_type].get(op_name)
