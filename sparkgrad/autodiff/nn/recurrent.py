"""``RNN``, ``LSTM`` and ``GRU``: a cell (:mod:`.recurrent_cells`) run over a whole sequence.

A recurrent layer applies the *same* cell at every time step, feeding each step the
state the previous one left::

    h_0 = hx (zeros by default)
    for t in 0 .. T-1:
        h_{t+1} = cell(x_t, h_t; W)          output[t] = h_{t+1}

That Python loop is the whole implementation. Each step is made of ordinary
differentiable ops, so running it records a graph T cells deep — the network *unrolled
in time*, one copy of the cell per step, all copies sharing the parameters ``W``.

**Backpropagation through time (BPTT)** is nothing but the engine's ordinary backward
over that unrolled graph. Two things fall out of it without a line of special code:

- the gradient reaching a hidden state is the sum of what its two consumers send back,
  the output at that step and the next step's cell:
  ``dL/dh_t = dL/dy_t + dL/dh_{t+1} · ∂h_{t+1}/∂h_t`` (for the tanh RNN
  ``∂h_{t+1}/∂h_t = diag(1 - h_{t+1}²) · W_hh``), walked from the last step to the first;
- ``W`` is one leaf used by T nodes, so its gradient is the sum of the T per-step
  contributions, e.g. ``dL/dW_hh = Σ_t δ_t · h_tᵀ`` with ``δ_t = dL/dh_{t+1} ∘ (1 - h_{t+1}²)``.

Its costs follow as well: every step's activations stay alive until backward (memory
grows with T), and the gradient to an early step is a product of T Jacobians, which
vanishes or explodes. Hence the two habits of every language-model script: *truncated*
BPTT (``h = h.detach()`` between batches, so the graph, and the product, stop at the batch
boundary) and gradient clipping (``nn.utils.clip_grad_norm_``).

The layers add only bookkeeping around the loop, as ``torch.nn`` does:

- ``num_layers`` stacks layers (layer ``l`` reads layer ``l-1``'s outputs), with
  ``dropout`` on every layer's output but the last, in training mode only;
- ``bidirectional`` runs a second cell from the last step to the first, with its own
  ``..._reverse`` weights, and concatenates both outputs feature-wise;
- shapes: input ``(T, N, input_size)`` (``(N, T, ...)`` with ``batch_first``, or ``(T,
  input_size)`` unbatched); ``output`` ``(T, N, D·hidden_size)``; ``h_n``
  ``(num_layers·D, N, hidden_size)`` ordered layer 0 forward, layer 0 reverse, layer 1 ...;
- parameters ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
  (+ ``_reverse``; LSTM with ``proj_size`` also ``weight_hr_l{k}``) in PyTorch's names,
  shapes and order, so state dicts move between the two unchanged.

One speed-up keeps the loop honest and cheap: the input's part of the gates, ``W_ih x_t +
b_ih``, does not depend on the state, so it is computed for all T steps in one matmul
before the loop (as PyTorch's CPU kernel does); :func:`~.recurrent_cells.unbind` then hands
the loop one slice per step without the O(T²) cost of T separate ``x[t]`` backwards.
Only padded tensors are taken (no ``PackedSequence``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.nn import init
from sparkgrad.autodiff.nn.linear import empty_parameter
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.nn.recurrent_cells import gru_step, lstm_step, rnn_step, unbind
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = ["RNNBase", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class RNNBase(Module):
    """The parameters, checks and time loop shared by ``RNN``, ``LSTM`` and ``GRU``.

    A subclass says what one step is (:meth:`_step`) and how many states it carries
    (1, or 2 for the LSTM's ``(h, c)``).
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _check_config(input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        gate_size, out_size = _GATES[mode] * hidden_size, proj_size or hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            for direction in range(directions):
                layer_input = input_size if layer == 0 else out_size * directions
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, out_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                for kind, shape in shapes.items():
                    param = empty_parameter(*shape, device=device, dtype=dtype)
                    setattr(self, kind + suffix, param)
                self._all_weights.append([kind + suffix for kind in shapes])
                self._flat_weights_names.extend(self._all_weights[-1])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: every weight and bias from U(-1/sqrt(hidden), 1/sqrt(hidden))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters grouped per layer and direction, as ``torch.nn.RNNBase.all_weights``."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """A no-op, as PyTorch's on the CPU (it packs weights for cuDNN; nothing to pack here)."""

    # ---- the time loop ---------------------------------------------------------------
    def _step(self, gi: Tensor, state: tuple[Tensor, ...], w: dict) -> tuple[Tensor, ...]:
        """The next state from ``gi = W_ih x_t + b_ih`` and the current one; ``[0]`` is h."""
        raise NotImplementedError

    def _run(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Every layer and direction over the time-major ``x`` (T, N, F): ``(output, finals)``.

        ``states`` holds one ``(num_layers·D, N, ·)`` tensor per kind of state (h; or h, c).
        """
        directions = 2 if self.bidirectional else 1
        steps = x.shape[0]
        initial = [unbind(s) for s in states]  # per (layer, direction): (N, ·) tensors
        finals: list[list[Tensor]] = [[] for _ in states]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                w = self._weights(layer, direction)
                gi = unbind(F.linear(x, w["weight_ih"], w["bias_ih"]))  # all T steps at once
                state = tuple(s[k] for s in initial)
                ys: list[Any] = [None] * steps
                for t in reversed(range(steps)) if direction else range(steps):
                    state = self._step(gi[t], state, w)
                    ys[t] = state[0]
                outputs.append(F.stack(ys))
                for final, s in zip(finals, state):
                    final.append(s)
            x = outputs[0] if directions == 1 else F.cat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, [F.stack(f) for f in finals]

    def _weights(self, layer: int, direction: int) -> dict:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        p = self._parameters
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        return {kind: p.get(kind + suffix) for kind in kinds}

    # ---- arguments in, results out ---------------------------------------------------
    def _forward(self, input: Tensor, hx: tuple[Tensor, ...] | None) -> tuple[Tensor, list]:  # noqa: A002
        """Check and reshape the arguments, run the loop, give the results PyTorch's shapes."""
        name = type(self).__name__
        if hasattr(input, "batch_sizes"):
            raise NotImplementedError(
                f"{name}: PackedSequence is not implemented in sparkgrad; pass the padded "
                "tensor (T, N, *) and mask the padded steps out of the loss instead"
            )
        if input.ndim not in (2, 3):
            raise ShapeError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        weight = self._parameters["weight_ih_l0"]
        if input.dtype != weight.dtype:
            raise ConfigError(
                f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight.dtype}). "
                f"Convert input: input.to({weight.dtype}), or convert model: "
                f"model.to({input.dtype})"
            )
        batched, batch_dim = input.ndim == 3, 0 if self.batch_first else 1
        x = input if batched else F.unsqueeze(input, batch_dim)
        if x.shape[-1] != self.input_size:
            raise ShapeError(
                "input.size(-1) must be equal to input_size. "
                f"Expected {self.input_size}, got {x.shape[-1]}"
            )
        if self.batch_first:
            x = F.transpose(x, 0, 1)
        if x.shape[0] == 0:
            raise ShapeError(f"{name}: Expected sequence length to be larger than 0, got 0")
        states = self._initial_states(x, hx, batched)
        output, finals = self._run(x, states)
        if self.batch_first:
            output = F.transpose(output, 0, 1)
        if not batched:
            output = F.squeeze(output, batch_dim)
            finals = [F.squeeze(f, 1) for f in finals]
        return output, finals

    def _initial_states(self, x: Tensor, hx: tuple[Tensor, ...] | None, batched: bool) -> list:
        """``hx`` checked against PyTorch's expected shapes (zeros when None), 3-D."""
        layers = self.num_layers * (2 if self.bidirectional else 1)
        batch, hidden = x.shape[1], self.proj_size or self.hidden_size
        expected = [(layers, batch, hidden), (layers, batch, self.hidden_size)][: self._n_states]
        if hx is None:
            return [x.new_zeros(*shape) for shape in expected]
        states = []
        for k, (h, shape) in enumerate(zip(hx, expected)):
            if h.ndim != (3 if batched else 2):
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise ShapeError(
                    f"For {kind} input, hx should also be {3 if batched else 2}-D but got "
                    f"{h.ndim}-D tensor"
                )
            h = h if batched else F.unsqueeze(h, 1)
            if tuple(h.shape) != shape:
                what = "hidden" if self._n_states == 1 else f"hidden[{k}]"
                raise ShapeError(f"Expected {what} size {shape}, got {list(h.shape)}")
            if h.dtype != x.dtype:
                raise ConfigError(f"hx dtype ({h.dtype}) does not match input dtype ({x.dtype})")
            states.append(h)
        return states

    _n_states = 1

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if self.batch_first is not False:
            text += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            text += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            text += f", bidirectional={self.bidirectional}"
        return text


def _check_config(
    input_size: Any,
    hidden_size: Any,
    num_layers: Any,
    bias: Any,
    batch_first: Any,
    dropout: Any,
    proj_size: Any,
) -> None:
    """PyTorch's constructor checks, with its messages."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise ConfigError(
            "dropout should be a number in range [0, 1] representing the probability of an "
            f"element being zeroed, got {dropout!r}"
        )
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero "
            "dropout expects num_layers greater than 1, but got "
            f"dropout={dropout} and num_layers={num_layers}",
            stacklevel=4,
        )
    for name, value in (("bias", bias), ("batch_first", batch_first)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ConfigError(f"{name} must be greater than zero, got {value}")
    if num_layers <= 0:
        raise ConfigError(f"num_layers must be greater than zero, got {num_layers}")
    if proj_size < 0:
        raise ConfigError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ConfigError(
            f"proj_size has to be smaller than hidden_size, got {proj_size} >= {hidden_size}"
        )


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or ``relu``).

    ``forward(input, hx=None)`` returns ``(output, h_n)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, 0, device, dtype,
        )  # fmt: skip
        self.nonlinearity = nonlinearity

    def _step(self, gi: Tensor, state: tuple[Tensor, ...], w: dict) -> tuple[Tensor, ...]:
        return (rnn_step(gi, state[0], w["weight_hh"], w["bias_hh"], self.mode == "RNN_RELU"),)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
        output, (h_n,) = self._forward(input, None if hx is None else (hx,))
        return output, h_n


class LSTM(RNNBase):
    """Long short-term memory: the LSTM cell over the sequence, carrying ``(h, c)``.

    ``forward(input, hx=None)`` with ``hx = (h_0, c_0)`` returns ``(output, (h_n, c_n))``.
    With ``proj_size > 0`` each ``h`` is projected to ``proj_size`` by ``weight_hr_l{k}``.
    """

    _n_states = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, proj_size, device, dtype,
        )  # fmt: skip

    def _step(self, gi: Tensor, state: tuple[Tensor, ...], w: dict) -> tuple[Tensor, ...]:
        h, c = state
        return lstm_step(gi, h, c, w["weight_hh"], w["bias_hh"], w["weight_hr"])

    def forward(
        self,
        input: Tensor,  # noqa: A002
        hx: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if hx is not None and (isinstance(hx, Tensor) or len(hx) != 2):
            found = "a Tensor" if isinstance(hx, Tensor) else f"{len(hx)} tensors"
            raise ShapeError(f"LSTM expects hx to be a tuple (h_0, c_0), found {found}")
        output, (h_n, c_n) = self._forward(input, None if hx is None else tuple(hx))
        return output, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit: the GRU cell over the sequence.

    ``forward(input, hx=None)`` returns ``(output, h_n)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, 0, device, dtype,
        )  # fmt: skip

    def _step(self, gi: Tensor, state: tuple[Tensor, ...], w: dict) -> tuple[Tensor, ...]:
        return (gru_step(gi, state[0], w["weight_hh"], w["bias_hh"]),)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
        output, (h_n,) = self._forward(input, None if hx is None else (hx,))
        return output, h_n
