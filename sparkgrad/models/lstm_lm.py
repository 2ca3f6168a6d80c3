"""``LSTMLanguageModel``: the same character-level task as :mod:`.gpt`, with an LSTM
(``--model lstm-lm``), the model of PyTorch's word-language-model example.

::

    ids (N, T) -embedding-> (N, T, d) -dropout-> -nn.LSTM (num_layers, batch_first)->
      (N, T, d) -dropout-> -decoder (Linear d→V)-> (N, T, V)

Where GPT's position ``t`` looks back at every earlier position through attention, the
LSTM carries one state ``(h, c)`` forward step by step; backpropagation through time sends
the gradient back along that chain. Compare the two on one corpus: same loss, same data.
"""

from __future__ import annotations

import sparkgrad as sg
from sparkgrad.autodiff import nn
from sparkgrad.autodiff.grad_mode import no_grad
from sparkgrad.autodiff.random import manual_seed
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.models.sequence_parts import check_token_ids, sample_next

__all__ = ["LSTMLanguageModel", "build_lstm_lm"]


class LSTMLanguageModel(nn.Module):
    """Embedding → LSTM → Linear, with dropout around the LSTM as in PyTorch's example."""

    def __init__(
        self,
        vocab_size: int,
        context: int = 64,
        d_model: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.vocab_size, self.context = vocab_size, context
        self.encoder = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.LSTM(d_model, d_model, num_layers, batch_first=True, dropout=dropout)
        self.decoder = nn.Linear(d_model, vocab_size)
        if tie_weights:
            self.decoder.weight = self.encoder.weight

    def forward(self, ids: Tensor, state: tuple | None = None) -> Tensor:
        check_token_ids(ids, self.vocab_size, self.context)
        out, _ = self.rnn(self.drop(self.encoder(ids)), state)
        return self.decoder(self.drop(out))

    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> Tensor:
        """``prompt`` (N, T0) followed by ``max_new_tokens`` sampled ids; the state carries on."""
        check_token_ids(prompt, self.vocab_size)  # no context limit: the state carries on
        was_training = self.training
        self.eval()
        with no_grad():
            out, state = self.rnn(self.encoder(prompt))
            ids = prompt
            for _ in range(max_new_tokens):
                nxt = sample_next(self.decoder(out[:, -1]), temperature, top_k).reshape(-1, 1)
                ids = sg.cat([ids, nxt], 1)
                out, state = self.rnn(self.encoder(nxt), state)
        self.train(was_training)
        return ids


def build_lstm_lm(vocab_size: int, seed: int = 0, **options: object) -> LSTMLanguageModel:
    """A :class:`LSTMLanguageModel` drawn right after ``manual_seed(seed)``."""
    manual_seed(seed)
    return LSTMLanguageModel(vocab_size, **options)
