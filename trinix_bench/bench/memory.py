"""Peak memory of one call, free device memory, and the estimate that decides whether a config fits.

Peak memory is the extra memory the call needs beyond what exists before it (inputs, weights, and in
bwd the saved forward graph): after ``prepare()`` (grads set to None),

- CUDA: ``max_memory_allocated() - memory_allocated()`` around the call, after
  ``reset_peak_memory_stats()``.
- CPU: the call runs under ``torch.profiler`` with ``profile_memory=True``, which records every
  allocation and free of PyTorch's CPU allocator with a timestamp; the peak of their running sum is
  the extra memory. (Allocations outside PyTorch's allocator, e.g. numpy scratch, are not seen.) The
  event tree is a semi-private profiler API; should a future torch drop it, the fallback is the sum
  of each op's net positive allocation from the public event list, an upper bound of the peak.
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch

from .spec import Spec

CPU_METHOD = "torch.profiler allocation events: peak of the running sum during the call"

# Fixed headroom in the fit estimate: float64 reference chunks (REF_CHUNK_ELEMENTS * 8 B per tensor,
# about a dozen live at once), the L2 flush buffer, and allocator slack.
FIXED_OVERHEAD_BYTES = 2 * 2**30


def estimate_bytes(spec: Spec) -> int:
    """Memory a cell needs, an upper-bound estimate for the eager provider (the hungriest).

    Tensors of the input dtype (s bytes): fwd holds x and y (+ residual and residual_out); bwd/full
    also dy and dx (+ dres and dresidual). The eager fp32 upcast keeps about 2 fp32 copies alive in
    fwd and 5 in bwd/full (saved activations and their gradients).
    """
    r = 1 if spec.residual else 0
    n_io, n_fp32 = (2 + 2 * r, 2) if spec.mode == "fwd" else (4 + 4 * r, 5)
    s = torch.empty((), dtype=spec.torch_dtype).element_size()
    return spec.config.elements * (n_io * s + n_fp32 * 4) + FIXED_OVERHEAD_BYTES


def free_bytes(device: torch.device) -> int:
    """Memory available for new tensors: CUDA free + what PyTorch's cache holds unused; CPU MemAvailable."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def peak_bytes(run, prepare, device: torch.device) -> int:
    """Extra bytes allocated at the peak of one ``run()`` (see the module docstring)."""
    prepare()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = run()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return max(0, peak)
    return _cpu_peak(run)


@contextlib.contextmanager
def _quiet_stderr():
    # Kineto writes a line to fd 2 on every profiler start and stop; over a sweep that buries the
    # progress bar. Only the start/stop calls are silenced, never the measured call.
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def _cpu_peak(run) -> int:
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        prof.start()
    try:
        run()
    finally:
        with _quiet_stderr():
            prof.stop()
    try:
        return _peak_from_allocations(prof)
    except (AttributeError, ImportError, RuntimeError):
        return sum(max(0, e.self_cpu_memory_usage) for e in prof.events())


def _peak_from_allocations(prof) -> int:
    from torch._C._profiler import _EventType

    allocations, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            allocations.append(node)
        stack.extend(node.children)
    running = peak = 0
    for node in sorted(allocations, key=lambda n: n.start_time_ns):
        running += node.extra_fields.alloc_size
        peak = max(peak, running)
    return peak
