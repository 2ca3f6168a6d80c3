"""Port a PyTorch program to sparkgrad by rewriting its import lines, and nothing else.

The mapping (the whole of it; any other line that imports torch is refused):

=====================================  =========================================
PyTorch program                        after porting
=====================================  =========================================
``import torch``                       ``import sparkgrad as torch``
``import torch as T``                  ``import sparkgrad as T``
``import torch.X.Y as Z``              ``import sparkgrad.X.Y as Z``
``import torch.X``                     ``import sparkgrad.X, sparkgrad as torch``
``from torch import a, b``             ``from sparkgrad import a, b``
``from torch.X.Y import a, b``         ``from sparkgrad.X.Y import a, b``
=====================================  =========================================

So ``import torch.nn as nn`` becomes ``import sparkgrad.nn as nn``, ``from torch.utils.data
import DataLoader`` becomes ``from sparkgrad.utils.data import DataLoader``, and
``import torch.multiprocessing as mp`` becomes ``import sparkgrad.multiprocessing as mp``:
every ``torch.*`` module path is the same path under ``sparkgrad``.

:func:`run_both` runs a program twice as a real script (``sys.executable``, its own
temporary working directory, one BLAS/OpenMP thread, loopback networking): once unchanged
under PyTorch and once ported. The ported run cannot reach PyTorch at all: a ``torch``
package that refuses to import comes first on its ``PYTHONPATH`` (child processes
inherit it), so a sparkgrad run that silently fell back on PyTorch fails.
:func:`numbers` reads the printed values back for comparison.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
ROOT = HERE.parent.parent  # the worktree whose sparkgrad is imported

_RULES = [  # (pattern on a whole line, replacement); the indentation is kept
    (re.compile(r"^(\s*)import torch(\s*(#.*)?)$"), r"\1import sparkgrad as torch\2"),
    (re.compile(r"^(\s*)import torch as (\w+)"), r"\1import sparkgrad as \2"),
    (re.compile(r"^(\s*)import torch\.([\w.]+) as (\w+)"), r"\1import sparkgrad.\2 as \3"),
    (re.compile(r"^(\s*)import torch\.([\w.]+)(\s*(#.*)?)$"),
     r"\1import sparkgrad.\2, sparkgrad as torch\3"),
    (re.compile(r"^(\s*)from torch((\.\w+)*) import "), r"\1from sparkgrad\2 import "),
]  # fmt: skip
_MENTIONS_TORCH = re.compile(r"^\s*(import|from)\s.*\btorch\b")


def port(source: str) -> str:
    """``source`` with its torch import lines rewritten by the mapping above.

    Raises ``ValueError`` for an import line the mapping does not cover (``import numpy,
    torch``, a ``__import__``...), so nothing is ever ported by accident.
    """
    out = []
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        body = line.rstrip("\n")
        for pattern, replacement in _RULES:
            if pattern.match(body):
                body = pattern.sub(replacement, body, count=1)
                break
        else:
            if _MENTIONS_TORCH.match(body):
                raise ValueError(f"line {number}: import not covered by the mapping: {body!r}")
        out.append(body + line[len(line.rstrip("\n")) :])
    return "".join(out)


def changed_lines(source: str) -> list[tuple[str, str]]:
    """The ``(before, after)`` pairs of the lines :func:`port` changes."""
    before, after = source.splitlines(), port(source).splitlines()
    return [(b, a) for b, a in zip(before, after) if b != a]


class ProgramFailed(AssertionError):
    """A program exited non-zero; ``stderr`` holds its traceback."""

    def __init__(self, lib: str, name: str, returncode: int, stdout: str, stderr: str) -> None:
        tail = "\n".join(stderr.splitlines()[-25:])
        super().__init__(f"{name} under {lib} exited with {returncode}:\n{tail}")
        self.lib, self.stdout, self.stderr = lib, stdout, stderr


@dataclass
class Runs:
    """What one program printed under PyTorch and after porting to sparkgrad."""

    torch: str
    sparkgrad: str


def _environment(work: Path, block_torch: bool) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(HERE)]  # sparkgrad of this worktree; digits.py
    if block_torch:
        blocker = work / "_no_torch" / "torch"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text(
            "raise ImportError('a ported program imported torch: the port is incomplete')\n"
        )
        paths.insert(0, str(blocker.parent))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    env["PYTHONHASHSEED"] = "0"
    return env


def _start(lib: str, name: str, source: str, work: Path) -> subprocess.Popen:
    work.mkdir(parents=True)
    script = work / name
    script.write_text(source)
    return subprocess.Popen(
        [sys.executable, name],
        cwd=work,
        env=_environment(work, block_torch=lib == "sparkgrad"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_both(name: str, tmp_path: Path, timeout: float = 600) -> Runs:
    """Run ``programs/<name>`` under PyTorch and ported to sparkgrad, side by side.

    The two runs go at the same time (each on one thread: the machine has two cores). A
    run that fails raises :class:`ProgramFailed` (PyTorch's first, so a broken program is
    never blamed on sparkgrad).
    """
    source = (PROGRAMS / name).read_text()
    procs = {
        "torch": _start("torch", name, source, tmp_path / "torch"),
        "sparkgrad": _start("sparkgrad", name, port(source), tmp_path / "sparkgrad"),
    }
    outputs = {}
    for lib, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs.values():
                p.kill()
            raise
        outputs[lib] = (proc.returncode, stdout, stderr)
    if _torch_teardown_abort(*outputs["torch"]):
        outputs["torch"] = _run_again("torch", name, source, tmp_path / "torch-again", timeout)
    for lib in procs:
        code, stdout, stderr = outputs[lib]
        if code != 0:
            raise ProgramFailed(lib, name, code, stdout, stderr)
    return Runs(torch=outputs["torch"][1], sparkgrad=outputs["sparkgrad"][1])


def _torch_teardown_abort(code: int, stdout: str, stderr: str) -> bool:
    """PyTorch's gloo sometimes aborts a spawned rank as it exits (about one run in eight
    here, after every line is printed): std::terminate in a thread still running at
    ``destroy_process_group``. That is PyTorch's flake, not the program's, so its run gets
    one more try; sparkgrad's run never does."""
    return code != 0 and "terminate called without an active exception" in stderr


def _run_again(lib: str, name: str, source: str, work: Path, timeout: float):
    proc = _start(lib, name, source, work)
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stdout, stderr


# a number not glued to a name: "AddBackward0" and "float32" hold none, "tensor(-1.5e-03" one
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def numbers(text: str) -> list[float]:
    """Every number printed in ``text``, in order."""
    return [float(m) for m in _NUMBER.findall(text)]


def lines_with(text: str, prefix: str) -> list[list[float]]:
    """The numbers of each line of ``text`` that starts with ``prefix``."""
    return [numbers(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
