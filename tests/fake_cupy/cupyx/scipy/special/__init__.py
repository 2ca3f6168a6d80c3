"""``cupyx.scipy.special``: SciPy's special functions (ufuncs) on the stand-in's arrays.

``cupyx.scipy.special.erf(x)`` runs ``scipy.special.erf`` on the storage of a device array;
a NumPy array is refused with CuPy's ``TypeError``, like every stand-in function.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.special as _special
from cupy._functions import numpy_function


def __getattr__(name: str) -> Any:
    obj = getattr(_special, name, None)
    if not isinstance(obj, np.ufunc):
        raise AttributeError(f"module 'cupyx.scipy.special' (stand-in) has no attribute {name!r}")
    value = numpy_function(obj, name)
    globals()[name] = value
    return value
