"""``sparkgrad.multiprocessing.spawn`` as ``torch.multiprocessing.spawn``, with real processes.

The distributed-applications tutorial's pattern through 2 processes: exact sums, maxima,
send/recv, a sub-group; a failing child raises in the parent with its traceback; the job
secret reaches every child.
"""

from __future__ import annotations

import os

import mp_workers
import pytest

import sparkgrad as sg
import sparkgrad.multiprocessing as mp
from sparkgrad.comms.spawn import free_port

pytestmark = pytest.mark.slow  # spawned processes, PyTorch gloo beside: the full suite runs it


@pytest.fixture
def master(monkeypatch):
    """The tutorial's MASTER_ADDR/MASTER_PORT, set in the parent (the children inherit it)."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    monkeypatch.delenv("SPARKGRAD_SECRET", raising=False)


@pytest.mark.parametrize("init_method", [None, "env://"])
def test_tutorial_collectives_and_point_to_point_over_gloo(tmp_path, master, init_method):
    assert mp.spawn(mp_workers.tutorial_run, args=(2, str(tmp_path), init_method), nprocs=2) is None
    results = [sg.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for rank, res in enumerate(results):
        assert res["sum"].tolist() == [3.0, 30.0, -1.0]  # (1 + 2), (10 + 20), (0 - 1)
        assert res["max"].tolist() == [1.0, 0.0]
        assert res["p2p"].tolist() == [7.0, 7.0, 7.0]  # rank 0 sent it, rank 1 received it
        assert res["group"].tolist() == [2.0]
        assert (res["rank"], res["world"], res["backend"]) == (rank, 2, "gloo")
    assert results[0]["back"].tolist() == [42.0, 1.0]
    secrets = {res["secret"] for res in results}
    assert len(secrets) == 1 and len(secrets.pop()) == 64  # one random 32-byte secret, in hex


def test_a_failing_child_raises_in_the_parent_with_its_traceback():
    with pytest.raises(mp.ProcessRaisedException) as info:
        mp.spawn(mp_workers.failing_run, args=("rank 1 broke on purpose",), nprocs=2)
    text = str(info.value)
    assert "-- Process 1 terminated with the following error:" in text
    assert "Traceback" in text and "ValueError: rank 1 broke on purpose" in text
    assert info.value.error_index == 1 and isinstance(info.value.error_pid, int)


def test_a_child_that_exits_reports_its_exit_code():
    with pytest.raises(mp.ProcessExitedException, match="process 0 terminated with exit code 3"):
        mp.spawn(mp_workers.exiting_run, args=(3,), nprocs=2)


def test_join_false_returns_a_context(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKGRAD_SECRET", "ab" * 32)  # a secret set by the user is kept
    context = mp.spawn(mp_workers.record_secret, args=(str(tmp_path),), nprocs=3, join=False)
    assert isinstance(context, mp.ProcessContext) and len(context.pids()) == 3
    while not context.join():
        pass
    assert context.join() is True
    assert [(tmp_path / f"secret{r}").read_text() for r in range(3)] == ["ab" * 32] * 3


def test_process_carries_the_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARKGRAD_SECRET", raising=False)
    procs = [mp.Process(target=mp_workers.record_secret, args=(r, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    secrets = {(tmp_path / f"secret{r}").read_text() for r in range(2)}
    assert len(secrets) == 1 and len(secrets.pop()) == 64
    assert "SPARKGRAD_SECRET" not in os.environ  # the parent's environment is left alone


def test_other_start_methods_warn_like_torch():
    with pytest.warns(FutureWarning, match="start_method=spawn"):
        mp.spawn(mp_workers.exiting_run, args=(0,), nprocs=1, start_method="fork")


def test_the_names_are_torch_multiprocessings():
    import torch.multiprocessing

    missing = [name for name in mp.__all__ if not hasattr(torch.multiprocessing, name)]
    assert not missing
