"""``sparkgrad.utils.data`` against ``torch.utils.data`` on the same inputs.

Sequential orders, batches, dtypes, lengths, collation and argument errors must be
PyTorch's exactly. Shuffled orders come from a different generator, so for them we check
what does not depend on it: coverage, lengths, and determinism per seed.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import sparkgrad as sg
import sparkgrad.utils.data as sud
from sparkgrad.dataset.dataset import fetch_collated


def plain(x):
    """Any batch (sparkgrad or torch) as comparable Python data: Tensors -> (dtype, values)."""
    if isinstance(x, sg.Tensor):
        return ("T", np.dtype(x.dtype).name, x.shape, x.tolist())
    if isinstance(x, torch.Tensor):
        return (
            "T",
            str(x.dtype).removeprefix("torch.").replace("bool", "bool"),
            tuple(x.shape),
            x.tolist(),
        )
    if isinstance(x, dict):
        return (type(x).__name__, [(k, plain(v)) for k, v in x.items()])
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return (type(x).__name__, [plain(v) for v in x])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [plain(v) for v in x])
    if isinstance(x, np.ndarray):
        return ("ndarray", x.dtype.name, x.tolist())
    return x


def _data(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = (np.arange(n) % 4).astype(np.int64)
    return x, y


def _pair(n=10):
    x, y = _data(n)
    ours = sud.TensorDataset(sg.tensor(x), sg.tensor(y))
    theirs = tud.TensorDataset(torch.tensor(x), torch.tensor(y))
    return ours, theirs


# ---- datasets --------------------------------------------------------------------------


@pytest.mark.parametrize("index", [3, -1, slice(2, 6), slice(None, None, 3), [4, 1, 1]])
def test_tensor_dataset_indexing_returns_tuples_of_tensors_like_torch(index):
    ours, theirs = _pair()
    got = ours[index]
    assert type(got) is tuple and all(isinstance(t, sg.Tensor) for t in got)
    assert plain(list(got)) == plain(list(theirs[index]))


def test_tensor_dataset_items_are_views_of_the_stored_tensors():
    ours, _ = _pair()
    xb, yb = ours[2:5]
    x, y = ours.tensors
    assert np.shares_memory(xb.array, x.array) and np.shares_memory(yb.array, y.array)
    x.array[3, 0] = -7.0  # as in torch: a change of the stored tensor shows in the view
    assert xb.tolist()[1][0] == -7.0 and ours[3][0].tolist()[0] == -7.0


def test_tensor_dataset_wraps_numpy_arrays_without_copy_and_keeps_dtypes():
    x = np.zeros((4, 2), dtype=np.float64)
    ds = sud.TensorDataset(x, np.arange(4, dtype=np.int32))
    assert ds.tensors[0].dtype == np.float64 and ds.tensors[1].dtype == np.int32
    assert ds.arrays[0] is x and len(ds) == 4
    with pytest.raises(ValueError, match="0-d"):
        sud.TensorDataset(sg.tensor(1.0))


def test_nn_really_slicing_pattern():
    """'What is torch.nn really?': ``xb, yb = train_ds[i * bs : i * bs + bs]``."""
    ours, theirs = _pair(13)
    bs = 4
    for i in range((13 - 1) // bs + 1):
        xb, yb = ours[i * bs : i * bs + bs]
        tx, ty = theirs[i * bs : i * bs + bs]
        assert plain([xb, yb]) == plain([tx, ty])


def test_subset_and_concat_index_like_torch():
    ours, theirs = _pair(9)
    indices = [8, 0, 3, 3]
    sub, tsub = sud.Subset(ours, indices), tud.Subset(theirs, indices)
    assert len(sub) == len(tsub) == 4
    for i in range(4):
        assert plain(list(sub[i])) == plain(list(tsub[i]))
    assert plain(list(sub[[1, 2]])) == plain(list(tsub[[1, 2]]))
    cat, tcat = ours + sub, theirs + tsub
    assert isinstance(cat, sud.ConcatDataset) and len(cat) == len(tcat) == 13
    for i in [0, 8, 9, 12, -1, -13]:
        assert plain(list(cat[i])) == plain(list(tcat[i]))
    with pytest.raises(ValueError, match="absolute value"):
        cat[-14]


@pytest.mark.parametrize(
    "n, lengths",
    [(10, [3, 7]), (10, [0.5, 0.5]), (11, [0.5, 0.5]), (10, [0.33, 0.33, 0.34]), (7, [0.2] * 5)],
)
def test_random_split_lengths_like_torch_cover_everything_once(n, lengths):
    ours = sud.random_split(range(n), lengths, generator=sg.Generator().manual_seed(1))
    theirs = tud.random_split(range(n), lengths, generator=torch.Generator().manual_seed(1))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    seen = sorted(i for s in ours for i in (s[k] for k in range(len(s))))
    assert seen == list(range(n))
    again = sud.random_split(range(n), lengths, generator=sg.Generator().manual_seed(1))
    assert [list(s.indices) for s in again] == [list(s.indices) for s in ours]


def test_random_split_uses_the_global_generator_by_default():
    sg.manual_seed(5)
    a = [list(s.indices) for s in sud.random_split(range(20), [10, 10])]
    sg.manual_seed(5)
    assert [list(s.indices) for s in sud.random_split(range(20), [10, 10])] == a


@pytest.mark.parametrize("lengths", [[3, 3], [1.2, -0.2]])
def test_random_split_errors_like_torch(lengths):
    with pytest.raises(ValueError) as theirs:
        tud.random_split(range(10), lengths)
    with pytest.raises(ValueError) as ours:
        sud.random_split(range(10), lengths)
    assert str(ours.value) == str(theirs.value)


# ---- collation -------------------------------------------------------------------------

Point = collections.namedtuple("Point", "x y")
SAMPLES = {
    "python floats": [1.0, 2.5, -3.0],
    "python ints": [1, 2, 3],
    "ints then a float": [1, 2.5],
    "bools": [True, False],
    "numpy float32 scalars": [np.float32(1.5), np.float32(2)],
    "numpy int32 scalars": [np.int32(1), np.int32(-4)],
    "numpy bool scalars": [np.bool_(True), np.bool_(False)],
    "numpy arrays": [np.ones((2, 2), np.float64), np.zeros((2, 2), np.float64)],
    "numpy uint8 arrays": [np.arange(3, dtype=np.uint8), np.arange(3, dtype=np.uint8)],
    "strings": ["a", "bc"],
    "tuples": [(1, "a", 2.0), (2, "b", 3.0)],
    "lists": [[1, 2], [3, 4]],
    "dicts": [{"x": np.zeros(2, np.float32), "y": 1}, {"x": np.ones(2, np.float32), "y": 2}],
    "ordered dicts": [collections.OrderedDict(a=1.0), collections.OrderedDict(a=2.0)],
    "namedtuples": [Point(1, 2.0), Point(3, 4.0)],
    "nested": [({"a": [1, 2]}, (np.float32(1),)), ({"a": [3, 4]}, (np.float32(2),))],
}


def _ours(sample):
    if isinstance(sample, torch.Tensor):
        return sg.tensor(sample.numpy())
    return sample


@pytest.mark.parametrize("name", list(SAMPLES))
def test_default_collate_like_torch(name):
    batch = SAMPLES[name]
    assert plain(sud.default_collate(batch)) == plain(tud.default_collate(batch))


@pytest.mark.parametrize("name", list(SAMPLES))
def test_default_convert_like_torch(name):
    for sample in SAMPLES[name]:
        assert plain(sud.default_convert(sample)) == plain(tud.default_convert(sample))


def test_default_collate_stacks_tensors_keeping_dtype():
    batch = [np.arange(3, dtype=np.int16) + i for i in range(4)]
    ours = sud.default_collate([sg.tensor(b, dtype=np.int16) for b in batch])
    theirs = tud.default_collate([torch.tensor(b) for b in batch])
    assert plain(ours) == plain(theirs)


@pytest.mark.parametrize(
    "batch",
    [
        [object()],
        [None, None],
        [np.array(["a"]), np.array(["b"])],
        [[1, 2], [3]],
        "tensors of two shapes",
    ],
)
def test_default_collate_errors_like_torch(batch):
    theirs_batch = batch
    if batch == "tensors of two shapes":
        batch = [sg.zeros(2), sg.zeros(3)]
        theirs_batch = [torch.zeros(2), torch.zeros(3)]
    with pytest.raises((TypeError, RuntimeError)) as theirs:
        tud.default_collate(theirs_batch)
    with pytest.raises(type(theirs.value)) as ours:
        sud.default_collate(batch)
    assert str(ours.value) == str(theirs.value)


# ---- the loader ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"batch_size": 3},
        {"batch_size": 3, "drop_last": True},
        {"batch_size": 10},
        {"batch_size": 4, "num_workers": 2, "pin_memory": True, "persistent_workers": True},
        {"batch_size": 4, "num_workers": 1, "prefetch_factor": 4, "timeout": 5.0},
        {"batch_size": None},
    ],
)
def test_sequential_batches_equal_torch(kwargs):
    ours, theirs = _pair(10)
    got = list(sud.DataLoader(ours, **kwargs))
    torch_kwargs = {
        k: v
        for k, v in kwargs.items()
        if k
        not in ("num_workers", "prefetch_factor", "persistent_workers", "pin_memory", "timeout")
    }
    want = list(tud.DataLoader(theirs, **torch_kwargs))
    assert len(sud.DataLoader(ours, **kwargs)) == len(want)
    assert plain(got) == plain(want)


def test_batch_sampler_and_sampler_arguments_like_torch():
    ours, theirs = _pair(11)
    for drop_last in (False, True):
        bs = sud.BatchSampler(sud.SequentialSampler(ours), 4, drop_last)
        tbs = tud.BatchSampler(tud.SequentialSampler(theirs), 4, drop_last)
        assert list(bs) == list(tbs) and len(bs) == len(tbs)
        got = list(sud.DataLoader(ours, batch_sampler=bs))
        assert plain(got) == plain(list(tud.DataLoader(theirs, batch_sampler=tbs)))
    order = [5, 2, 9, 0]
    got = list(sud.DataLoader(ours, batch_size=3, sampler=order))
    assert plain(got) == plain(list(tud.DataLoader(theirs, batch_size=3, sampler=order)))


def test_collate_fn_receives_the_list_of_samples_like_torch():
    ours, theirs = _pair(5)
    seen, tseen = [], []
    loader = sud.DataLoader(ours, batch_size=2, collate_fn=lambda b: seen.append(b) or len(b))
    tloader = tud.DataLoader(theirs, batch_size=2, collate_fn=lambda b: tseen.append(b) or len(b))
    assert list(loader) == list(tloader) == [2, 2, 1]
    assert plain(seen) == plain(tseen)


def test_the_fast_path_gives_the_batches_of_sample_by_sample_collation():
    ours, _ = _pair(10)
    sub = sud.Subset(ours, [9, 2, 2, 5, 0, 7, 1])

    def one_by_one(batch):
        return sud.default_collate(batch)

    for ds in (ours, sub):
        fast = list(sud.DataLoader(ds, batch_size=3))
        slow = list(sud.DataLoader(ds, batch_size=3, collate_fn=one_by_one))
        assert plain(fast) == plain(slow)
    assert fetch_collated(sub, [0, 1]) is not None  # Subset of a TensorDataset: batched

    class Doubled(sud.TensorDataset):  # an overridden __getitem__ must be honoured
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x * 2, y

    got = list(sud.DataLoader(Doubled(*ours.tensors), batch_size=4))
    assert got[0][0].tolist() == (ours.tensors[0].array[:4] * 2).tolist()


def test_getitems_is_used_for_batches_like_torch():
    class Batched(tud.Dataset):
        calls = 0

        def __len__(self):
            return 5

        def __getitem__(self, i):
            raise AssertionError("the loader should use __getitems__")

        def __getitems__(self, indices):
            type(self).calls += 1
            return [(float(i), i) for i in indices]

    got = list(sud.DataLoader(Batched(), batch_size=2))
    calls, Batched.calls = Batched.calls, 0
    want = list(tud.DataLoader(Batched(), batch_size=2))
    assert plain(got) == plain(want) and calls == Batched.calls == 3


def test_worker_options_run_in_the_main_process():
    ours, _ = _pair(4)
    called = []
    loader = sud.DataLoader(ours, batch_size=2, num_workers=3, worker_init_fn=called.append)
    assert len(list(loader)) == 2 and called == [] and sud.get_worker_info() is None
    assert loader.prefetch_factor == 2  # PyTorch's default once workers are asked for


BAD_ARGUMENTS = [
    {"shuffle": True, "sampler": [0, 1]},
    {"batch_size": 2, "batch_sampler": [[0, 1]]},
    {"drop_last": True, "batch_sampler": [[0, 1]]},
    {"shuffle": True, "batch_sampler": [[0, 1]]},
    {"batch_size": None, "drop_last": True},
    {"num_workers": -1},
    {"timeout": -1},
    {"prefetch_factor": 2},
    {"num_workers": 1, "prefetch_factor": -1},
    {"persistent_workers": True},
    {"batch_size": 0},
    {"batch_size": True},
    {"drop_last": 1},
    {"multiprocessing_context": "spawn"},
]


@pytest.mark.parametrize("kwargs", BAD_ARGUMENTS)
def test_argument_errors_like_torch(kwargs):
    ours, theirs = _pair(4)
    with pytest.raises(ValueError) as want:
        tud.DataLoader(theirs, **kwargs)
    with pytest.raises(ValueError) as got:
        sud.DataLoader(ours, **kwargs)
    assert str(got.value) == str(want.value)


# ---- shuffling -------------------------------------------------------------------------


def _order(loader):
    return [int(i) for batch in loader for i in batch[1].tolist()]


def test_shuffle_covers_everything_reshuffles_and_follows_the_generator():
    x = np.arange(50, dtype=np.float32)[:, None]
    ds = sud.TensorDataset(x, np.arange(50))
    loader = sud.DataLoader(ds, batch_size=8, shuffle=True, generator=sg.Generator().manual_seed(3))
    first, second = _order(loader), _order(loader)
    assert sorted(first) == sorted(second) == list(range(50)) and first != second
    same = sud.DataLoader(ds, batch_size=8, shuffle=True, generator=sg.Generator().manual_seed(3))
    assert _order(same) == first and _order(same) == second
    t = tud.DataLoader(tud.TensorDataset(torch.tensor(x), torch.arange(50)), 8, shuffle=True)
    assert len(loader) == len(t) == 7


def test_a_torch_generator_is_refused_with_a_clear_error():
    ds, _ = _pair(4)
    for make in (
        lambda g: sud.DataLoader(ds, shuffle=True, generator=g),
        lambda g: sud.RandomSampler(ds, generator=g),
        lambda g: sud.random_split(ds, [2, 2], generator=g),
    ):
        with pytest.raises(TypeError, match="sparkgrad.Generator"):
            make(torch.Generator())


def test_shuffle_without_generator_follows_manual_seed():
    ds = sud.TensorDataset(np.zeros((30, 1)), np.arange(30))
    sg.manual_seed(11)
    a = _order(sud.DataLoader(ds, batch_size=4, shuffle=True))
    sg.manual_seed(11)
    b = _order(sud.DataLoader(ds, batch_size=4, shuffle=True))
    assert a == b and sorted(a) == list(range(30))


@pytest.mark.parametrize(
    "replacement, num_samples", [(False, None), (False, 23), (True, 70), (True, 5)]
)
def test_random_sampler_lengths_and_counts_like_torch(replacement, num_samples):
    n = 10
    ours = list(
        sud.RandomSampler(range(n), replacement, num_samples, sg.Generator().manual_seed(0))
    )
    theirs = list(
        tud.RandomSampler(range(n), replacement, num_samples, torch.Generator().manual_seed(0))
    )
    assert len(ours) == len(theirs) == len(sud.RandomSampler(range(n), replacement, num_samples))
    assert all(0 <= i < n for i in ours)
    if not replacement:  # every index num_samples // n times, some once more: as torch
        assert sorted(collections.Counter(ours).values()) == sorted(
            collections.Counter(theirs).values()
        )


@pytest.mark.parametrize(
    "kwargs",
    [{"replacement": 1}, {"num_samples": 0}, {"num_samples": 2.5}],
)
def test_random_sampler_errors_like_torch(kwargs):
    with pytest.raises((TypeError, ValueError)) as want:
        tud.RandomSampler(range(3), **kwargs)
    with pytest.raises(type(want.value)) as got:
        sud.RandomSampler(range(3), **kwargs)
    assert str(got.value) == str(want.value)


def test_distributed_sampler_takes_rank_and_world_from_the_process_group():
    import sparkgrad.distributed as dist

    def rank_indices(rank, world):
        dist.init_process_group("threads")
        try:
            return list(sud.DistributedSampler(range(11), shuffle=False))
        finally:
            dist.destroy_process_group()

    got = dist.spawn(rank_indices, 3)
    want = [list(tud.DistributedSampler(range(11), 3, r, shuffle=False)) for r in range(3)]
    assert got == want


def test_the_shim_exports_the_torch_names():
    for name in [
        "Dataset",
        "TensorDataset",
        "DataLoader",
        "Sampler",
        "SequentialSampler",
        "RandomSampler",
        "BatchSampler",
        "Subset",
        "random_split",
        "DistributedSampler",
        "default_collate",
        "default_convert",
        "ConcatDataset",
        "get_worker_info",
    ]:
        assert hasattr(tud, name) and hasattr(sud, name), name
    assert sg.utils.data.DataLoader is sud.DataLoader


def test_the_seed_extra_needs_the_loaders_own_shuffle():
    ds, _ = _pair(6)
    for kwargs in ({"seed": 0}, {"seed": 0, "shuffle": True, "generator": sg.Generator()}):
        with pytest.raises(ValueError, match="seed="):
            sud.DataLoader(ds, **kwargs)
    a = sud.DataLoader(ds, batch_size=2, shuffle=True, seed=4)
    b = sud.DataLoader(ds, batch_size=2, shuffle=True, seed=4)
    b.set_epoch(1)
    list(a)  # pass 0
    assert _order(a) == _order(b)  # a's pass 1 is b's pass 1
