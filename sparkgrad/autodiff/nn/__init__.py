"""``sparkgrad.nn``'s layers: ``Module``, ``Parameter``, ``DenseLayer``/``Linear``, containers,
activations, dropout, normalisation, convolution, pooling, embeddings, losses, attention
and the Transformer, as in ``torch.nn``.

Read ``parameter`` → ``module`` (the tree) → ``state_dict`` → ``linear`` → the rest;
``init`` holds the initialisers and ``utils`` gradient clipping.
"""

from sparkgrad.autodiff.nn import init, utils
from sparkgrad.autodiff.nn.activation import (
    ELU,
    GELU,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from sparkgrad.autodiff.nn.attention import MultiheadAttention
from sparkgrad.autodiff.nn.batchnorm import BatchNorm1d, BatchNorm2d
from sparkgrad.autodiff.nn.containers import ModuleDict, ModuleList, Sequential
from sparkgrad.autodiff.nn.conv import Conv2d
from sparkgrad.autodiff.nn.dropout import Dropout, Dropout2d
from sparkgrad.autodiff.nn.embedding import Embedding
from sparkgrad.autodiff.nn.flatten import Flatten
from sparkgrad.autodiff.nn.linear import DenseLayer, Identity, Linear
from sparkgrad.autodiff.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.normalization import LayerNorm
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from sparkgrad.autodiff.nn.recurrent import GRU, LSTM, RNN, RNNBase
from sparkgrad.autodiff.nn.recurrent_cells import GRUCell, LSTMCell, RNNCell, RNNCellBase
from sparkgrad.autodiff.nn.state_dict import IncompatibleKeys
from sparkgrad.autodiff.nn.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "Module", "Parameter", "IncompatibleKeys",
    "DenseLayer", "Linear", "Identity",
    "Sequential", "ModuleList", "ModuleDict",
    "ReLU", "GELU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax",
    "LeakyReLU", "ELU", "SiLU", "Softplus", "Hardtanh",
    "Dropout", "Dropout2d", "LayerNorm", "Embedding", "Flatten",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
    "BCELoss", "BCEWithLogitsLoss",
    "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d",
    "MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder",
    "TransformerEncoderLayer", "TransformerDecoderLayer",
    "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell",
]  # fmt: skip
