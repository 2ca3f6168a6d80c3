"""Walkthrough 8.2 — backpropagation through time: a recurrent network is a deep network whose
layers share their weights, and its backward is the ordinary backward of that unrolled graph.

An Elman RNN reads a sequence ``x_1 .. x_T`` one step at a time, carrying a state::

    h_t = tanh(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b)        (row vectors, PyTorch's (out, in) weights)

and here every state is also an output, ``y_t = h_t``. Written out for three steps the
loop is a three-layer network in which every "layer" has the same ``W_ih, W_hh, b``::

    h_0 ──► [cell] ──► h_1 ──► [cell] ──► h_2 ──► [cell] ──► h_3
              ▲          │       ▲          │       ▲          │
             x_1         ▼      x_2         ▼      x_3         ▼
                        y_1                y_2                y_3

**Backward** goes right to left. ``h_t`` has two consumers — the output ``y_t`` and the
next cell — so its gradient is the sum of what both send back (walkthrough 1.2's rule for a
value used twice). With ``a_t`` the pre-activation and ``δ_t = dL/da_t``::

    dL/dh_T = dL/dy_T
    δ_t     = dL/dh_t ∘ (1 - h_t²)                       (tanh' = 1 - tanh²)
    dL/dh_{t-1} = dL/dy_{t-1} + δ_t · W_hh               (i.e. W_hhᵀ δ_t in column form)

and since the weights are one leaf used at every step, their gradients are sums over time
(walkthrough 2.2's dense-layer gradients, once per step)::

    dL/dW_hh = Σ_t δ_tᵀ h_{t-1}     dL/dW_ih = Σ_t δ_tᵀ x_t     dL/db = Σ_t Σ_batch δ_t

That is backpropagation through time (BPTT). ``sg.nn.RNN`` implements none of it: its
forward is a Python loop of ordinary ops, and the engine's backward over the recorded graph
*is* this recursion. The tests below do it by hand in NumPy and check the engine against
it and against finite differences, then show its two consequences: gradients to early steps
shrink or grow like ``W_hh``'s powers (vanishing/exploding gradients), which is why
training scripts clip the gradient norm and cut the graph between batches (truncated BPTT).
"""

import numpy as np
import torch

import sparkgrad as sg

T, N, IN, HID = 3, 2, 4, 5


def problem(seed: int = 0) -> dict:
    """Inputs, initial state, weights and the upstream gradients dL/dy_t, in float64."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((T, N, IN)),
        "h0": rng.standard_normal((N, HID)) * 0.5,
        "w_ih": rng.standard_normal((HID, IN)) * 0.5,
        "w_hh": rng.standard_normal((HID, HID)) * 0.5,
        "b": rng.standard_normal(HID) * 0.1,
        "dy": rng.standard_normal((T, N, HID)),  # L = Σ_t <dy_t, y_t>
    }


def forward_by_hand(p: dict) -> list[np.ndarray]:
    """The loop written out: [h_0, h_1, h_2, h_3]."""
    hs = [p["h0"]]
    for t in range(T):
        hs.append(np.tanh(p["x"][t] @ p["w_ih"].T + hs[-1] @ p["w_hh"].T + p["b"]))
    return hs


def bptt_by_hand(p: dict) -> dict:
    """The walkthrough's recursion, from the last step to the first."""
    hs = forward_by_hand(p)
    grads = {"w_ih": 0.0, "w_hh": 0.0, "b": 0.0, "x": np.zeros_like(p["x"])}
    dh = p["dy"][T - 1]  # dL/dh_T: only the output uses the last state
    for t in range(T, 0, -1):  # hs[t] is h_t
        delta = dh * (1 - hs[t] ** 2)  # through tanh
        grads["w_hh"] = grads["w_hh"] + delta.T @ hs[t - 1]  # one term per step
        grads["w_ih"] = grads["w_ih"] + delta.T @ p["x"][t - 1]
        grads["b"] = grads["b"] + delta.sum(axis=0)
        grads["x"][t - 1] = delta @ p["w_ih"]
        dh = delta @ p["w_hh"]  # into h_{t-1} through the next cell ...
        if t > 1:
            dh = dh + p["dy"][t - 2]  # ... plus its own output's gradient
    grads["h0"] = dh
    return grads


def engine_rnn(p: dict) -> tuple:
    """``sg.nn.RNN`` holding the same weights (one bias; the other set to zero)."""
    rnn = sg.nn.RNN(IN, HID).double()
    rnn.load_state_dict(
        {"weight_ih_l0": p["w_ih"], "weight_hh_l0": p["w_hh"], "bias_ih_l0": p["b"],
         "bias_hh_l0": np.zeros(HID)}
    )  # fmt: skip
    x = sg.tensor(p["x"], requires_grad=True)
    h0 = sg.tensor(p["h0"][None], requires_grad=True)  # (num_layers, N, hidden)
    return rnn, x, h0


def test_the_loop_by_hand_is_the_layer():
    """Forward: the layer's outputs are h_1..h_3 of the loop, its h_n is h_3."""
    p = problem()
    rnn, x, h0 = engine_rnn(p)
    out, h_n = rnn(x, h0)
    hs = forward_by_hand(p)
    np.testing.assert_allclose(out.detach().numpy(), np.stack(hs[1:]), rtol=1e-13)
    np.testing.assert_allclose(h_n.detach().numpy()[0], hs[-1], rtol=1e-13)


def test_the_graph_is_the_network_unrolled():
    """One tanh node per time step, chained through h: the graph is T cells deep."""
    p = problem()
    rnn, x, h0 = engine_rnn(p)
    _, h_n = rnn(x, h0)
    seen, stack, tanh_nodes = set(), [h_n.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or not hasattr(node, "next_functions"):
            continue
        seen.add(id(node))
        tanh_nodes += node.name() == "TanhBackward"
        stack.extend(fn for fn, _ in node.next_functions)
    assert tanh_nodes == T


def test_engine_backward_is_the_recursion():
    """dL/dx_t, dL/dh_0 and the summed weight gradients equal the hand-written BPTT."""
    p = problem()
    rnn, x, h0 = engine_rnn(p)
    out, _ = rnn(x, h0)
    (out * sg.tensor(p["dy"])).sum().backward()
    by_hand = bptt_by_hand(p)
    tol = {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(x.grad.numpy(), by_hand["x"], **tol)
    np.testing.assert_allclose(h0.grad.numpy()[0], by_hand["h0"], **tol)
    np.testing.assert_allclose(rnn.weight_hh_l0.grad.numpy(), by_hand["w_hh"], **tol)
    np.testing.assert_allclose(rnn.weight_ih_l0.grad.numpy(), by_hand["w_ih"], **tol)
    np.testing.assert_allclose(rnn.bias_ih_l0.grad.numpy(), by_hand["b"], **tol)
    # the two biases are one sum in the forward, so they get the same gradient
    np.testing.assert_allclose(rnn.bias_hh_l0.grad.numpy(), by_hand["b"], **tol)


def test_recursion_against_finite_differences():
    """Nudge single weights and the first input in NumPy: the hand BPTT predicts the change."""
    p = problem(1)
    by_hand = bptt_by_hand(p)

    def loss(q: dict) -> float:
        return float(sum((q["dy"][t] * h).sum() for t, h in enumerate(forward_by_hand(q)[1:])))

    eps = 1e-6
    for name, index in (("w_hh", (2, 3)), ("w_ih", (0, 1)), ("b", (4,)), ("h0", (1, 2))):
        up, down = {**p, name: p[name].copy()}, {**p, name: p[name].copy()}
        up[name][index] += eps
        down[name][index] -= eps
        numeric = (loss(up) - loss(down)) / (2 * eps)
        np.testing.assert_allclose(by_hand[name][index], numeric, rtol=1e-7, err_msg=name)


def test_shared_weights_collect_one_term_per_step():
    """dL/dW_hh is the sum of T per-step terms, each nonzero: the steps share one leaf.

    Cutting the loss to the first step only leaves the first term (later cells never ran
    backward into the weights), so the full gradient minus that is what the later steps add.
    """
    p = problem(2)
    hs = forward_by_hand(p)
    terms = []
    dh = p["dy"][T - 1]
    for t in range(T, 0, -1):
        delta = dh * (1 - hs[t] ** 2)
        terms.append(delta.T @ hs[t - 1])
        dh = delta @ p["w_hh"] + (p["dy"][t - 2] if t > 1 else 0)
    assert all(np.abs(term).max() > 1e-3 for term in terms)
    rnn, x, h0 = engine_rnn(p)
    out, _ = rnn(x, h0)
    (out * sg.tensor(p["dy"])).sum().backward()
    np.testing.assert_allclose(rnn.weight_hh_l0.grad.numpy(), sum(terms), rtol=1e-12)

    rnn, x, h0 = engine_rnn(p)
    out, _ = rnn(x, h0)
    (out[0] * sg.tensor(p["dy"][0])).sum().backward()  # the first output alone
    first = (p["dy"][0] * (1 - hs[1] ** 2)).T @ hs[0]
    np.testing.assert_allclose(rnn.weight_hh_l0.grad.numpy(), first, rtol=1e-12)


def test_engine_against_torch_and_gradcheck():
    """The same RNN in PyTorch gives the same gradients, and sg.gradcheck agrees (float64)."""
    p = problem(3)
    rnn, x, h0 = engine_rnn(p)
    out, _ = rnn(x, h0)
    (out * sg.tensor(p["dy"])).sum().backward()
    ref = torch.nn.RNN(IN, HID).double()
    ref.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in rnn.state_dict().items()})
    xt = torch.tensor(p["x"], requires_grad=True)
    (ref(xt, torch.tensor(p["h0"][None]))[0] * torch.tensor(p["dy"])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        rnn.weight_hh_l0.grad.numpy(), ref.weight_hh_l0.grad.numpy(), rtol=1e-12
    )
    x2 = sg.tensor(p["x"], requires_grad=True)
    assert sg.gradcheck(lambda inp, w: rnn(inp)[0], [x2, rnn.weight_hh_l0])


def gradient_to_the_start(scale: float, steps: int) -> float:
    """||dL/dh_0|| for L = <1, h_T> through a relu RNN with W_hh = scale·I (and inputs kept
    positive), where every Jacobian ∂h_t/∂h_{t-1} is exactly scale·I."""
    rnn = sg.nn.RNN(HID, HID, nonlinearity="relu").double()
    with sg.no_grad():
        rnn.weight_hh_l0.copy_(sg.eye(HID, dtype=sg.float64) * scale)
        rnn.weight_ih_l0.copy_(sg.eye(HID, dtype=sg.float64))
        rnn.bias_ih_l0.fill_(1.0)
        rnn.bias_hh_l0.fill_(0.0)
    x = sg.tensor(np.ones((steps, 1, HID)))
    h0 = sg.tensor(np.ones((1, 1, HID)), requires_grad=True)
    rnn(x, h0)[1].sum().backward()
    return float(np.linalg.norm(h0.grad.numpy()))


def test_vanishing_and_exploding_gradients():
    """Back through T steps the gradient is multiplied by T Jacobians: scale^T here, exactly.

    With 0.5 it vanishes (≈1e-6 of the start after 20 steps); with 1.5 it explodes
    (≈3300x). A tanh RNN behaves alike with W_hh's largest singular values in place of scale.
    """
    start = np.sqrt(HID)  # ||dL/dh_T|| = ||1||
    for scale in (0.5, 1.0, 1.5):
        for steps in (1, 5, 20):
            np.testing.assert_allclose(
                gradient_to_the_start(scale, steps), start * scale**steps, rtol=1e-12
            )
    assert gradient_to_the_start(0.5, 20) / start < 1e-6
    assert gradient_to_the_start(1.5, 20) / start > 3000


def test_gradient_clipping_rescales_the_whole_gradient():
    """``clip_grad_norm_``: if the global norm exceeds max_norm, every gradient is scaled by
    max_norm / (norm + 1e-6): the direction is kept, the step is bounded. As PyTorch."""
    sg.manual_seed(0)
    rnn = sg.nn.RNN(IN, HID, 2)
    with sg.no_grad():
        rnn.weight_hh_l0.mul_(8.0)  # a large recurrent weight: big gradients
    x = sg.tensor(np.random.default_rng(4).standard_normal((30, N, IN)).astype(np.float32))
    rnn(x)[0].pow(2).sum().backward()
    params = list(rnn.parameters())
    before = [p.grad.numpy().copy() for p in params]
    norm_by_hand = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in before))

    ref = torch.nn.RNN(IN, HID, 2)
    ref.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in rnn.state_dict().items()}
    )
    for p, g in zip(ref.parameters(), before):
        p.grad = torch.from_numpy(g.copy())

    max_norm = 0.25
    total = sg.nn.utils.clip_grad_norm_(params, max_norm)
    total_torch = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm)
    assert norm_by_hand > 10 * max_norm  # so clipping really happens
    np.testing.assert_allclose(float(total), norm_by_hand, rtol=1e-5)
    np.testing.assert_allclose(float(total), float(total_torch), rtol=1e-6)
    after = [p.grad.numpy() for p in params]
    np.testing.assert_allclose(np.sqrt(sum((g**2).sum() for g in after)), max_norm, rtol=1e-5)
    coef = max_norm / (float(total) + 1e-6)
    for g0, g1, gt in zip(before, after, ref.parameters()):
        np.testing.assert_allclose(g1, g0 * coef, rtol=1e-6, atol=1e-9)  # same direction
        np.testing.assert_allclose(g1, gt.grad.numpy(), rtol=1e-6, atol=1e-9)

    # below the threshold nothing changes
    small = [p.grad.numpy().copy() for p in params]
    sg.nn.utils.clip_grad_norm_(params, 10.0)
    for g0, p in zip(small, params):
        np.testing.assert_array_equal(p.grad.numpy(), g0)


def test_truncated_bptt_detaches_the_state_between_batches():
    """The word-language-model habit: carry h into the next batch but ``detach()`` it, so
    backward stops at the batch boundary. Without detach the second batch's loss reaches
    back into the first batch's inputs; with it, its gradient equals that of a fresh run
    started from the carried state as a constant."""
    sg.manual_seed(1)
    lstm = sg.nn.LSTM(IN, HID).double()
    rng = np.random.default_rng(5)
    first = sg.tensor(rng.standard_normal((4, N, IN)), requires_grad=True)
    second = sg.tensor(rng.standard_normal((4, N, IN)), requires_grad=True)

    _, state = lstm(first)
    out, _ = lstm(second, state)  # not detached: one graph through both batches
    out.sum().backward()
    assert first.grad is not None and np.abs(first.grad.numpy()).max() > 0

    first.grad = second.grad = None
    lstm.zero_grad()
    _, state = lstm(first)
    state = tuple(s.detach() for s in state)  # repackage_hidden
    out, _ = lstm(second, state)
    out.sum().backward()
    assert first.grad is None  # the graph ended at the boundary
    truncated = lstm.weight_hh_l0.grad.numpy().copy()

    lstm.zero_grad()
    h, c = (sg.tensor(s.numpy()) for s in state)  # the same numbers, as plain constants
    lstm(second, (h, c))[0].sum().backward()
    np.testing.assert_allclose(lstm.weight_hh_l0.grad.numpy(), truncated, rtol=1e-13)
