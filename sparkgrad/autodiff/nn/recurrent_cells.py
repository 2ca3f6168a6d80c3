"""One step of a recurrent network: the cell equations, and ``RNNCell``/``LSTMCell``/``GRUCell``.

A recurrent cell reads one input ``x`` and the state it left itself last time, ``h``
(an LSTM also a cell state ``c``), and returns the new state. With σ the sigmoid and ∘
the element-wise product, the three cells of ``torch.nn`` are::

    RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)            (or relu instead of tanh)

    LSTM  i  = σ(W_ii x + b_ii + W_hi h + b_hi)      input gate:  how much to write
          f  = σ(W_if x + b_if + W_hf h + b_hf)      forget gate: how much to keep
          g  = tanh(W_ig x + b_ig + W_hg h + b_hg)   the candidate to write
          o  = σ(W_io x + b_io + W_ho h + b_ho)      output gate: how much to show
          c' = f ∘ c + i ∘ g
          h' = o ∘ tanh(c')

    GRU   r  = σ(W_ir x + b_ir + W_hr h + b_hr)      reset gate
          z  = σ(W_iz x + b_iz + W_hz h + b_hz)      update gate
          n  = tanh(W_in x + b_in + r ∘ (W_hn h + b_hn))
          h' = (1 - z) ∘ n + z ∘ h                   computed as n + z ∘ (h - n)

The gates' weights are stacked in one matrix per side, in PyTorch's order (LSTM ``i, f, g,
o``; GRU ``r, z, n``): ``weight_ih`` is ``(gates·hidden, input)``, ``weight_hh`` is
``(gates·hidden, hidden)``, so one matmul per side computes every gate and
:func:`~sparkgrad.nn.functional.chunk` cuts the result apart. The two biases are
redundant (only their sum matters) except in the GRU's ``n``, where ``b_hn`` sits inside
``r ∘ (...)``; PyTorch keeps both everywhere (cuDNN's layout), and so do we.

Why LSTM and GRU? In a plain RNN the gradient travelling back one step is multiplied by
``W_hhᵀ·diag(1 - h'²)``; over many steps such products vanish or explode. The LSTM's
``c' = f ∘ c + ...`` is an additive path: back one step its gradient is only multiplied by
``f``, which the network can learn to hold near 1 (the GRU's ``z ∘ h`` likewise).

The step functions below take ``gi = W_ih x + b_ih``, the input's part of the gates,
already computed: it does not depend on ``h``, so a whole-sequence layer
(:mod:`.recurrent`) computes it for every time step in one matmul before its loop. A
cell module computes it for its one step. Everything here is ordinary differentiable ops;
their backward is the engine's.
"""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.custom_function import Function as _TensorFunction
from sparkgrad.autodiff.nn import init
from sparkgrad.autodiff.nn.linear import empty_parameter
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "rnn_step", "lstm_step", "gru_step", "unbind"]


# ---- the cell equations, one time step ---------------------------------------------------
def rnn_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, relu: bool) -> Tensor:
    """``h' = tanh(gi + W_hh h + b_hh)`` (``relu`` instead of tanh when asked)."""
    pre = gi + F.linear(h, w_hh, b_hh)
    return F.relu(pre) if relu else F.tanh(pre)


def lstm_step(
    gi: Tensor,
    h: Tensor,
    c: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``(h', c')`` of one LSTM step; with ``w_hr`` (``proj_size``) ``h' = W_hr (o ∘ tanh c')``."""
    i, f, g, o = F.chunk(gi + F.linear(h, w_hh, b_hh), 4, -1)
    c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    h = F.sigmoid(o) * F.tanh(c)
    return (h if w_hr is None else F.linear(h, w_hr)), c


def gru_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """``h'`` of one GRU step (the hidden part ``W_hh h + b_hh`` is kept apart for ``r ∘``)."""
    i_r, i_z, i_n = F.chunk(gi, 3, -1)
    h_r, h_z, h_n = F.chunk(F.linear(h, w_hh, b_hh), 3, -1)
    r = F.sigmoid(i_r + h_r)
    z = F.sigmoid(i_z + h_z)
    n = F.tanh(i_n + r * h_n)
    return n + z * (h - n)


class _Unbind(_TensorFunction):
    """z_t = a[t] for every t at once;  dL/da = the z_t's gradients stacked

    ``x[t]`` in a loop would cost O(T²): each slice's backward scatters into a zero
    array of the whole input. One node with T outputs stacks their gradients once.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor) -> tuple[Tensor, ...]:
        return tuple(Tensor._wrap(a.array[t]) for t in range(a.shape[0]))

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> Tensor:
        xp = array_module(grads[0].array)
        return Tensor._wrap(xp.stack([g.array for g in grads]))


def unbind(x: Tensor) -> tuple[Tensor, ...]:
    """``x[0], x[1], ...`` along the first axis, as ``torch.unbind(x)``, differentiable."""
    if x.shape[0] == 0:
        return ()
    return _Unbind.apply(x)


# ---- the cell modules --------------------------------------------------------------------
class RNNCellBase(Module):
    """Parameters ``weight_ih, weight_hh, bias_ih, bias_hh`` of ``gates`` stacked blocks, and
    the argument checks every cell shares (PyTorch's messages)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        gates: int,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        make = lambda *shape: empty_parameter(*shape, device=device, dtype=dtype)  # noqa: E731
        self.weight_ih = make(gates * hidden_size, input_size)
        self.weight_hh = make(gates * hidden_size, hidden_size)
        if bias:
            self.bias_ih = make(gates * hidden_size)
            self.bias_hh = make(gates * hidden_size)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: every weight and bias from U(-1/sqrt(hidden), 1/sqrt(hidden))."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _batched(self, input: Tensor, states: tuple[Tensor | None, ...]) -> tuple[Any, ...]:  # noqa: A002
        """Check ``input`` and the states; return them 2-D, plus whether input was batched."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ShapeError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        weight = self._parameters["weight_ih"]
        if input.dtype != weight.dtype:
            raise ConfigError(
                f"{name} input dtype ({input.dtype}) does not match weight dtype "
                f"({weight.dtype}): convert one of them (input.to(...) or model.to(...))"
            )
        batched = input.ndim == 2
        x = input if batched else F.unsqueeze(input, 0)
        if x.shape[1] != self.input_size:
            raise ShapeError(
                f"input has inconsistent input_size: got {x.shape[1]} expected {self.input_size}"
            )
        out = []
        for k, s in enumerate(states):
            if s is None:
                s = x.new_zeros(x.shape[0], self.hidden_size)
            else:
                if s.ndim != input.ndim:
                    kind = "batched 2-D" if batched else "unbatched 1-D"
                    raise ShapeError(
                        f"{name}: for {kind} input, hx should also be {input.ndim}-D but got "
                        f"{s.ndim}-D tensor"
                    )
                s = s if batched else F.unsqueeze(s, 0)
                if s.shape[0] != x.shape[0]:
                    raise ShapeError(
                        f"Input batch size {x.shape[0]} doesn't match hidden{k} batch size "
                        f"{s.shape[0]}"
                    )
                if s.shape[1] != self.hidden_size:
                    raise ShapeError(
                        f"hidden{k} has inconsistent hidden_size: got {s.shape[1]}, "
                        f"expected {self.hidden_size}"
                    )
            out.append(s)
        return (x, *out, batched)

    def _input_gates(self, x: Tensor) -> Tensor:
        return F.linear(x, self._parameters["weight_ih"], self._parameters["bias_ih"])

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text


class RNNCell(RNNCellBase):
    """An Elman cell: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ``relu``)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        x, h, batched = self._batched(input, (hx,))
        p = self._parameters
        relu = self.nonlinearity == "relu"
        h = rnn_step(self._input_gates(x), h, p["weight_hh"], p["bias_hh"], relu)
        return h if batched else F.squeeze(h, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step: ``(h', c')`` from ``x`` and ``(h, c)`` (zeros when ``hx`` is None)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(
        self,
        input: Tensor,  # noqa: A002
        hx: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        if hx is not None and (isinstance(hx, Tensor) or len(hx) != 2):
            found = "a Tensor" if isinstance(hx, Tensor) else f"{len(hx)} tensors"
            raise ShapeError(f"LSTMCell expects hx to be a tuple (h_0, c_0), found {found}")
        x, h, c, batched = self._batched(input, (None, None) if hx is None else tuple(hx))
        p = self._parameters
        h, c = lstm_step(self._input_gates(x), h, c, p["weight_hh"], p["bias_hh"])
        return (h, c) if batched else (F.squeeze(h, 0), F.squeeze(c, 0))


class GRUCell(RNNCellBase):
    """One GRU step: ``h'`` from ``x`` and ``h`` (zeros when ``hx`` is None)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        x, h, batched = self._batched(input, (hx,))
        p = self._parameters
        h = gru_step(self._input_gates(x), h, p["weight_hh"], p["bias_hh"])
        return h if batched else F.squeeze(h, 0)
