"""Rendezvous under strangers: nobody can hold it, and every wait ends in time.

Real sockets on 127.0.0.1, ranks as threads of this process. What issue 17 found: the
store answered one connection at a time and restarted its timeout with every byte, so a
client dripping a byte every 6 s held rank 0 for 72 s (timeout 20 s) and rank 1 died
with a bare ``TimeoutError``; 300 idle connections to a rank made 304 threads. Now
(:mod:`sparkgrad.comms.admission`): one deadline per handshake, a fixed pool of
handshake threads, a bounded line of waiting connections, and ``CollectiveTimeout``
from every wait of the rendezvous.
"""

import socket
import threading
import time

import numpy as np
import pytest

from sparkgrad.comms import admission
from sparkgrad.comms.auth import HELLO, MAGIC
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.rendezvous import tcp_rendezvous
from sparkgrad.comms.spawn import free_port
from sparkgrad.comms.tcp_transport import TcpTransport, listen
from sparkgrad.errors import CollectiveTimeout

# these wait out real handshake deadlines and timeouts (seconds each)
pytestmark = pytest.mark.slow

SECRET = b"r" * 32


class DripClient(threading.Thread):
    """Connects to ``address`` and sends a valid-looking HELLO one byte every ``interval``
    seconds, then keeps dripping, until the server cuts it off."""

    def __init__(self, address, interval=0.2):
        super().__init__(daemon=True)
        self.address, self.interval = address, interval
        self.connected, self.cut = threading.Event(), threading.Event()
        self.sent, self.connected_at, self.cut_at = 0, None, None

    def run(self):
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = socket.create_connection(self.address, timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
        self.connected_at = time.monotonic()
        self.connected.set()
        data = HELLO.pack(MAGIC, 1, 2, b"n" * 16) + b"x" * 1000
        with sock:
            sock.settimeout(self.interval)
            while self.sent < len(data):
                try:
                    sock.send(data[self.sent : self.sent + 1])
                    self.sent += 1
                    if sock.recv(1) == b"":  # the server closed: cut off
                        break
                except TimeoutError:
                    continue  # nothing to read yet: drip on
                except OSError:
                    break  # reset: cut off
        self.cut_at = time.monotonic()
        self.cut.set()


def _rendezvous_thread(out, rank, port, timeout, world_size=2):
    def run():
        start = time.monotonic()
        try:
            out[rank] = tcp_rendezvous(f"tcp://127.0.0.1:{port}", rank, world_size, SECRET, timeout)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out[rank] = exc
        out[f"time{rank}"] = time.monotonic() - start

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _sum_check(transports):
    """An exact all_reduce over the connected transports (one thread each)."""
    results = [None] * len(transports)

    def run(r):
        x = np.full(16, r + 1.0)
        ProcessGroup(transports[r], timeout=10).all_reduce(x)
        results[r] = x

    threads = [threading.Thread(target=run, args=(r,)) for r in range(len(transports))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return all(np.array_equal(x, np.full(16, 3.0)) for x in results)


def test_a_slow_drip_client_does_not_hold_the_store():
    port, out, timeout = free_port(), {}, 3.0
    rank0 = _rendezvous_thread(out, 0, port, timeout)
    drip = DripClient(("127.0.0.1", port))  # would need 4.8 s for its 24-byte HELLO
    drip.start()
    assert drip.connected.wait(10), "the drip client never reached the store"
    rank1 = _rendezvous_thread(out, 1, port, timeout)
    rank0.join(), rank1.join()
    assert all(isinstance(out[r], TcpTransport) for r in (0, 1)), out
    # rank 1 got through while the drip was still inside its HELLO: one at a time, the
    # store would have served rank 1 only after it (and rank 1's 3 s would have run out)
    assert drip.cut.wait(10) and drip.sent < HELLO.size, drip.sent  # cut as the store closed
    assert _sum_check([out[0], out[1]])
    out[0].close(), out[1].close()


def test_a_slow_drip_client_is_cut_off_by_its_handshake_deadline():
    port, out, timeout = free_port(), {}, 2.0
    threads = [_rendezvous_thread(out, r, port, timeout) for r in (0, 1)]
    for t in threads:
        t.join()
    t0, t1 = out[0], out[1]
    drip = DripClient(t0.listener.getsockname())  # the mesh listener stays open
    drip.start()
    assert drip.connected.wait(10) and drip.cut.wait(20)
    # one deadline for the whole handshake: with a timeout restarted by every byte (0.2 s
    # apart, 2 s allowed) it would have sent its whole 24-byte HELLO, and more
    assert drip.sent < HELLO.size, drip.sent
    assert any("deadline" in line for line in t0.refused), t0.refused
    assert _sum_check([t0, t1])  # collectives were never disturbed
    t0.close(), t1.close()


def test_300_idle_connections_start_no_threads_and_a_real_rank_still_gets_in():
    l0, l1 = listen(), listen()
    addresses = [l0.getsockname(), l1.getsockname()]
    t0 = TcpTransport(0, 2, l0, SECRET, timeout=1.0)  # 1 s for each handshake
    before = threading.active_count()
    idle = [socket.create_connection(addresses[0]) for _ in range(300)]
    deadline = time.monotonic() + 20
    while t0.admission.accepted < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    during = threading.active_count()
    assert t0.admission.accepted == 300
    assert during <= before, (before, during)  # before the fix: one thread per connection
    # beyond the line and the workers, connections are refused at once
    assert t0.admission.refusals >= 300 - admission.PENDING - admission.WORKERS
    t1 = TcpTransport(1, 2, l1, SECRET, timeout=10.0)
    waiter = threading.Thread(target=t0.connect, args=(addresses, time.monotonic() + 10))
    waiter.start()
    t1.connect(addresses)  # refused while the line is full, it dials again
    waiter.join()
    assert _sum_check([t0, t1])
    for sock in idle:
        sock.close()
    t0.close(), t1.close()


def _silent_store():
    """A port that completes TCP connections (kernel backlog) but never says a word."""
    server = socket.create_server(("127.0.0.1", 0), backlog=8)
    return server, server.getsockname()[1]


@pytest.mark.parametrize("case", ["rank 1 never comes", "silent store", "no store"])
def test_a_rendezvous_whose_peer_never_comes_raises_collective_timeout_in_time(case):
    timeout, server = 1.5, None
    if case == "silent store":
        server, port = _silent_store()
    else:
        port = free_port()
    rank = 0 if case == "rank 1 never comes" else 1
    start = time.monotonic()
    with pytest.raises(CollectiveTimeout) as info:  # not a bare TimeoutError
        tcp_rendezvous(f"tcp://127.0.0.1:{port}", rank, 2, SECRET, timeout)
    elapsed = time.monotonic() - start
    assert elapsed < timeout + 3.0, elapsed  # the configured timeout, plus a margin
    text = str(info.value)
    assert f"rank {rank} of 2" in text and "timeout 1.5 s" in text, text
    if case == "rank 1 never comes":
        assert "missing ranks [1]" in text, text
    if server is not None:
        server.close()
