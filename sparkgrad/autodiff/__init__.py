"""The autodiff engine: tensors, the ops they record, backward, layers and optimizers.

Read in this order: ``backend`` (NumPy or CuPy), ``dtypes`` and ``device`` → ``tensor``
(the data) → ``function`` (one op = forward + backward) → ``ops/`` (every op) → ``graph``
(backward) → ``functional`` (the public op API) → ``factories``, ``ranges``, ``sampling``
(ways to make tensors) → ``nn`` → ``optim``. ``host_memory`` tells the C allocator to
reuse freed pages (a speed setting, no change to any number).
"""

from sparkgrad.autodiff import host_memory as _host_memory
from sparkgrad.autodiff.backend import cuda_is_available
from sparkgrad.autodiff.draw_graph import draw_graph, graph_nodes
from sparkgrad.autodiff.dtypes import get_default_dtype, is_floating_point, set_default_dtype
from sparkgrad.autodiff.factories import (
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    is_tensor,
    numel,
    ones,
    ones_like,
    tensor,
    zeros,
    zeros_like,
)
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from sparkgrad.autodiff.gradcheck import GradcheckError, gradcheck
from sparkgrad.autodiff.random import Generator, get_rng_state, manual_seed, set_rng_state
from sparkgrad.autodiff.ranges import arange, linspace, logspace
from sparkgrad.autodiff.sampling import (
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
)
from sparkgrad.autodiff.tensor import Size, Tensor
from sparkgrad.autodiff.threads import get_num_threads, set_num_threads

_host_memory.keep_freed_memory()  # once, on import (SPARKGRAD_SYSTEM_MALLOC=1 opts out)
