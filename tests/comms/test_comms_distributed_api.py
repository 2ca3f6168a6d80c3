"""``import sparkgrad.distributed as dist``: PyTorch's tutorial code, with that import changed.

The first tests are the collective calls of PyTorch's tutorial "Writing Distributed
Applications with PyTorch" (point-to-point, groups, a hand-written ring all-reduce,
gradient averaging), run on sparkgrad Tensors. The answers are known in closed form, and
the averaged gradients are checked against PyTorch computing the full-batch gradient in
one process. Then every remaining function of the API, on Tensors and on plain arrays.
"""

from datetime import timedelta

import numpy as np
import pytest
import torch
from comms_helpers import tcp_tutorial

import sparkgrad as sg
import sparkgrad.distributed as dist
import sparkgrad.nn as nn
from sparkgrad.errors import CollectiveTimeout, CommError


def tutorial_p2p(rank, size):
    """Blocking and non-blocking point-to-point (tutorial: 'Point-to-Point Communication')."""
    dist.init_process_group("threads", rank=rank, world_size=size)
    tensor = sg.zeros(1)
    if rank == 0:
        tensor += 1
        dist.send(tensor=tensor, dst=1)
    elif rank == 1:
        dist.recv(tensor=tensor, src=0)
    blocking = tensor.array.copy()
    tensor = sg.zeros(1)
    req = None
    if rank == 0:
        tensor += 1
        req = dist.isend(tensor=tensor, dst=1)
    elif rank == 1:
        req = dist.irecv(tensor=tensor, src=0)
    if req is not None:
        req.wait()
        assert req.is_completed()
    dist.destroy_process_group()
    return float(blocking[0]), float(tensor.array[0])


def tutorial_group_all_reduce(rank, size):
    """'Collective Communication': an all-reduce inside the group of ranks 0 and 1."""
    dist.init_process_group("threads", rank=rank, world_size=size)
    group = dist.new_group([0, 1])
    tensor = sg.ones(1)
    if group is not None:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    dist.destroy_process_group()
    return float(tensor.array[0])


def tutorial_ring_allreduce(rank, size):
    """'Our Own Ring-Allreduce' (``accum[:] += buf[:]`` written ``accum.add_(buf)``)."""
    dist.init_process_group("threads", rank=rank, world_size=size)
    send = sg.tensor(np.arange(4, dtype=np.float32) * (rank + 1))
    recv = sg.zeros(4)
    send_buff, recv_buff, accum = send.clone(), send.clone(), send.clone()
    left, right = ((rank - 1) + size) % size, (rank + 1) % size
    for i in range(size - 1):
        if i % 2 == 0:
            send_req = dist.isend(send_buff, right)
            dist.recv(recv_buff, left)
            accum.add_(recv_buff)
        else:
            send_req = dist.isend(recv_buff, right)
            dist.recv(send_buff, left)
            accum.add_(send_buff)
        send_req.wait()
    recv.copy_(accum)
    dist.destroy_process_group()
    return recv.array


def average_gradients(model):
    """The tutorial's gradient averaging, verbatim."""
    size = float(dist.get_world_size())
    for param in model.parameters():
        dist.all_reduce(param.grad.data, op=dist.ReduceOp.SUM)
        param.grad.data /= size


def tutorial_distributed_sgd(rank, size, weight, bias, x, y):
    dist.init_process_group("threads", rank=rank, world_size=size)
    model = nn.Linear(4, 3)
    model.weight.data[...] = weight
    model.bias.data[...] = bias
    shard = slice(rank * 2, rank * 2 + 2)
    out = model(sg.tensor(x[shard]))
    loss = ((out - sg.tensor(y[shard])) ** 2).mean()
    loss.backward()
    average_gradients(model)
    dist.destroy_process_group()
    return model.weight.grad.array.copy(), model.bias.grad.array.copy()


def test_tutorial_point_to_point():
    assert dist.spawn(tutorial_p2p, 2) == [(1.0, 1.0), (1.0, 1.0)]


def test_tutorial_group_all_reduce():
    assert dist.spawn(tutorial_group_all_reduce, 4) == [2.0, 2.0, 1.0, 1.0]


def test_tutorial_ring_allreduce():
    for out in dist.spawn(tutorial_ring_allreduce, 3):
        assert np.array_equal(out, np.arange(4, dtype=np.float32) * 6)


def test_tutorial_gradient_averaging_equals_pytorch_full_batch_gradient():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    x, y = (
        rng.standard_normal((8, 4)).astype(np.float32),
        rng.standard_normal((8, 3)).astype(np.float32),
    )
    grads = dist.spawn(tutorial_distributed_sgd, 4, args=(w, b, x, y))
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    ((torch.tensor(x) @ tw.T + tb - torch.tensor(y)) ** 2).mean().backward()
    for gw, gb in grads:
        np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-5, atol=1e-6)


def every_function(rank, size):
    dist.init_process_group("threads", timeout=timedelta(seconds=10))
    assert dist.is_initialized() and dist.get_rank() == rank and dist.get_world_size() == size
    r = float(rank)
    out = {}
    t = sg.tensor([r, r + 1])
    dist.broadcast(t, src=size - 1)
    out["broadcast"] = t.array.copy()
    t = sg.tensor([r + 1, 2 * r])
    dist.reduce(t, dst=0, op=dist.ReduceOp.MAX)
    out["reduce"] = t.array.copy()
    chunks = [sg.zeros(2) for _ in range(size)]
    dist.all_gather(chunks, sg.tensor([r, -r]))
    out["all_gather"] = np.stack([c.array for c in chunks])
    flat = np.zeros(2 * size, np.float32)
    dist.all_gather_into_tensor(flat, np.array([r, -r], np.float32))  # plain arrays work too
    out["all_gather_into_tensor"] = flat
    mine = sg.zeros(1)
    dist.reduce_scatter(mine, [sg.tensor([r * 10 + j]) for j in range(size)])
    out["reduce_scatter"] = mine.array.copy()
    block = sg.zeros(2)
    dist.reduce_scatter_tensor(block, sg.tensor(np.arange(2 * size, dtype=np.float32)),
                               op=dist.ReduceOp.AVG)  # fmt: skip
    out["reduce_scatter_tensor"] = block.array.copy()
    outs = [sg.zeros(1) for _ in range(size)]
    dist.all_to_all(outs, [sg.tensor([r * 10 + j]) for j in range(size)])
    out["all_to_all"] = np.concatenate([o.array for o in outs])
    gl = [sg.zeros(1) for _ in range(size)] if rank == 1 else None
    dist.gather(sg.tensor([r]), gather_list=gl, dst=1)
    out["gather"] = np.concatenate([g.array for g in gl]) if gl else None
    recv = sg.zeros(1)
    sl = [sg.tensor([100.0 + j]) for j in range(size)] if rank == 0 else None
    dist.scatter(recv, scatter_list=sl, src=0)
    out["scatter"] = recv.array.copy()
    works = [dist.all_reduce(x := sg.tensor([r]), async_op=True), dist.barrier(async_op=True)]
    for w in works:
        w.wait()
    out["async all_reduce"] = x.array.copy()
    dist.monitored_barrier(timeout=timedelta(seconds=5))
    dist.destroy_process_group()
    assert not dist.is_initialized()
    return out


def test_every_function_on_four_thread_ranks():
    n = 4
    results = dist.spawn(every_function, n)
    total = sum(range(n))
    for rank, out in enumerate(results):
        f32 = np.float32
        assert np.array_equal(out["broadcast"], np.array([n - 1, n], f32))
        if rank == 0:
            assert np.array_equal(out["reduce"], np.array([n, 2 * (n - 1)], f32))
        assert np.array_equal(out["all_gather"], np.array([[i, -i] for i in range(n)], f32))
        assert np.array_equal(out["all_gather_into_tensor"], out["all_gather"].reshape(-1))
        assert np.array_equal(out["reduce_scatter"], np.array([total * 10 + n * rank], f32))
        assert np.array_equal(
            out["reduce_scatter_tensor"], np.arange(2 * n, dtype=f32)[2 * rank : 2 * rank + 2]
        )
        assert np.array_equal(out["all_to_all"], np.array([i * 10 + rank for i in range(n)], f32))
        if rank == 1:
            assert np.array_equal(out["gather"], np.arange(n, dtype=f32))
        assert np.array_equal(out["scatter"], np.array([100 + rank], f32))
        assert np.array_equal(out["async all_reduce"], np.array([total], f32))


def failing(rank, size):
    dist.init_process_group("threads", timeout=5)
    if rank == 1:
        raise ValueError("rank 1 broke")
    dist.all_reduce(sg.ones(3))


def test_spawn_reraises_the_first_failure_and_peers_do_not_hang():
    with pytest.raises(ValueError, match="rank 1 broke") as info:
        dist.spawn(failing, 3)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "CollectiveTimeout" in notes and "missing ranks [1]" in notes


def lonely(rank, size):
    dist.init_process_group("threads", timeout=0.5)
    if rank == 0:
        dist.monitored_barrier()


def test_monitored_barrier_names_the_ranks_that_never_came():
    with pytest.raises(CollectiveTimeout, match=r"barrier .*missing ranks \[1, 2\]"):
        dist.spawn(lonely, 3)


def test_calls_before_init_give_a_clear_error():
    with pytest.raises(CommError, match="init_process_group"):
        dist.all_reduce(sg.ones(1))


def test_tutorial_over_tcp_processes_with_the_gloo_name():
    assert dist.spawn(tcp_tutorial, 2, backend="tcp") == [[3.0] * 3, [3.0] * 3]


def test_a_connected_transport_can_be_the_store():
    """How the Spark launcher joins: it connects first, then hands the transport over."""
    from sparkgrad.comms.threads_transport import ThreadWorld

    world = ThreadWorld(2)

    def run(rank, size):
        dist.init_process_group("tcp", store=world.transport(rank))
        t = sg.tensor([rank + 1.0])
        dist.all_reduce(t)
        rank_seen = dist.get_rank()
        dist.destroy_process_group()
        return rank_seen, float(t.array[0])

    assert dist.spawn(run, 2) == [(0, 3.0), (1, 3.0)]
