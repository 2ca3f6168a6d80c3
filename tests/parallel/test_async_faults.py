"""What a parameter server run does when something breaks — and that it never hangs.

- a worker killed in the middle of a push (half a frame on the wire, then the socket
  closes): with ``on_worker_lost="continue"`` the others finish and the server names the
  lost worker; with ``"fail"`` every worker and the launcher raise ``WorkerLost`` naming it;
- a worker that stays alive but stops talking is lost after the timeout, and a worker
  that never connects is lost ``timeout`` seconds after the start (SSP and sync gates do
  not wait for it forever);
- the worker's side: a server that stops answering gives ``CollectiveTimeout``, one that
  closes ``ServerLost``, a second connection for the same worker is refused by name;
- strangers: a wrong secret is refused at the handshake, a malformed frame loses only the
  connection that sent it.

Every test runs under a hard deadline (:func:`within`). The process variants (a real
``os._exit`` mid-push) are slow: each worker process imports sparkgrad afresh.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from sparkgrad.comms.auth import AuthError, new_secret, server_handshake
from sparkgrad.comms.tcp_transport import listen
from sparkgrad.engine.async_launch import LocalContext, make_server, run_local
from sparkgrad.engine.job import train_rank
from sparkgrad.errors import CollectiveTimeout, ServerLost, WorkerLost
from sparkgrad.parallel.asynchronous import protocol as p
from sparkgrad.parallel.asynchronous.staleness import DONE, LIVE, LOST, Clocks
from sparkgrad.parallel.asynchronous.worker import PSClient
from tests.parallel.async_helpers import ps_threads, small_config, within

pytestmark = pytest.mark.slow  # deadline-waiting fault runs: the full suite runs it

KILL = {1: {"kill_mid_push": 5}}  # worker 1 dies sending half of its 5th push


# ---- a worker killed mid-push ----
@pytest.mark.parametrize("mode", ["async", "ssp", "sync"])
def test_a_worker_killed_mid_push_the_rest_finish(mode):
    config = small_config(mode=mode, staleness=1 if mode == "ssp" else None)
    run = within(60, run_local, config, "threads", timeout=5, faults=KILL)
    assert run.outcomes[0] == "ok", run.outcomes
    assert run.outcomes[1].startswith("InjectedFault"), run.outcomes
    assert list(run.stats["lost"]) == [1]
    assert "mid-frame" in run.stats["lost"][1], run.stats["lost"]
    assert run.stats["pushes_per_worker"] == {0: 62, 1: 4}  # its half push was never applied
    assert ps_threads() == []


def test_a_worker_killed_mid_push_fails_the_run_by_name_when_asked():
    config = small_config(mode="async")
    with pytest.raises(WorkerLost, match="worker 1 of 2 was lost"):
        within(60, run_local, config, "threads", timeout=5, faults=KILL, on_worker_lost="fail")
    assert ps_threads() == []


@pytest.mark.slow
def test_a_worker_process_killed_mid_push_the_rest_finish():
    run = within(180, run_local, small_config(mode="async"), "processes", timeout=10, faults=KILL)
    assert run.outcomes == {0: "ok", 1: "exited with code 137"}, run.outcomes
    assert "mid-frame" in run.stats["lost"][1]
    assert run.accuracy() > 0.7  # worker 0 trained on after the loss


@pytest.mark.slow
def test_a_worker_process_killed_mid_push_fails_the_run_by_name_when_asked():
    config = small_config(mode="ssp", staleness=2)
    with pytest.raises(WorkerLost, match="worker 1"):
        within(180, run_local, config, "processes", timeout=10, faults=KILL,
               on_worker_lost="fail")  # fmt: skip


# ---- silent or missing workers ----
def test_a_silent_worker_is_lost_after_the_timeout_and_ssp_moves_on():
    config = small_config(mode="ssp", staleness=0)
    stall = {1: {"stall_at": 3, "stall_s": 4.0}}  # alive, but says nothing for 4 s
    run = within(60, run_local, config, "threads", timeout=1.5, faults=stall)
    assert run.outcomes[0] == "ok"
    assert run.outcomes[1].startswith("ServerLost"), run.outcomes  # it came back too late
    assert "deadline" in run.stats["lost"][1], run.stats["lost"]
    assert run.stats["pushes_per_worker"][0] == 62


def test_a_worker_that_never_connects_is_lost_and_sync_goes_on_without_it():
    config = small_config(mode="sync")
    config.extra = {"ps_timeout": 1.0, "parameter_server": True}
    secret = new_secret()
    with make_server(config, secret) as server:
        ctx = LocalContext(0, 2, server.address, secret)
        out = within(60, train_rank, ctx, config.to_dict())  # worker 1 never comes
        server.wait(5)
    assert out["steps"] == 62
    assert "did not connect" in server.lost[1]
    assert server.stats()["updates"] == 62  # rounds of one once worker 1 was given up


# ---- the worker's side of a broken server ----
def _mute_server(secret: bytes, answer_hello: bool) -> tuple[socket.socket, threading.Thread]:
    """A listener that authenticates one worker, maybe welcomes it, then never answers."""
    listener = listen()
    held: list[socket.socket] = []

    def serve() -> None:
        sock, _ = listener.accept()
        held.append(sock)
        server_handshake(sock, secret, 2, time.monotonic() + 5)
        wire = p.Wire(sock, 0, 2)
        wire.recv(time.monotonic() + 5)
        if answer_hello:
            wire.send(p.WELCOME, 0, text=p.welcome_text("async", 3, None))
        time.sleep(6)
        sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_server_that_stops_answering_gives_a_timeout_naming_the_request():
    secret = new_secret()
    listener, thread = _mute_server(secret, answer_hello=True)
    client = within(10, PSClient, listener.getsockname(), secret, 0, 2, timeout=0.5)
    start = time.monotonic()
    with pytest.raises(CollectiveTimeout, match="worker 0: push: no answer from the parameter"):
        within(10, client.push, np.zeros(3, np.float32), 0)
    assert time.monotonic() - start < 5  # bounded by the timeout, not by the server
    client.close()
    listener.close()


def test_a_server_that_closes_gives_server_lost():
    secret = new_secret()
    config = small_config(mode="async")
    server = make_server(config, secret)
    client = PSClient(server.address, secret, 0, 2, timeout=5)
    server.close()
    with pytest.raises(ServerLost, match="worker 0"):
        within(10, client.pull, np.zeros(server.numel, np.float32))
    client.close()


def test_a_second_connection_for_the_same_worker_is_refused_by_name():
    secret = new_secret()
    with make_server(small_config(mode="async"), secret) as server:
        first = PSClient(server.address, secret, 1, 2, timeout=5)
        with pytest.raises(ServerLost, match="worker 1 already joined"):
            within(10, PSClient, server.address, secret, 1, 2, timeout=5)
        first.close()


# ---- strangers ----
def test_a_wrong_secret_is_refused_and_the_server_carries_on():
    secret = new_secret()
    with make_server(small_config(mode="async"), secret) as server:
        with pytest.raises(AuthError):
            within(10, PSClient, server.address, new_secret(), 0, 2, timeout=5)
        client = PSClient(server.address, secret, 0, 2, timeout=5)
        assert client.pull(np.zeros(server.numel, np.float32)) == 0
        client.close()
        assert server.admission.refusals >= 1


def test_a_malformed_frame_loses_only_the_connection_that_sent_it():
    secret = new_secret()
    with make_server(small_config(mode="async"), secret) as server:
        rogue = PSClient(server.address, secret, 0, 2, timeout=5)
        rogue.wire.sock.sendall(b"SGF1" + b"\xff" * 28)  # a prefix of nonsense
        honest = PSClient(server.address, secret, 1, 2, timeout=5)
        weights = np.zeros(server.numel, np.float32)
        assert honest.pull(weights) == 0
        assert honest.push(np.zeros_like(weights), 0) == 1
        deadline = time.monotonic() + 5
        while 0 not in server.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "malformed" in server.lost[0] or "version" in server.lost[0], server.lost
        honest.close()
        rogue.close()


# ---- the clocks themselves ----
def test_clocks_count_only_the_workers_still_training():
    clocks = Clocks(3, staleness=1)
    clocks.state = [LIVE, LIVE, LIVE]
    clocks.clock = [3, 2, 1]
    assert clocks.slowest() == 1 and clocks.gap(0) == 2 and not clocks.may_start(0)
    assert clocks.may_start(1) and clocks.laggards(0) == [2]
    clocks.state[2] = LOST  # the straggler is gone: nobody waits for it
    assert clocks.slowest() == 2 and clocks.may_start(0)
    clocks.state[1] = DONE
    assert clocks.gap(0) == 0 and not clocks.finished()
    clocks.state[0] = DONE
    assert clocks.finished()
