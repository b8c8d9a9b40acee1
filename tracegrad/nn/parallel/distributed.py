"""`DistributedDataParallel`: each rank trains the same model on its share of the batch; gradients are averaged.

At construction rank 0's parameters and buffers are broadcast to every rank (after checking every rank has the
same parameter shapes). The parameters are grouped into buckets in reverse order (the order backward produces
their gradients: PyTorch's first bucket holds at most 1 MiB, the others 25 MiB). During backward a hook on each
parameter (`Tensor.register_post_accumulate_grad_hook`) marks its gradient ready; when every gradient of a bucket
is ready (and the buckets before it have started), the bucket's gradients are flattened into one tensor and
averaged with a nonblocking ``all_reduce(op=AVG)``, while backward goes on computing the next buckets' (the last
bucket, which nothing is left to overlap with, with a blocking one). At the end
of backward (`autograd.engine.queue_callback`) each bucket is waited for and its averages are copied back into the
``.grad`` of its parameters.

Under ``@tracegrad.compile`` the same hooks run while tracing, so the graph of a training step holds one
``all_reduce`` node per bucket (between the backward and the optimizer update: the numba backend runs native
segments on either side of it). `no_sync()` is read when the forward runs (a guard: a compiled step traced with
synchronisation traces again inside `no_sync`).
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np

from ... import _tracing
from ... import distributed as dist
from ...autograd.engine import queue_callback
from ...autograd.grad_mode import is_grad_enabled, no_grad
from ...creation import zeros_like
from ...ops.functions import cat
from ..module import Module

_MB = 1024 * 1024
_DEFAULT_BUCKET_CAP_MB = 25
_DEFAULT_FIRST_BUCKET_BYTES = 1024 * 1024  # PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES


class _Reduction:
    """The state of one backward pass's gradient averaging."""

    def __init__(self, n_buckets: int):
        self.ready = [0] * n_buckets  # gradients ready per bucket
        self.seen: set = set()        # ids of the parameters whose gradient is ready
        self.launched = 0             # buckets started, in order
        self.works: list = []         # (bucket index, its flat tensor, the all_reduce's Work)


class DistributedDataParallel(Module):
    """Data parallelism: wrap the model; each rank runs it on its share of the batch, and backward averages the
    gradients over the ranks (see the module docstring). The wrapped model is ``.module``; the state dict's keys
    start with ``module.``, as PyTorch's.

    Needs an initialized process group (`tracegrad.distributed.init_process_group`); CPU only (`device_ids` and
    `output_device` must be None). `bucket_cap_mb` sets the bucket size; `find_unused_parameters=True` lets
    parameters that got no gradient in a backward pass count as zeros (otherwise that raises). Buffers are
    broadcast from rank 0 at construction and, unless ``forward_sync_buffers=False``, before every forward.

    >>> import tracegrad as tg
    >>> tg.nn.parallel.DistributedDataParallel(tg.nn.Linear(2, 1))
    Traceback (most recent call last):
        ...
    ValueError: Default process group has not been initialized, please make sure to call init_process_group.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0, broadcast_buffers=None,
                 init_sync: bool = True, process_group=None, bucket_cap_mb=None, find_unused_parameters: bool = False,
                 forward_sync_buffers=None):
        super().__init__()
        if device_ids is not None or output_device is not None:
            raise ValueError("DistributedDataParallel: tracegrad runs on the CPU; device_ids and output_device must "
                             "be None")
        pg = dist.group.WORLD if process_group is None else process_group
        if pg is None:
            dist.get_rank()  # raises PyTorch's error about the default process group
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter that "
                               "requires a gradient.")
        if broadcast_buffers is not None:
            warnings.warn("`broadcast_buffers` is deprecated. Use `forward_sync_buffers` instead." if
                          forward_sync_buffers is None else "Both `broadcast_buffers` and `forward_sync_buffers` "
                          "were specified. `broadcast_buffers` is deprecated and its value is ignored when "
                          "`forward_sync_buffers` is provided.", FutureWarning, stacklevel=2)
        if forward_sync_buffers is not None:
            self.forward_sync_buffers, init_buffers = forward_sync_buffers, True
        else:
            self.forward_sync_buffers = init_buffers = broadcast_buffers if broadcast_buffers is not None else True
        self.module = module
        self.process_group = pg
        self.dim = dim
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self.bucket_cap_mb = _DEFAULT_BUCKET_CAP_MB if bucket_cap_mb is None else bucket_cap_mb
        first = _DEFAULT_FIRST_BUCKET_BYTES if bucket_cap_mb is None else int(bucket_cap_mb * _MB)
        self._names = {id(p): name for name, p in module.named_parameters()}
        self._buckets = _assign_buckets(params, first, int(self.bucket_cap_mb * _MB))
        self._bucket_of = {id(p): b for b, bucket in enumerate(self._buckets) for p in bucket}
        self._pending = None
        self._sync_this = True
        if init_sync:
            self._sync_module_states(params, init_buffers)
        self._hooks = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]

    # ---------------------------------------------------------------- construction
    def _sync_module_states(self, params, buffers: bool) -> None:
        """Check every rank has the same parameters, then give every rank rank 0's parameters (and buffers)."""
        mine = [(self._names[id(p)], tuple(p.shape), p.dtype.name) for p in params]
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, mine)
        me = dist.get_rank()
        for r, theirs in enumerate(everyone):
            if len(theirs) != len(mine):
                raise RuntimeError(f"DDP expects same model across all ranks, but Rank {me} has {len(mine)} params, "
                                   f"while rank {r} has inconsistent {len(theirs)} params.")
            for (name, shape, dt), (_, their_shape, their_dt) in zip(mine, theirs):
                if (shape, dt) != (their_shape, their_dt):
                    raise RuntimeError(f"DDP expects same model across all ranks, but parameter {name} is {dt} "
                                       f"{list(shape)} on rank {me} and {their_dt} {list(their_shape)} on rank {r}.")
        with no_grad():
            for p in params:
                dist.broadcast(p, src=0)
            if buffers:
                for b in self.module.buffers():
                    dist.broadcast(b, src=0)

    # ---------------------------------------------------------------- forward
    def forward(self, *inputs, **kwargs):
        if _tracing.TRACER is not None:  # NOTE: a Python decision the graph bakes in: guarded
            _tracing.TRACER.guard_on_value("DistributedDataParallel.require_backward_grad_sync (no_sync())",
                                           self.require_backward_grad_sync, lambda: self.require_backward_grad_sync)
        self._sync_this = self.require_backward_grad_sync and is_grad_enabled()
        if self.forward_sync_buffers and dist.get_world_size() > 1:
            with no_grad():
                for b in self.module.buffers():
                    dist.broadcast(b, src=0)
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside this block only accumulate gradients locally (no averaging);
        the first backward after it averages everything accumulated (gradient accumulation)."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    # ---------------------------------------------------------------- backward: buckets
    def _grad_ready(self, p) -> None:
        """Post-accumulate-grad hook: `p.grad` is final for this backward pass."""
        if not self._sync_this:
            return
        st = self._pending
        if st is None:
            st = self._pending = _Reduction(len(self._buckets))
            queue_callback(self._finalize)
        if id(p) in st.seen:
            raise RuntimeError(f"Expected to mark a variable ready only once: parameter {self._names.get(id(p))} got "
                               f"its gradient twice in one backward pass")
        st.seen.add(id(p))
        st.ready[self._bucket_of[id(p)]] += 1
        while st.launched < len(self._buckets) and st.ready[st.launched] == len(self._buckets[st.launched]):
            self._launch(st, st.launched)
        if _tracing.TRACER is None:
            self.process_group.progress()  # move the buckets under way forward while backward goes on

    def _launch(self, st: _Reduction, b: int) -> None:
        # NOTE: the last bucket is averaged at once (backward has nothing left to overlap it with), by MPI's
        # blocking all-reduce, which is faster than the nonblocking one (2x for 1 MB on this machine)
        last = b == len(self._buckets) - 1
        with no_grad():
            grads = [p.grad if p.grad is not None else zeros_like(p) for p in self._buckets[b]]
            flat = cat([g.reshape(-1) for g in grads])
            st.works.append((b, flat, dist.all_reduce(flat, op=dist.ReduceOp.AVG, async_op=not last)))
        st.launched += 1

    def _finalize(self) -> None:
        """End of backward: start the buckets that are not started, wait for all, copy the averages into `.grad`."""
        st, self._pending = self._pending, None
        if st.launched < len(self._buckets):
            missing = [self._names.get(id(p), "?") for b in range(st.launched, len(self._buckets))
                       for p in self._buckets[b] if id(p) not in st.seen]
            if missing and not self.find_unused_parameters:
                raise RuntimeError(
                    f"Expected to have finished reduction in the prior iteration before starting a new one. This error "
                    f"indicates that your module has parameters that were not used in producing loss. You can enable "
                    f"unused parameter detection by passing the keyword argument `find_unused_parameters=True` to "
                    f"`tracegrad.nn.parallel.DistributedDataParallel`, and by making sure all `forward` function "
                    f"outputs participate in calculating loss. Parameters which did not receive grad for rank "
                    f"{dist.get_rank()}: {', '.join(missing)}")
            while st.launched < len(self._buckets):
                self._launch(st, st.launched)
        with no_grad():
            for b, flat, work in st.works:
                if work is not None:
                    work.wait()
                offset = 0
                for p in self._buckets[b]:
                    n = p.numel()
                    average = flat[offset:offset + n].view(p.shape)
                    if p.grad is None:
                        p.grad = average.clone()
                    elif _tracing.TRACER is None:  # NOTE: copy_ would first compute where(True, new, old): 1 ms of
                        np.copyto(p.grad._data, average._data)  # the 784-256-256-10 MLP's eager step
                        p.grad._version_box()[0] += 1
                    else:
                        p.grad.copy_(average)  # a write in the graph
                    offset += n


def _assign_buckets(params, first_cap: int, cap: int) -> list:
    """Parameters in reverse order, cut into buckets of at most `cap` bytes (the first: `first_cap`) once a bucket
    reaches its cap, and wherever the dtype changes (a bucket is flattened into one tensor)."""
    buckets, current, size = [], [], 0
    for p in reversed(params):
        if current and p.dtype is not current[0].dtype:
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += p.numel() * p.element_size()
        if size >= (first_cap if not buckets else cap):
            buckets.append(current)
            current, size = [], 0
    if current:
        buckets.append(current)
    return buckets
