"""A GPT training step as shapes only: the ops one rank runs, with their FLOPs and bytes.

No array is allocated: a :class:`GPTShape` (the ``--model gpt`` architecture of
:mod:`sparkgrad.models.gpt`: pre-norm blocks, GELU MLP of width 4d, learned positions, an
untied head) and a :class:`Mesh` (``dp x pp x tp x cp``) are enough to list the work of one
micro-batch on one rank. Per transformer layer, on ``T = b * s / cp`` tokens of width ``h``
with ``a`` heads, split ``tp`` ways as Megatron-LM splits it (column-parallel QKV and fc1,
row-parallel out-projection and fc2; Shoeybi et al., arXiv:1909.08053):

==============  =====================  ====================================================
op              FLOPs (forward)        bytes moved (forward; ``e`` bytes per element)
==============  =====================  ====================================================
ln1, ln2        8 T h                  2 T h e                   (read x, write y)
qkv             2 T h (3h / tp)        e (T h + 3h^2/tp + 3 T h/tp)
scores  QK^T    2 T s h / tp           e (2 T h/tp + T s a/tp)   (the score matrix written)
softmax         5 T s a / tp           2 e T s a / tp            (read and write the scores)
context  AV     2 T s h / tp           e (T s a/tp + 2 T h/tp)
proj            2 T h h / tp           e (T h/tp + h^2/tp + T h)
fc1, fc2        2 T h (4h) / tp each   e (T h + 4h^2/tp + 4T h/tp) each
gelu            8 T 4h / tp            2 e T 4h / tp
residual x 2    T h each               3 T h e each
==============  =====================  ====================================================

so a layer's matmuls do ``24 T h^2 / tp + 4 T s h / tp`` FLOPs forward -- Megatron's
``24 B s h^2 + 4 B s^2 h`` (Narayanan et al., arXiv:2104.04473, eq. 3). Backward does twice
the FLOPs of every matmul (the input gradient and the weight gradient) and moves about twice
the bytes of every elementwise op. ``recompute="full"`` runs each layer's forward once more
before its backward (Megatron's full activation recomputation). The communication a layer
needs is listed too (:class:`Comm`): with ``tp > 1`` one all-reduce of ``T h e`` bytes after
the attention and one after the MLP, forward and backward (Megatron's *g* and *f*
operators); with ``cp > 1`` an all-gather of the keys and values across the ``cp`` ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkgrad.errors import ConfigError
from sparkgrad.simulate.devices import BYTES

PRECISIONS = {
    "fp32": ("fp32", "fp32"),
    "tf32": ("tf32", "fp32"),
    "bf16": ("bf16", "bf16"),
    "fp16": ("fp16", "fp16"),
}
"""precision -> (matmul dtype, activation/gradient storage dtype)."""


@dataclass(frozen=True)
class GPTShape:
    """The sizes of a GPT: width, depth, heads, context window, vocabulary."""

    d_model: int
    layers: int
    heads: int
    context: int
    vocab: int

    def __post_init__(self) -> None:
        for key in ("d_model", "layers", "heads", "context", "vocab"):
            if getattr(self, key) < 1:
                raise ConfigError(f"GPT: expected {key} >= 1, found {getattr(self, key)}")
        if self.d_model % self.heads:
            raise ConfigError(f"GPT: d_model {self.d_model} must divide into {self.heads} heads")

    @property
    def layer_params(self) -> int:
        """Weights of one block: QKV, proj, fc1, fc2 (+ biases) and two LayerNorms."""
        h = self.d_model
        return 12 * h * h + 13 * h

    @property
    def parameters(self) -> int:
        """All weights: blocks, token and position embeddings, final LayerNorm, head."""
        h = self.d_model
        return self.layers * self.layer_params + (2 * self.vocab + self.context) * h + 2 * h


@dataclass(frozen=True)
class Mesh:
    """How the world splits: data ``dp`` x pipeline ``pp`` x tensor ``tp`` x context ``cp``."""

    dp: int = 1
    pp: int = 1
    tp: int = 1
    cp: int = 1

    @property
    def world(self) -> int:
        return self.dp * self.pp * self.tp * self.cp

    @classmethod
    def parse(cls, text: str) -> Mesh:
        """``"dp=8,tp=8,pp=4"`` (any order, missing axes are 1)."""
        sizes: dict[str, int] = {}
        for part in text.split(","):
            key, eq, value = part.strip().partition("=")
            key = key.strip().lower()
            if not eq or key not in ("dp", "pp", "tp", "cp") or key in sizes:
                raise ConfigError(
                    f"mesh {text!r}: expected comma-separated dp=N, pp=N, tp=N, cp=N (each once)"
                )
            try:
                sizes[key] = int(value)
            except ValueError:
                raise ConfigError(f"mesh {text!r}: {key}={value!r} is not an integer") from None
            if sizes[key] < 1:
                raise ConfigError(f"mesh {text!r}: expected {key} >= 1, found {sizes[key]}")
        return cls(**sizes)

    def describe(self) -> str:
        return f"dp={self.dp},pp={self.pp},tp={self.tp},cp={self.cp}"


@dataclass(frozen=True)
class Op:
    """One kernel: ``kind`` ``"matmul"`` or ``"elementwise"``; FLOPs and bytes it moves."""

    name: str
    kind: str
    flops: float
    nbytes: float


@dataclass(frozen=True)
class Comm:
    """One collective of ``nbytes`` (nccl-tests' count) among the ``group`` axis's ranks."""

    name: str
    collective: str
    nbytes: float
    group: str


def check_split(shape: GPTShape, mesh: Mesh) -> None:
    """Raise ``ConfigError`` unless the mesh divides the model evenly."""
    if shape.heads % mesh.tp or shape.d_model % mesh.tp:
        raise ConfigError(f"tp={mesh.tp} must divide heads={shape.heads} and d_model")
    if shape.layers % mesh.pp:
        raise ConfigError(f"pp={mesh.pp} must divide layers={shape.layers}")
    if shape.context % mesh.cp:
        raise ConfigError(f"cp={mesh.cp} must divide context={shape.context}")


def layer_forward(shape: GPTShape, mesh: Mesh, micro_batch: int, precision: str) -> list:
    """One block's forward on one rank: Ops and (with tp or cp > 1) Comms, in order."""
    e = BYTES[PRECISIONS[precision][1]]
    h, s, a, tp = shape.d_model, shape.context, shape.heads, mesh.tp
    t = micro_batch * s // mesh.cp  # tokens on this rank
    sa = t * s * a / tp  # score-matrix elements on this rank
    mm = "matmul"
    out: list = [
        Op("ln1", "elementwise", 8 * t * h, 2 * t * h * e),
        Op("qkv", mm, 2 * t * h * 3 * h / tp, e * (t * h + 3 * h * h / tp + 3 * t * h / tp)),
    ]
    if mesh.cp > 1:  # every rank's queries need the keys and values of the whole sequence
        out.append(Comm("cp all_gather kv", "all_gather", 2 * t * h / tp * e * mesh.cp, "cp"))
    out += [
        Op("scores", mm, 2 * t * s * h / tp, e * (2 * t * h / tp + sa)),
        Op("softmax", "elementwise", 5 * sa, 2 * e * sa),
        Op("context", mm, 2 * t * s * h / tp, e * (sa + 2 * t * h / tp)),
        Op("proj", mm, 2 * t * h * h / tp, e * (t * h / tp + h * h / tp + t * h)),
    ]
    if tp > 1:
        out.append(Comm("tp all_reduce attn", "all_reduce", t * h * e, "tp"))
    out += [
        Op("residual1", "elementwise", t * h, 3 * t * h * e),
        Op("ln2", "elementwise", 8 * t * h, 2 * t * h * e),
        Op("fc1", mm, 8 * t * h * h / tp, e * (t * h + 4 * h * h / tp + 4 * t * h / tp)),
        Op("gelu", "elementwise", 32 * t * h / tp, 8 * e * t * h / tp),
        Op("fc2", mm, 8 * t * h * h / tp, e * (4 * t * h / tp + 4 * h * h / tp + t * h)),
    ]
    if tp > 1:
        out.append(Comm("tp all_reduce mlp", "all_reduce", t * h * e, "tp"))
    out.append(Op("residual2", "elementwise", t * h, 3 * t * h * e))
    return out


def backward_of(ops: list) -> list:
    """The backward of a forward list: reversed, matmuls x2 FLOPs and bytes, others x2 bytes."""
    out: list = []
    for op in reversed(ops):
        if isinstance(op, Comm):
            out.append(
                Comm(
                    op.name.replace("all_gather", "reduce_scatter") + " (grad)",
                    "reduce_scatter" if op.collective == "all_gather" else op.collective,
                    op.nbytes,
                    op.group,
                )
            )
        elif op.kind == "matmul":
            out.append(Op(op.name + " grad", op.kind, 2 * op.flops, 2 * op.nbytes))
        else:
            out.append(Op(op.name + " grad", op.kind, 2 * op.flops, 2 * op.nbytes))
    return out


def embedding_forward(shape: GPTShape, mesh: Mesh, micro_batch: int, precision: str) -> list:
    """Token + position lookup on the first pipeline stage."""
    e = BYTES[PRECISIONS[precision][1]]
    t = micro_batch * shape.context // mesh.cp
    return [Op("embedding", "elementwise", t * shape.d_model, 3 * t * shape.d_model * e)]


def head_forward(shape: GPTShape, mesh: Mesh, micro_batch: int, precision: str) -> list:
    """Final LayerNorm, the (vocabulary-parallel) head and the cross-entropy, last stage."""
    e = BYTES[PRECISIONS[precision][1]]
    h, v, tp = shape.d_model, shape.vocab, mesh.tp
    t = micro_batch * shape.context // mesh.cp
    return [
        Op("ln_f", "elementwise", 8 * t * h, 2 * t * h * e),
        Op("head", "matmul", 2 * t * h * v / tp, e * (t * h + h * v / tp + t * v / tp)),
        Op("cross_entropy", "elementwise", 5 * t * v / tp, 2 * t * v / tp * 4),
    ]


def stage_params(shape: GPTShape, mesh: Mesh, stage: int) -> float:
    """Weights held by one rank of pipeline ``stage`` (its layers, /tp; embeddings, head)."""
    h = shape.d_model
    n = shape.layers // mesh.pp * shape.layer_params / mesh.tp
    if stage == 0:
        n += (shape.vocab / mesh.tp + shape.context) * h
    if stage == mesh.pp - 1:
        n += shape.vocab * h / mesh.tp + 2 * h
    return n


def model_flops_per_token(shape: GPTShape) -> float:
    """Training FLOPs per token without recomputation: 3 x (forward matmuls) per token."""
    h, s, L, v = shape.d_model, shape.context, shape.layers, shape.vocab
    return 3 * (L * (24 * h * h + 4 * s * h) + 2 * h * v)


def megatron_flops(shape: GPTShape, batch: int, recompute: bool = True) -> float:
    """Narayanan et al. eq. 3, FLOPs of one step of ``batch`` sequences:
    ``96 B s l h^2 (1 + s/(6h) + V/(16 l h))`` = ``96 B s l h^2 + 16 B s^2 l h + 6 B s h V``,
    the layers' terms counting the extra forward of full recomputation (x 3/4 without it)."""
    h, s, L, v = shape.d_model, shape.context, shape.layers, shape.vocab
    layers = 96 * batch * s * L * h * h + 16 * batch * s * s * L * h
    return layers * (1.0 if recompute else 0.75) + 6 * batch * s * h * v
