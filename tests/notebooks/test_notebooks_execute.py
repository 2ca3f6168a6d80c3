"""The teaching notebooks: each runs top to bottom, and its exercise checkers really check.

For every ``notebooks/NN_*.ipynb`` the slow test starts a ``python3`` kernel in
``notebooks/`` (so relative paths such as ``solutions/`` work), runs every cell with
nbclient and fails on the first error, or when the whole notebook runs past
``NOTEBOOK_TIMEOUT_S`` (a guard against hangs, not a speed test).

Exercise convention (see ``notebooks/README.md``): a notebook defines
``check_exercise_k(answer)`` that prints "right" or "wrong: ..." and returns a bool, and
its checking cell calls it on the learner's (empty) answer; ``solutions/NN_solutions.py``
defines ``solution_k``. So the test also asserts that every checking cell printed "wrong"
for the unanswered exercise and, in one extra cell run after the notebook, that every
solution makes its checker say "right": a checker that cannot fail, or a solution that
does not pass, is caught.

The fast tests check what gets committed: no outputs (no images in git), small files, a
README that lists the notebooks in order, and one numbering for the whole track: every
walkthrough ``tests/walkthroughs/test_NN_k_*.py`` (titled "Walkthrough N.k") and every
exercise ``exercises/chNN_*.py`` belongs to the chapter of notebook ``NN_*.ipynb``.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
NOTEBOOK_TIMEOUT_S = 300  # whole notebook; the target on a 2-core laptop is under 2 minutes
CELL_TIMEOUT_S = 240

SOLUTIONS_CELL = """
import runpy as _runpy
_sol = _runpy.run_path({path!r})
_keys = sorted(k for k in _sol if k.startswith("solution_"))
assert _keys, "the solutions file defines no solution_k"
_results = {{k: globals()["check_exercise_" + k.split("_", 1)[1]](_sol[k]) for k in _keys}}
assert all(_results.values()), f"solutions that fail their checker: {{_results}}"
"""


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no NN_*.ipynb found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_notebook_is_stripped_and_small(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"cell {i} of {path.name} has outputs: clear them"
            assert cell.execution_count is None, f"cell {i} of {path.name} has a count"
    assert path.stat().st_size < 200_000, f"{path.name} is {path.stat().st_size} bytes"


def test_readme_lists_every_notebook_in_order():
    readme = (NOTEBOOK_DIR / "README.md").read_text()
    linked = re.findall(r"\(([0-9]{2}_[^)]*\.ipynb)\)", readme)
    assert linked == sorted(linked), "README should list the notebooks in order"
    missing = [p.name for p in NOTEBOOKS if p.name not in linked]
    assert not missing, f"README.md does not link {missing}"


def test_walkthroughs_and_exercises_follow_the_notebooks_numbers():
    chapters = {p.name[:2] for p in NOTEBOOKS}
    walkthroughs = sorted((ROOT / "tests" / "walkthroughs").glob("test_*.py"))
    assert walkthroughs, "no walkthroughs found"
    for path in walkthroughs:
        m = re.fullmatch(r"test_(\d\d)_(\d+)_\w+\.py", path.name)
        assert m, f"{path.name}: expected test_NN_k_title.py (chapter NN, walkthrough k)"
        assert m.group(1) in chapters, f"{path.name}: no notebook {m.group(1)}_*.ipynb"
        title = f'"""Walkthrough {int(m.group(1))}.{m.group(2)} — '
        assert path.read_text().startswith(title), f"{path.name} should open with {title}"
    exercises = sorted((ROOT / "exercises").glob("ch[0-9][0-9]_*.py"))
    assert exercises, "no exercises found"
    for path in exercises:
        assert path.name[2:4] in chapters, f"{path.name}: no notebook {path.name[2:4]}_*.ipynb"
        assert path.read_text().startswith(f'"""Chapter {int(path.name[2:4])} exercise')


def _stdout(cell: dict) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_top_to_bottom(path: Path, monkeypatch: pytest.MonkeyPatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")  # the kernel inherits the environment
    monkeypatch.setenv("SPARKGRAD_NOTEBOOK_LIVE", "0")  # draw the final plots only
    nb = nbformat.read(path, as_version=4)
    solutions = NOTEBOOK_DIR / "solutions" / f"{path.name[:2]}_solutions.py"
    n_cells = len(nb.cells)
    if solutions.exists():
        code = SOLUTIONS_CELL.format(path=str(solutions.relative_to(NOTEBOOK_DIR)))
        nb.cells.append(nbformat.v4.new_code_cell(code.strip()))
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    try:
        asyncio.run(asyncio.wait_for(client.async_execute(), NOTEBOOK_TIMEOUT_S))
    except asyncio.TimeoutError:
        pytest.fail(f"{path.name} did not finish within {NOTEBOOK_TIMEOUT_S} s")

    checks = [
        (i, cell)
        for i, cell in enumerate(nb.cells[:n_cells])
        if cell.cell_type == "code" and re.search(r"^check_exercise_\d+\(", cell.source, re.M)
    ]
    for i, cell in checks:
        assert "wrong" in _stdout(cell), (
            f"cell {i} of {path.name}: the checker did not say 'wrong' for the unanswered "
            f"exercise; it printed {json.dumps(_stdout(cell))}"
        )
    if solutions.exists():
        assert checks, f"{solutions.name} exists but {path.name} calls no check_exercise_k"
        assert len(re.findall(r"^right$", _stdout(nb.cells[-1]), re.M)) >= len(checks)
