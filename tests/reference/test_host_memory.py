"""``host_memory.keep_freed_memory``: a training step reuses freed pages instead of faulting
in fresh ones (the claim of its docstring, measured as the kernel's page-fault count)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sparkgrad.autodiff.host_memory import keep_freed_memory

STEP_FAULTS = """
import resource
import sparkgrad as sg
from sparkgrad.models.gpt import build_gpt
from sparkgrad.models.sequence_parts import TokenCrossEntropy

model = build_gpt(50, context=64, d_model=64, nhead=4, num_layers=2)
opt, loss_fn = sg.optim.AdamW(model.parameters(), lr=1e-3), TokenCrossEntropy()
ids = sg.randint(0, 50, (32, 64))

def step():
    opt.zero_grad()
    loss_fn(model(ids), ids).backward()
    opt.step()

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


def faults_per_step(system_malloc: bool) -> int:
    env = {k: v for k, v in os.environ.items() if k != "SPARKGRAD_SYSTEM_MALLOC"}
    if system_malloc:
        env["SPARKGRAD_SYSTEM_MALLOC"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", STEP_FAULTS], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.slow  # two subprocesses (~4 s)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_a_gpt_step_reuses_freed_pages() -> None:
    assert keep_freed_memory()  # glibc accepted both settings
    reused, system = faults_per_step(False), faults_per_step(True)
    assert reused * 10 < system, (reused, system)


def test_the_opt_out_keeps_the_c_library_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKGRAD_SYSTEM_MALLOC", "1")
    assert keep_freed_memory() is False
