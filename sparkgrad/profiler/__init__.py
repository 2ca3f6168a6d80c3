"""``sparkgrad.profiler``: the ``torch.profiler`` names (from :mod:`sparkgrad.autodiff.profiler`).

with sg.profiler.profile(record_shapes=True) as prof:
    ...
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
prof.export_chrome_trace("trace.json")
"""

from sparkgrad.autodiff.profiler import *  # noqa: F403
from sparkgrad.autodiff.profiler import __all__  # noqa: F401
