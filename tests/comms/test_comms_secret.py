"""The job secret: no job runs with one that can be computed, guessed or is too short.

Every TCP connection between ranks proves it holds the per-job secret (an HMAC
handshake, :mod:`sparkgrad.comms.auth`). Before issue 17 a job without
``SPARKGRAD_SECRET`` used a key derived from ``host:port/world``, so any local process
that knew the address could join as a rank and feed values into ``all_reduce``. Now:

- ``init_process_group`` over TCP without a secret refuses, before opening a socket, and
  says how to set one; so do ranks started without one;
- a secret shorter than 16 bytes is refused;
- the launchers (``dist.spawn``, ``sparkgrad.multiprocessing.spawn``, SparkRunner) draw a
  random one, and a process that knows the address but not the secret is refused by the
  store and cannot change any result.
"""

import hashlib
import socket
import threading
import time

import numpy as np
import pytest

import sparkgrad.distributed as dist
from sparkgrad.comms.auth import SECRET_ENV, client_handshake, resolve_secret
from sparkgrad.comms.rendezvous import spark_rendezvous
from sparkgrad.comms.spawn import free_port, run_processes
from sparkgrad.comms.tcp_transport import TcpTransport, listen
from sparkgrad.errors import CommError, ConfigError

pytestmark = (
    pytest.mark.slow
)  # spawned processes with and without the secret: the full suite runs it


def _port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("init_method", ["tcp", "env"])
def test_tcp_init_without_a_secret_refuses_before_opening_a_socket(monkeypatch, init_method):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    port = free_port()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    method = f"tcp://127.0.0.1:{port}" if init_method == "tcp" else "env://"
    with pytest.raises(ConfigError, match=SECRET_ENV) as info:
        dist.init_process_group("tcp", init_method=method, rank=0, world_size=2, timeout=2)
    text = str(info.value)
    assert "secret=" in text and "token_hex" in text and "dist.spawn" in text, text
    assert not dist.is_initialized()
    assert _port_is_free(port)  # no store was opened: nobody could have joined it


def _init_and_report(rank, world_size):
    try:
        dist.init_process_group("tcp", timeout=5)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return type(exc).__name__, str(exc)
    dist.destroy_process_group()
    return "joined", ""


def test_ranks_started_without_a_secret_refuse_to_start():
    # SPARKGRAD_SECRET="" in every rank: before, they agreed on a key anyone could compute
    results = run_processes(_init_and_report, 2, env={SECRET_ENV: ""}, timeout=60)
    for kind, text in results:
        assert kind == "ConfigError" and SECRET_ENV in text, results


def test_a_secret_shorter_than_16_bytes_is_refused(monkeypatch):
    with pytest.raises(ConfigError, match="15 bytes, expected at least 16"):
        resolve_secret(b"k" * 15)
    with pytest.raises(ConfigError, match="15 bytes"):
        resolve_secret("ab" * 15)  # hex: 15 bytes
    monkeypatch.setenv(SECRET_ENV, "ab" * 15)
    with pytest.raises(ConfigError, match=f"from {SECRET_ENV} is 15 bytes"):
        resolve_secret(None)
    monkeypatch.setenv(SECRET_ENV, "not hex at all, but long enough")
    with pytest.raises(ConfigError, match="must be hex"):
        resolve_secret(None)
    assert resolve_secret(b"k" * 16) == b"k" * 16  # 16 is enough
    monkeypatch.setenv(SECRET_ENV, "ab" * 16)
    assert resolve_secret(None) == b"\xab" * 16
    with pytest.raises(ConfigError, match="15 bytes"):  # every way in checks it
        dist.init_process_group(
            "tcp", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=2,
            timeout=2, secret=b"k" * 15,
        )  # fmt: skip
    listener = listen()
    with pytest.raises(ConfigError, match="15 bytes"):
        TcpTransport(0, 2, listener, b"k" * 15)
    listener.close()
    with pytest.raises(ConfigError, match="15 bytes"):
        spark_rendezvous(None, b"k" * 15)


# What every rank used before issue 17 when SPARKGRAD_SECRET was unset: anyone can compute it.
def _old_default_key(port, world_size):
    return hashlib.sha256(f"sparkgrad-default:127.0.0.1:{port}/{world_size}".encode()).digest()


def _sum_ranks(rank, world_size):
    if rank == 1:
        time.sleep(1.0)  # the stranger reaches the store first
    dist.init_process_group("tcp", timeout=20)
    x = np.arange(1000, dtype=np.float64) * (rank + 1)
    dist.all_reduce(x)
    dist.destroy_process_group()
    return x.tolist()


def test_a_process_that_knows_the_address_but_not_the_secret_is_refused_and_changes_nothing():
    port = free_port()
    outcome = {}

    def stranger():
        """Knows the store's address; claims rank 1 with the formerly computable key."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "handshake" not in outcome:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                time.sleep(0.02)
                continue
            with sock:
                try:
                    key = _old_default_key(port, 2)
                    client_handshake(sock, key, 1, 2, time.monotonic() + 5)
                    outcome["handshake"] = "accepted"
                except CommError as exc:
                    outcome["handshake"] = f"refused: {type(exc).__name__}: {exc}"

    thread = threading.Thread(target=stranger)
    thread.start()
    # run_processes draws a random secret for its ranks, as dist.spawn does
    results = run_processes(_sum_ranks, 2, env={"MASTER_PORT": str(port)}, timeout=120)
    thread.join()
    assert outcome["handshake"].startswith("refused: AuthError"), outcome
    expected = (np.arange(1000, dtype=np.float64) * 3).tolist()
    assert results == [expected, expected]  # exact: nothing was fed in by the stranger
