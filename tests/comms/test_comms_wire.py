"""The wire: frame headers, the HMAC handshake, rendezvous helpers, and hostile bytes.

Nothing read from a socket is trusted: every header field is checked against hard limits
before anything is allocated, and a bad frame ends the connection with a clear error
that the waiting collective reports.
"""

import contextlib
import socket
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkgrad.comms import framing
from sparkgrad.comms.auth import AuthError, client_handshake, server_handshake
from sparkgrad.comms.framing import DATA, PREFIX, Frame, decode_prefix, decode_rest, encode_header
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.rendezvous import parse_address, parse_init_method, spark_addresses
from sparkgrad.comms.tcp_transport import TcpTransport, listen
from sparkgrad.errors import CollectiveTimeout, CommError, ConfigError

LIMIT = 1 << 20


def _roundtrip(frame):
    header = encode_header(frame)
    prefix = decode_prefix(header[: PREFIX.size], LIMIT, world_size=8)
    shape, fingerprint = decode_rest(prefix, header[PREFIX.size :])
    return prefix, shape, fingerprint


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.bool_])
def test_header_roundtrip_keeps_every_field(dtype):
    arr = np.zeros((3, 4, 5), dtype)
    prefix, shape, fingerprint = _roundtrip(Frame(DATA, 5, 7, 123456789, "all_reduce(x)", arr))
    assert (prefix.src, prefix.tag, prefix.seq, prefix.dtype, prefix.nbytes) == (
        5, 7, 123456789, np.dtype(dtype), arr.nbytes,
    )  # fmt: skip
    assert shape == (3, 4, 5) and fingerprint == "all_reduce(x)"


def _corrupt(offset, value):
    header = bytearray(encode_header(Frame(DATA, 1, 0, 1, "fp", np.zeros(4, np.float32))))
    header[offset : offset + len(value)] = value
    return bytes(header)


@pytest.mark.parametrize(
    "offset, value, message",
    [
        (0, b"XXXX", "magic"),
        (5, bytes([9]), "unknown kind"),
        (6, bytes([200]), "unknown dtype"),
        (7, bytes([60]), "ndim"),
        (8, (300).to_bytes(2, "little"), "outside world"),
        (24, (1 << 40).to_bytes(8, "little"), "oversized frame"),
    ],
)
def test_malformed_headers_are_rejected_before_any_allocation(offset, value, message):
    with pytest.raises(CommError, match=message):
        decode_prefix(_corrupt(offset, value)[: PREFIX.size], LIMIT, world_size=8)


def test_shape_that_disagrees_with_the_length_is_rejected():
    header = _corrupt(24, (8).to_bytes(8, "little"))  # 4 float32 need 16 bytes, not 8
    prefix = decode_prefix(header[: PREFIX.size], LIMIT, world_size=8)
    with pytest.raises(CommError, match="needs 16 bytes"):
        decode_rest(prefix, header[PREFIX.size :])


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=PREFIX.size, max_size=PREFIX.size))
def test_random_bytes_never_crash_the_decoder(data):
    try:
        prefix = decode_prefix(data, LIMIT, world_size=4)
    except CommError:
        return
    assert prefix.nbytes <= LIMIT and prefix.ndim <= framing.MAX_NDIM


def test_unsupported_dtypes_are_refused_by_name():
    with pytest.raises(CommError, match="object"):
        encode_header(Frame(DATA, 0, 0, 0, "", np.array([None, 1])))


def _handshake(server_secret, client_secret):
    a, b = socket.socketpair()
    a.settimeout(5)
    result = {}

    def serve():
        try:
            result["rank"] = server_handshake(a, server_secret, world_size=4)
        except CommError as exc:
            result["error"] = exc
        a.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client_handshake(b, client_secret, rank=2, world_size=4)
    except CommError as exc:
        result["client_error"] = exc
    b.close()  # a refused client hangs up; the server must not wait for it forever
    thread.join()
    return result


def test_handshake_with_the_same_secret_proves_the_rank():
    assert _handshake(b"k" * 32, b"k" * 32) == {"rank": 2}


def test_handshake_with_a_wrong_secret_fails_on_both_sides():
    result = _handshake(b"k" * 32, b"wrong")
    assert isinstance(result["client_error"], AuthError)  # the server's proof does not verify
    assert "error" in result  # and the server never accepts the client


def test_spark_addresses_is_a_pure_function_of_the_gathered_list():
    gathered = ["127.0.0.1:4000", "127.0.0.1:4001", "localhost:4002"]
    assert spark_addresses(gathered, 1) == [
        ("127.0.0.1", 4000), ("127.0.0.1", 4001), ("localhost", 4002),
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="outside"):
        spark_addresses(gathered, 3)
    with pytest.raises(ConfigError, match="same address"):
        spark_addresses(["127.0.0.1:1", "127.0.0.1:1"], 0)
    for bad in ["127.0.0.1", "host:0", "host:99999", ":80", "host:http"]:
        with pytest.raises(ConfigError, match="host:port"):
            parse_address(bad)


def test_init_methods_read_pytorch_variables(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert parse_init_method("env://", None, None) == (("127.0.0.1", 29500), 2, 3)
    assert parse_init_method("tcp://127.0.0.1:1234", 0, 2) == (("127.0.0.1", 1234), 0, 2)
    with pytest.raises(ConfigError, match="rank"):
        parse_init_method("tcp://127.0.0.1:1234", 5, 2)
    with pytest.raises(ConfigError, match="init_method"):
        parse_init_method("file:///tmp/x", 0, 1)


class FakeBarrierContext:
    """What spark_rendezvous uses of ``BarrierTaskContext``: allGather and partitionId."""

    def __init__(self, shared, rank):
        self.shared, self.rank = shared, rank

    def partitionId(self):  # noqa: N802 - Spark's name
        return self.rank

    def allGather(self, message):  # noqa: N802 - Spark's name
        box, barrier = self.shared
        box[self.rank] = message
        barrier.wait(timeout=20)
        return [box[r] for r in sorted(box)]


def _pair():
    """Two connected TCP transports in this process (rank 0 and rank 1)."""
    from sparkgrad.comms.rendezvous import spark_rendezvous

    shared = ({}, threading.Barrier(2))
    out = [None, None]

    def rank(r):
        out[r] = spark_rendezvous(FakeBarrierContext(shared, r), b"s" * 32, timeout=10)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_spark_rendezvous_connects_tasks_from_allgather():
    t0, t1 = _pair()
    results = [None, None]

    def run(r, t):
        pg = ProcessGroup(t, timeout=10)
        x = np.full(5, r + 1.0)
        pg.all_reduce(x)
        results[r] = x

    threads = [threading.Thread(target=run, args=(r, t)) for r, t in enumerate((t0, t1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(x, np.full(5, 3.0)) for x in results)
    t0.close(), t1.close()


@pytest.mark.parametrize(
    "raw, reason",
    [
        (lambda: _corrupt(24, (1 << 40).to_bytes(8, "little"))[: PREFIX.size], "oversized frame"),
        (lambda: b"NOPE" + bytes(PREFIX.size - 4), "magic"),
    ],
)
def test_a_bad_frame_ends_the_connection_and_the_collective_names_why(raw, reason):
    t0, t1 = _pair()
    with t1._send_locks[0]:
        t1.socks[0].sendall(raw())
    pg = ProcessGroup(t0, timeout=5)
    with pytest.raises(CollectiveTimeout, match=reason):
        pg.recv(np.empty(4, np.float32), 1)
    t0.close(), t1.close()


def test_an_oversized_frame_is_named_with_its_size_and_the_limit_on_every_later_call():
    # issue 17.13: a call that *sends* first to the peer whose frame was refused got the
    # closed socket's "Bad file descriptor" instead of the reason
    t0, t1 = _pair()
    t0.max_frame_bytes = 4096  # rank 1 sends 65536 bytes in one frame; rank 0 allows 4096
    with contextlib.suppress(CommError):  # rank 0 may reset the connection under it
        ProcessGroup(t1, timeout=5).send(np.zeros(16384, np.float32), 0)
    deadline = time.monotonic() + 10
    while 1 not in t0.mailbox.lost() and time.monotonic() < deadline:
        time.sleep(0.01)
    for call in ("send", "all_reduce"):  # each on a fresh group over the same transport
        pg = ProcessGroup(t0, timeout=5)
        with pytest.raises(CommError) as info:
            pg.send(np.ones(8), 1) if call == "send" else pg.all_reduce(np.ones(8))
        text = str(info.value)
        assert "oversized frame: 65536 bytes announced, limit is 4096" in text, text
        assert "Bad file descriptor" not in text
    t0.close(), t1.close()


def test_tcp_transport_refuses_to_send_to_an_unknown_peer():
    t = TcpTransport(0, 2, listen(), b"s" * 32, timeout=1)
    with pytest.raises(CommError, match="no connection"):
        t.send(1, Frame(DATA, 0, 0, 0, "", np.zeros(1)))
    t.close()
