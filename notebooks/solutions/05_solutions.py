"""Solutions to the exercises of notebook 05, "Model, pipeline and tensor parallel".

Try the exercises first! To check a solution in the notebook::

    %run solutions/05_solutions.py
    check_exercise_1(solution_1)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""

# Exercise 1:
# (a) A slower backward stretches the work and the ramps alike: each stage works
#     m (F + B) and the step lasts (m + p - 1)(F + B), so the bubble is still
#     (p-1)/(m+p-1) = 3/11 = 0.2727...
# (b) (p-1)/(m+p-1) < 0.15 with p = 8:  7 < 0.15 (m + 7)  <=>  m > 39.67, so m = 40
#     (7/47 = 0.149; m = 39 gives 7/46 = 0.152).
solution_1 = (3 / 11, 40)

# Exercise 2: stage 1 of 4 warms up with p - s - 1 = 2 forwards, then alternates one
# forward and one backward (the backward of the oldest live micro-batch) while forwards
# remain, then drains the last two backwards.
solution_2 = [
    ("F", 0),
    ("F", 1),
    ("F", 2),
    ("B", 0),
    ("F", 3),
    ("B", 1),
    ("F", 4),
    ("B", 2),
    ("F", 5),
    ("B", 3),
    ("B", 4),
    ("B", 5),
]

# Exercise 3: GPipe runs all m = 4 forwards before any backward, on every stage.
# 1F1B: stage s holds its p - s - 1 warm-up forwards plus the one forward before its first
# backward, p - s in all, but never more than the m = 4 micro-batches there are:
# min(p - s, m) = min(6, 4), min(5, 4), min(4, 4), 3, 2, 1.
solution_3 = {"gpipe": [4, 4, 4, 4, 4, 4], "1f1b": [4, 4, 4, 3, 2, 1]}
