"""``--recompute none|blocks|selective``: which activations a model recomputes in backward.

- ``none``: every op keeps what its backward needs (the default, fastest).
- ``blocks``: each Transformer layer (each ``Linear``+``ReLU`` block of the MLP) runs under
  :func:`~sparkgrad.autodiff.checkpoint.checkpoint`: the graph keeps one input per block and
  backward recomputes the block — ``L`` layers' activations become ``L`` layer inputs plus
  one layer recomputed at a time.
- ``selective`` (Megatron-LM's "selective activation recomputation"): only attention's
  softmax probabilities and dropout mask — the ``(N, H, s, s)`` tensors, the only ones that
  grow with the square of the sequence length — are recomputed; everything else is kept.
  Cheap to recompute, and for long sequences most of the memory.

Both are flags the modules honour (``TransformerEncoder.checkpoint_layers``,
``MultiheadAttention.selective_recompute``), so the weights, their names and the
``state_dict`` stay exactly those of the model without recompute; the gradients are the same
bit for bit (dropout masks are replayed from the saved RNG state).
"""

from __future__ import annotations

from sparkgrad.autodiff import nn
from sparkgrad.autodiff.checkpoint import checkpoint
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError

__all__ = ["RECOMPUTE_MODES", "CheckpointedSequential", "set_recompute"]

RECOMPUTE_MODES = ("none", "blocks", "selective")


class CheckpointedSequential(nn.Sequential):
    """A ``Sequential`` that checkpoints each ``Linear`` together with the layers after it
    up to the next ``Linear`` (its activation), keeping only each block's input.

    Same children, names and ``state_dict`` as the plain ``Sequential`` it replaces.
    """

    def _get_name(self) -> str:
        return "Sequential"

    def forward(self, x: Tensor) -> Tensor:
        blocks: list[list[nn.Module]] = []
        for layer in self:
            if isinstance(layer, nn.Linear) or not blocks:
                blocks.append([])
            blocks[-1].append(layer)
        for block in blocks:
            x = checkpoint(_run_block, x, *block, use_reentrant=False)
        return x


def _run_block(x: Tensor, *layers: nn.Module) -> Tensor:
    for layer in layers:
        x = layer(x)
    return x


def set_recompute(model: nn.Module, mode: str) -> nn.Module:
    """Switch ``model``'s blocks or attention to recomputation (see the module docstring)."""
    if mode not in RECOMPUTE_MODES:
        raise ConfigError(
            f"--recompute must be one of {', '.join(RECOMPUTE_MODES)}, found {mode!r}"
        )
    if mode == "none":
        return model
    stacks = [m for m in model.modules() if hasattr(m, "checkpoint_layers")]
    attentions = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    if mode == "selective":
        if not attentions:
            raise ConfigError(
                "--recompute selective recomputes attention's softmax and dropout, and this "
                f"model ({type(model).__name__}) has no attention; use --recompute blocks"
            )
        for attention in attentions:
            attention.selective_recompute = True
        return model
    if stacks:
        for stack in stacks:
            stack.checkpoint_layers = True
        return model
    if isinstance(model, CheckpointedSequential):  # build_mlp(recompute="blocks") made it
        return model
    raise ConfigError(
        f"--recompute blocks needs Transformer layers or an MLP (a Sequential), found "
        f"{type(model).__name__}"
    )
