"""The benchmark report: sparkgrad against PyTorch, side by side, in one command.

``python -m sparkgrad.benchmark report --device cpu --out DIR`` (see :mod:`.run`) writes
``report.md``, ``results.json`` and PNG plots; :class:`PerformanceComparator` gives the
same comparisons to a notebook, one method per section.
"""

from sparkgrad.benchmark.report.comparator import PerformanceComparator
from sparkgrad.benchmark.report.verdict import verdict

__all__ = ["PerformanceComparator", "verdict"]
