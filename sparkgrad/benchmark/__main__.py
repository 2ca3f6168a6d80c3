"""``python -m sparkgrad.benchmark <command>``: the benchmark commands in one place.

    python -m sparkgrad.benchmark report --device cpu --out docs/benchmarks/cpu

``report`` is the full side-by-side report (:mod:`sparkgrad.benchmark.report.run`). The
single benchmarks keep their own entry points: ``python -m sparkgrad.benchmark.step``,
``.collectives``, ``.spark_dp``, ``.strategies``.
"""

from __future__ import annotations

import sys

COMMANDS = ("report",)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        found = argv[0] if argv else "nothing"
        print(
            f"error: expected a command ({', '.join(COMMANDS)}), found {found}; "
            "try: python -m sparkgrad.benchmark report --help",
            file=sys.stderr,
        )
        return 2
    from sparkgrad.benchmark.report.run import main as report_main

    return report_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
