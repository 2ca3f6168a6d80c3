"""Solutions to the exercises of notebook 09, "Memory and precision".

Try the exercises first! To check a solution in the notebook::

    %run solutions/09_solutions.py
    check_exercise_3(solution_3)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""


# Exercise 3: communication slices live on thread 2; the denominator is the whole span the
# process was busy, from its first slice's start to its last slice's end, on any thread.
def comm_share(trace: dict, pid: int) -> float:
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] == pid]
    span = max(e["ts"] + e["dur"] for e in xs) - min(e["ts"] for e in xs)
    return sum(e["dur"] for e in xs if e["tid"] == 2) / span


solution_3 = comm_share
