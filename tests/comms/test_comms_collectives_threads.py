"""Every collective x algorithm x world size 2..5 x dtype, against exact NumPy references.

Ranks are threads (the in-memory transport), so the whole matrix runs in a second or
two. Segments are made tiny (512 bytes) so that the pipelined algorithms really cut
their blocks into many segments, and a second run caps frames at 256 bytes so that the
transport's frame splitting is exercised too.
"""

import numpy as np
import pytest
from comms_helpers import check_every_collective, exact_input, run_group
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkgrad.autodiff import cuda_is_available
from sparkgrad.comms.reduce_ops import ReduceOp


@pytest.mark.parametrize("nranks", [1, 2, 3, 4, 5])
def test_every_collective_matches_numpy_exactly(nranks):
    bad = run_group(nranks, check_every_collective, segment_bytes=512)
    assert bad == [0] * nranks, f"wrong elements per rank: {bad}"


def test_frames_split_at_the_size_limit():
    bad = run_group(
        3, lambda pg: check_every_collective(pg, [np.float64], [300]), max_frame_bytes=256
    )
    assert bad == [0, 0, 0]


def test_avg_of_integers_is_refused_with_a_clear_error():
    def body(pg):
        with pytest.raises(Exception, match="AVG needs a floating dtype"):
            pg.all_reduce(np.ones(3, np.int32), ReduceOp.AVG)
        return True

    assert run_group(2, body) == [True, True]


def test_non_contiguous_arrays_are_reduced_in_place():
    def body(pg):
        base = np.stack([exact_input(pg.rank, 10, np.float32)] * 2, axis=1)  # (10, 2)
        view = base[:, 0]  # strided
        pg.all_reduce(view)
        return base[:, 0].copy(), base[:, 1].copy()

    out = run_group(3, body)
    expected = sum(exact_input(r, 10, np.float32) for r in range(3))
    for r, (reduced, untouched) in enumerate(out):
        assert np.array_equal(reduced, expected)
        assert np.array_equal(untouched, exact_input(r, 10, np.float32))


def test_sub_groups_run_their_own_collectives():
    def body(pg):
        evens = pg.new_group([0, 2])
        odds = pg.new_group([1, 3])
        mine = evens if pg.rank % 2 == 0 else odds
        x = np.full(4, float(pg.rank))
        mine.all_reduce(x)
        pg.all_reduce(y := np.ones(2))
        return x[0], y[0]

    assert run_group(4, body) == [(2.0, 4.0), (4.0, 4.0), (2.0, 4.0), (4.0, 4.0)]


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_is_available(), reason="no CUDA GPU/CuPy on this machine")
def test_cupy_arrays_are_reduced_in_place_on_the_gpu():
    import cupy

    def body(pg):
        x = cupy.asarray(exact_input(pg.rank, 1031, np.float32))
        pg.all_reduce(x)
        rows = pg.all_gather(x)
        return type(x).__module__, cupy.asnumpy(x), type(rows).__module__

    out = run_group(3, body)
    expected = sum(exact_input(r, 1031, np.float32) for r in range(3))
    for module, values, rows_module in out:
        assert module.startswith("cupy") and rows_module.startswith("cupy")
        assert np.array_equal(values, expected)


@settings(max_examples=25, deadline=None)
@given(
    nranks=st.integers(1, 5),
    count=st.integers(0, 3000),
    algo=st.sampled_from(["ring", "tree", "halving_doubling"]),
    segment=st.sampled_from([4, 64, 1000, 1 << 20]),
    dtype=st.sampled_from([np.float32, np.int64]),
)
def test_any_size_any_segmentation_gives_the_exact_sum(nranks, count, algo, segment, dtype):
    def body(pg):
        x = exact_input(pg.rank, count, dtype)
        pg.all_reduce(x, algorithm=algo)
        return x

    expected = sum(exact_input(r, count, dtype) for r in range(nranks)).astype(dtype)
    for out in run_group(nranks, body, segment_bytes=segment):
        assert np.array_equal(out, expected)
