"""``GPT``: a decoder-only, character-level language model (``--model gpt``).

::

    ids (N, T) -token embedding + position embedding-> (N, T, d) -dropout
      -num_layers x [ x + attn(LN(x), causal) ; x + MLP(LN(x)) ]   (pre-norm blocks, GELU)
      -LayerNorm-> -head (Linear d→V, optionally the token embedding's own matrix)-> (N, T, V)

Position ``t`` may look at positions ``0..t`` only (the causal mask), so one forward pass
trains all ``T`` next-character predictions of a window at once. The blocks are
``nn.TransformerEncoderLayer(norm_first=True, activation="gelu")``: an "encoder" layer with
a causal mask *is* a GPT block (PyTorch users build GPTs the same way). ``generate``
samples text one character at a time, feeding each choice back in.
"""

from __future__ import annotations

import sparkgrad as sg
from sparkgrad.autodiff import nn
from sparkgrad.autodiff.grad_mode import no_grad
from sparkgrad.autodiff.random import manual_seed
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.models.recompute import set_recompute
from sparkgrad.models.sequence_parts import check_token_ids, sample_next

__all__ = ["GPT", "build_gpt"]


class GPT(nn.Module):
    """Token + learned position embeddings → pre-norm causal blocks → LayerNorm → head."""

    def __init__(
        self,
        vocab_size: int,
        context: int = 64,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dropout: float = 0.0,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.vocab_size, self.context = vocab_size, context
        self.token = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(
            d_model, nhead, 4 * d_model, dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        self.blocks = nn.TransformerEncoder(block, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:  # one (V, d) matrix reads tokens in and writes them out
            self.head.weight = self.token.weight

    def forward(self, ids: Tensor) -> Tensor:
        check_token_ids(ids, self.vocab_size, self.context)
        t = ids.shape[1]
        x = self.token(ids) + self.position(self._arange(t, ids.device))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=ids.device)
        x = self.blocks(self.dropout(x), mask=mask, is_causal=True)
        return self.head(self.norm(x))

    def _arange(self, t: int, device: str) -> Tensor:
        """``arange(t)`` on ``device``, made once per length (built on the host, a GPU step
        would copy it over every time); not a buffer, so not in the state_dict."""
        cached = self.__dict__.get("_arange_cache")
        if cached is None or cached.device != device or cached.shape[0] != t:
            cached = self.__dict__["_arange_cache"] = sg.arange(t, device=device)
        return cached

    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> Tensor:
        """``prompt`` (N, T0) followed by ``max_new_tokens`` sampled ids (N, T0 + new)."""
        was_training = self.training
        self.eval()
        ids = prompt
        with no_grad():
            for _ in range(max_new_tokens):
                logits = self(ids[:, -self.context :])[:, -1]
                ids = sg.cat([ids, sample_next(logits, temperature, top_k).reshape(-1, 1)], 1)
        self.train(was_training)
        return ids


def build_gpt(vocab_size: int, seed: int = 0, recompute: str = "none", **options: object) -> GPT:
    """A :class:`GPT` drawn right after ``manual_seed(seed)``.

    ``recompute``: ``"none"``, ``"blocks"`` or ``"selective"`` (:mod:`.recompute`).
    """
    manual_seed(seed)
    return set_recompute(GPT(vocab_size, **options), recompute)
