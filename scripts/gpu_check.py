"""The whole GPU check in one go: versions, the cuda-marked tests, the GPU benchmark report.

    scripts/gpu_check.sh OUT                   # on a machine with an NVIDIA GPU
    scripts/gpu_check.sh OUT --fake --quick    # rehearsal on the CPU (the CuPy stand-in)
    scripts/gpu_check.sh --pack-deps DIR       # here: copy the test-only packages to carry

Made for a short, rare, offline loan of a GPU machine (Python, NumPy, SciPy, CuPy, PyTorch,
safetensors, matplotlib, tqdm, pytest; maybe no PySpark, no network, no install). Runs from
the checkout with ``PYTHONPATH`` pointing at it, and in order:

1. preflight: every module it needs imports, CuPy sees a GPU, PyTorch has CUDA; the first
   thing missing ends the run with one line ``gpu_check: FAIL ...`` and exit status 2;
2. prints GPU, driver, CUDA runtime, CuPy, PyTorch (and NumPy, SciPy, Python) versions;
3. ``pytest -m cuda -x`` on the test files that hold cuda tests (none needs PySpark);
4. ``python -m sparkgrad.benchmark report --device cuda --skip-spark`` into ``OUT/report``;
5. writes ``OUT/summary.md`` and ``OUT/summary.json`` (logs: ``OUT/pytest.log``,
   ``OUT/report.log``). A failing step stops the run (exit status 1), summary written.

``--budget`` (default 480 s) bounds the whole run: each step gets what is left. The tests
use hypothesis, which such a machine may lack: ``--pack-deps DIR`` copies it (pure
Python) from this environment, and ``--deps DIR`` puts DIR on the path there.
Standard library only: it must run before anything else is known to work.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_cupy"
NEEDED = {  # module -> what to do when it is missing
    "numpy": "pip install numpy",
    "scipy": "pip install scipy",
    "safetensors": "pip install safetensors",
    "matplotlib": "pip install matplotlib",
    "tqdm": "pip install tqdm",
    "pytest": "pip install pytest",
    "torch": "pip install torch (a CUDA build)",
    "hypothesis": "run scripts/gpu_check.sh --pack-deps DIR where it is installed, carry DIR, "
    "pass --deps DIR",
    "cupy": "pip install cupy-cuda13x (or cupy-cuda12x for CUDA 12)",
}
TEST_DEPS = ("hypothesis", "sortedcontainers")  # pure Python; hypothesis needs the other

PROBE = r"""
import importlib, json, sys
out = {"python": sys.version.split()[0], "missing": [], "versions": {}}
for name in sys.argv[1].split(","):
    try:
        mod = importlib.import_module(name)
        out["versions"][name] = getattr(mod, "__version__", "?")
    except Exception as exc:
        out["missing"].append([name, f"{type(exc).__name__}: {exc}"])
if "cupy" in out["versions"]:
    import cupy
    try:
        rt = cupy.cuda.runtime
        out["gpus"] = rt.getDeviceCount()
        name = rt.getDeviceProperties(0)["name"]
        out["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
        v, d = rt.runtimeGetVersion(), rt.driverGetVersion()
        out["cuda_runtime"] = f"{v // 1000}.{v % 1000 // 10}"
        out["cuda_driver_api"] = f"{d // 1000}.{d % 1000 // 10}"
    except Exception as exc:
        out["gpus"], out["gpu_error"] = 0, f"{type(exc).__name__}: {exc}"
    out["stand_in"] = bool(getattr(cupy, "IS_SPARKGRAD_FAKE", False))
if "torch" in out["versions"]:
    import torch
    out["torch_cuda"] = torch.version.cuda
    out["torch_cuda_available"] = bool(torch.cuda.is_available())
print(json.dumps(out))
"""


class Failed(Exception):
    """One step failed: the message is the one line printed."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def environment(args: argparse.Namespace) -> dict[str, str]:
    """The checkout (and ``--deps``) first on ``PYTHONPATH``; the stand-in when ``--fake``."""
    paths = [str(ROOT)] + ([str(Path(args.deps).resolve())] if args.deps else [])
    if args.fake:
        paths.append(str(FAKE))
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths + old), "PYTHONUNBUFFERED": "1"}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if args.fake:
        env["SPARKGRAD_FAKE_CUDA"] = "1"
    else:
        env.pop("SPARKGRAD_FAKE_CUDA", None)
    return env


def preflight(env: dict[str, str], fake: bool) -> dict:
    """Import everything, ask CuPy and PyTorch about the GPU; ``Failed(status=2)`` if not."""
    if sys.version_info < (3, 10):  # noqa: UP036 - the script may meet any python3
        raise Failed(f"Python 3.10+ needed, found {sys.version.split()[0]}", 2)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(NEEDED)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    if proc.returncode != 0:
        raise Failed(f"the import probe crashed: {proc.stderr.strip().splitlines()[-1:]}", 2)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, error in info["missing"]:
        raise Failed(f"missing {name} ({error}); {NEEDED[name]}", 2)
    if info.get("gpus", 0) < 1:
        raise Failed(f"CuPy sees no GPU ({info.get('gpu_error', '0 devices')})", 2)
    if info.get("stand_in") and not fake:
        raise Failed("`import cupy` found the test stand-in: unset SPARKGRAD_FAKE_CUDA", 2)
    if not fake and not info.get("torch_cuda_available"):
        raise Failed(f"PyTorch {info['versions']['torch']} has no CUDA (torch.cuda)", 2)
    info["driver"] = nvidia_smi("driver_version") or info.get("cuda_driver_api", "?")
    return info


def nvidia_smi(field: str) -> str | None:
    """One field of ``nvidia-smi --query-gpu`` for GPU 0, or None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={field}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def cuda_test_files() -> list[str]:
    """Test files holding cuda tests: a ``cuda`` marker or a test taking the ``device`` fixture."""
    pattern = re.compile(r"mark\.cuda\b|def test_\w+\([^)]*\bdevice\b", re.S)
    files = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if FAKE in path.parents:
            continue
        if pattern.search(path.read_text(encoding="utf-8")):
            files.append(str(path.relative_to(ROOT)))
    return files


def run_logged(cmd: list[str], env: dict, log: Path, timeout: float) -> tuple[int, float, str]:
    """(exit status or None on timeout, seconds, last line) of ``cmd``, output into ``log``."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        try:
            status = subprocess.run(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                timeout=max(1.0, timeout),
            ).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            status = None
    seconds = time.perf_counter() - start
    lines = [x for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]
    return status, seconds, (lines[-1].strip() if lines else "")


def pack_deps(target: str) -> int:
    """Copy hypothesis and its one dependency (with their dist-info) into ``target``."""
    import importlib
    import importlib.metadata as metadata

    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    for name in TEST_DEPS:
        mod = importlib.import_module(name)
        src = Path(mod.__file__).parent
        shutil.copytree(src, out / src.name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        dist = metadata.distribution(name)
        info = Path(str(dist._path))  # the dist-info folder: entry points (pytest plugin)
        shutil.copytree(info, out / info.name, dirs_exist_ok=True)
        for extra in dist.files or []:
            top = str(extra).split("/")[0]
            if top.endswith(".py") and "/" not in str(extra):  # _hypothesis_pytestplugin.py
                shutil.copy2(Path(dist.locate_file(extra)), out / top)
    print(f"gpu_check: packed {', '.join(TEST_DEPS)} into {out} (carry it, pass --deps {out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", help="folder for the summary, logs and report")
    p.add_argument("--fake", action="store_true", help="rehearse on the CPU stand-in of CuPy")
    p.add_argument("--quick", action="store_true", help="the report's --quick sizes")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for the whole run")
    p.add_argument("--deps", help="folder with test-only packages (from --pack-deps)")
    p.add_argument("--pack-deps", metavar="DIR", help="copy hypothesis here, then stop")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments (quoted)")
    p.add_argument("--skip-report", action="store_true", help="tests only")
    args = p.parse_args(argv)
    if args.pack_deps:
        return pack_deps(args.pack_deps)
    if not args.out:
        p.error("the output folder OUT is required")
    deadline = time.perf_counter() + args.budget
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"fake": args.fake, "quick": args.quick, "budget_s": args.budget}
    status = 0
    try:
        env = environment(args)
        info = preflight(env, args.fake)
        summary["environment"] = info
        versions = info["versions"]
        for label, value in [
            ("GPU", info.get("gpu", "?") + (" (CPU stand-in of CuPy)" if args.fake else "")),
            ("driver", info["driver"]),
            ("CUDA runtime", info.get("cuda_runtime", "?")),
            ("CuPy", versions["cupy"]),
            ("PyTorch", f"{versions['torch']} (CUDA {info.get('torch_cuda')})"),
            ("NumPy / SciPy", f"{versions['numpy']} / {versions['scipy']}"),
            ("Python", info["python"]),
        ]:
            print(f"gpu_check: {label:13} {value}", flush=True)
        files = cuda_test_files()
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-x", "-q", "-p", "no:cacheprovider"]
        cmd += shlex.split(args.pytest_args) + files
        left = deadline - time.perf_counter()
        code, secs, last = run_logged(cmd, env, out / "pytest.log", left)
        summary["pytest"] = {"status": code, "seconds": round(secs, 1), "result": last,
                             "files": len(files)}  # fmt: skip
        print(f"gpu_check: pytest -m cuda: {last} ({secs:.0f} s)", flush=True)
        if code is None:
            raise Failed(f"pytest -m cuda ran past the budget ({secs:.0f} s); see pytest.log")
        if code != 0 or " passed" not in last:
            raise Failed(f"pytest -m cuda: {last} (exit {code}); see {out / 'pytest.log'}")
        if args.fake and "skipped" in last:  # on a GPU the stand-in's ledger tests skip
            raise Failed(f"pytest -m cuda on the stand-in skipped tests: {last}")
        if not args.skip_report:
            cmd = [sys.executable, "-m", "sparkgrad.benchmark", "report", "--device", "cuda"]
            cmd += ["--skip-spark", "--out", str(out / "report")]
            cmd += ["--quick"] if args.quick else []
            left = deadline - time.perf_counter()
            code, secs, last = run_logged(cmd, env, out / "report.log", left)
            summary["report"] = {"status": code, "seconds": round(secs, 1), "result": last}
            print(f"gpu_check: benchmark report: {last} ({secs:.0f} s)", flush=True)
            if code is None:
                raise Failed(f"the report ran past the budget ({secs:.0f} s); try --quick")
            if code != 0 or not (out / "report" / "report.md").is_file():
                raise Failed(f"the report failed (exit {code}): {last}; see report.log")
        summary["result"] = "OK"
    except Failed as exc:
        summary["result"] = f"FAIL {exc}"
        status = exc.status
    summary["seconds"] = round(args.budget - (deadline - time.perf_counter()), 1)
    write_summary(out, summary)
    print(f"gpu_check: {summary['result']} ({summary['seconds']:.0f} s, summary in {out})")
    return status


def write_summary(out: Path, summary: dict) -> None:
    """``summary.json`` (everything) and ``summary.md`` (a few readable lines)."""
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    info = summary.get("environment", {})
    v = info.get("versions", {})
    lines = [
        "# GPU check" + (" (rehearsal on the CPU stand-in of CuPy)" if summary["fake"] else ""),
        "",
        f"- result: {summary['result']} in {summary['seconds']:.0f} s",
        f"- GPU: {info.get('gpu', '?')}, driver {info.get('driver', '?')}, "
        f"CUDA runtime {info.get('cuda_runtime', '?')}",
        f"- CuPy {v.get('cupy', '?')}, PyTorch {v.get('torch', '?')} "
        f"(CUDA {info.get('torch_cuda', '?')}), NumPy {v.get('numpy', '?')}, "
        f"Python {info.get('python', '?')}",
    ]
    for step in ("pytest", "report"):
        if step in summary:
            s = summary[step]
            lines.append(f"- {step}: {s['result']} ({s['seconds']:.0f} s, exit {s['status']})")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
