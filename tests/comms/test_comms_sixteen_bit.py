"""float16 and bfloat16 through every collective: ZeRO's 2-byte parameters and gradients.

The inputs are small integers, exact in both 16-bit formats (bfloat16 holds every integer
up to 256), so every algorithm must match NumPy bit for bit: 0 wrong elements, on thread
ranks and over TCP between processes. bfloat16 comes from ``ml_dtypes``; on the wire it
has its own dtype code, so it lands as bfloat16, never as a relabelled uint16.
"""

import numpy as np
import pytest
from comms_helpers import check_every_collective, run_group, tcp_sixteen_bit_worker
from ml_dtypes import bfloat16

from sparkgrad.comms.framing import DATA, PREFIX, Frame, decode_prefix, decode_rest, encode_header
from sparkgrad.comms.reduce_ops import ReduceOp
from sparkgrad.comms.spawn import run_processes


@pytest.mark.parametrize("nranks", [2, 3])
def test_every_collective_in_sixteen_bits_on_threads(nranks):
    dtypes = [np.float16, bfloat16]
    bad = run_group(nranks, lambda pg: check_every_collective(pg, dtypes, counts=[0, 3, 257]))
    assert bad == [0] * nranks


def test_bfloat16_header_round_trips_as_bfloat16():
    arr = np.arange(6, dtype=bfloat16).reshape(2, 3)
    header = encode_header(Frame(DATA, 1, 0, 5, "all_gather(x)", arr))
    prefix = decode_prefix(header[: PREFIX.size], 1 << 20, world_size=2)
    assert prefix.dtype == np.dtype(bfloat16) and prefix.nbytes == 12
    assert decode_rest(prefix, header[PREFIX.size :]) == ((2, 3), "all_gather(x)")


def test_avg_of_bfloat16_halves_exactly():
    def body(pg):
        x = np.full(4, 2.0 * (pg.rank + 1), dtype=bfloat16)  # 2 and 4: the mean is 3
        pg.all_reduce(x, op=ReduceOp.AVG)
        return x

    for x in run_group(2, body):
        assert x.dtype == np.dtype(bfloat16) and np.array_equal(x.astype(np.float32), [3.0] * 4)


@pytest.mark.slow
def test_every_collective_in_sixteen_bits_over_tcp():
    assert run_processes(tcp_sixteen_bit_worker, 2, timeout=240) == [0, 0]
