"""Differentiable ops, each a :class:`~sparkgrad.autodiff.function.Function` with its
forward and backward side by side and the derivative in a one-line docstring.

- :mod:`.arithmetic`: ``+ - * / ** @`` and negation
- :mod:`.pointwise`: exp, log, sqrt, tanh, sigmoid, relu, gelu, abs, clamp, maximum, where
- :mod:`.reduction`: sum, mean, max/min, var
- :mod:`.shape`: reshape, permute, expand, indexing, cat, stack, casts and device moves
- :mod:`.neural`: linear, softmax, log_softmax, cross_entropy/nll, dropout, layer_norm, embedding
- :mod:`.attention`: scaled dot-product attention as one op (softmax and dropout fused)
- :mod:`.losses`: mse, l1, smooth L1, Huber, binary cross-entropy (on probabilities or logits)
- :mod:`.conv`: conv2d as one matmul of the unfolded patches (im2col / col2im)
- :mod:`.pooling`: max, average and adaptive average pooling, on the same unfolding
- :mod:`.batchnorm`: batch normalisation with its running statistics
- :mod:`.fused`: the fast paths (GELU's normal CDF and backward, LayerNorm, softmax) the ops
  above call: the same formulas in fewer passes over memory
- :mod:`.promotion`: which dtype a binary op computes in (PyTorch's rules, not NumPy's)
"""
