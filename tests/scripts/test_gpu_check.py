"""``scripts/gpu_check.sh`` rehearsed on the CPU, so the first GPU run is not its first run.

The machine it is for has no PySpark and maybe no hypothesis: the rehearsal blocks both
(and pandas), supplies hypothesis the way that run will (``--pack-deps``, then ``--deps``),
and runs the script on the CuPy stand-in with a short budget.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the GPU script in subprocesses: the full suite runs it

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
BLOCKED = ("pyspark", "hypothesis", "pandas", "pyarrow", "mlxtend")


def _blockers(tmp_path):
    """A folder that makes ``import pyspark`` (and the others) fail, first on PYTHONPATH."""
    folder = tmp_path / "blockers"
    for name in BLOCKED:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')\n")
    return folder


def _run(args, env_extra, timeout=600):
    import os

    env = {k: v for k, v in os.environ.items() if k != "SPARKGRAD_FAKE_CUDA"}
    env.update(env_extra)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=timeout,
    )  # fmt: skip


def test_pack_deps_copies_hypothesis_with_its_plugin(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--pack-deps", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in tmp_path.iterdir()}
    assert {"hypothesis", "sortedcontainers", "_hypothesis_pytestplugin.py"} <= names
    assert any(n.startswith("hypothesis-") and n.endswith(".dist-info") for n in names)


def test_a_missing_module_fails_fast_in_one_line(tmp_path):
    """Without --deps, hypothesis is missing: one FAIL line naming it and the fix, exit 2."""
    proc = _run([str(tmp_path / "out"), "--fake"], {"PYTHONPATH": str(_blockers(tmp_path))}, 120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    fail = [line for line in proc.stdout.splitlines() if "FAIL" in line]
    assert len(fail) == 1 and "missing hypothesis" in fail[0] and "--pack-deps" in fail[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["result"].startswith("FAIL missing hypothesis")


def test_the_stand_in_is_refused_on_a_real_run(tmp_path):
    """SPARKGRAD_FAKE_CUDA left set on the GPU machine must not pass for a GPU run."""
    fake = str(ROOT / "tests" / "fake_cupy")
    proc = _run([str(tmp_path / "out"), "--skip-report"], {"PYTHONPATH": fake}, 120)
    assert proc.returncode == 2
    assert "found the test stand-in" in proc.stdout


@pytest.mark.slow
def test_a_rehearsal_without_pyspark_runs_every_step(tmp_path):
    deps = tmp_path / "deps"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--pack-deps", str(deps)],
        check=True, capture_output=True,
    )  # fmt: skip
    out = tmp_path / "out"
    args = [str(out), "--fake", "--quick", "--deps", str(deps), "--budget", "420"]
    args += ["--pytest-args", "-k 'pointwise or no_hidden_syncs or comms_cuda'"]
    proc = _run(args, {"PYTHONPATH": str(_blockers(tmp_path))})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for label in ("GPU", "driver", "CUDA runtime", "CuPy", "PyTorch"):
        assert any(line.startswith(f"gpu_check: {label} ") for line in lines), label
    summary = json.loads((out / "summary.json").read_text())
    assert summary["result"] == "OK" and summary["environment"]["stand_in"] is True
    assert " passed" in summary["pytest"]["result"] and "failed" not in summary["pytest"]["result"]
    assert (out / "report" / "report.md").is_file() and (out / "report" / "results.json").is_file()
    assert "result: OK" in (out / "summary.md").read_text()
