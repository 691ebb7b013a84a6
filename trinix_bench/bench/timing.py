"""Timing loops: CUDA events (with an L2 flush and optional CUDA-graph replay) or a CPU wall clock.

Every iteration is ``prepare()`` (untimed: grads to None, in-place inputs restored), then on CUDA an
L2 flush (untimed: a ``.zero_()`` of a buffer larger than L2, so each iteration reads its inputs
from HBM as a real model step would), then the timed call between two marks. CUDA marks are events
recorded on the stream, read after one synchronize at the end; CPU marks are
``time.perf_counter_ns`` (monotonic).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import torch

FLUSH_MIN_BYTES = 256 * 2**20
GRAPH_WARMUP = 3  # eager runs on a side stream before capture, as torch.cuda.graphs documents


class _CpuClock:
    def __init__(self, marks: int):
        pass

    def mark(self):
        return time.perf_counter_ns()

    def sync(self):
        pass

    def ms(self, a, b) -> float:
        return (b - a) / 1e6


class _CudaClock:
    def __init__(self, marks: int):
        # Created up front: creating an event between the call and its end mark would put host
        # time into launch-bound measurements.
        self._events = iter([torch.cuda.Event(enable_timing=True) for _ in range(marks)])

    def mark(self):
        event = next(self._events)
        event.record()
        return event

    def sync(self):
        torch.cuda.synchronize()

    def ms(self, a, b) -> float:
        return a.elapsed_time(b)


def time_loop(
    step: Callable[[], object],
    *,
    device_type: str,
    warmup: int,
    iters: int,
    prepare: Callable[[], None] = lambda: None,
    flush: Optional[torch.Tensor] = None,
) -> list[float]:
    """Per-iteration times in ms of ``step`` after ``warmup`` untimed iterations."""
    clock = (_CudaClock if device_type == "cuda" else _CpuClock)(2 * iters)
    for _ in range(warmup):
        prepare()
        step()
    marks = []
    for _ in range(iters):
        prepare()
        if flush is not None:
            flush.zero_()
        start = clock.mark()
        step()
        marks.append((start, clock.mark()))
    clock.sync()
    return [clock.ms(a, b) for a, b in marks]


def make_flush_buffer(device: torch.device) -> torch.Tensor:
    """A byte buffer at least twice the L2 size (and at least 256 MiB)."""
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 0
    return torch.empty(max(FLUSH_MIN_BYTES, 2 * l2), dtype=torch.uint8, device=device)


def capture_graph(run: Callable[[], object], prepare: Callable[[], None]) -> Callable[[], None]:
    """Capture one call of ``run`` into a CUDA graph and return its replay.

    The graph reads and writes the same buffers as ``run``, so ``prepare`` (which restores those
    buffers in place) stays valid between replays.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP):
            prepare()
            run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    prepare()
    with torch.cuda.graph(graph):
        run()
    torch.cuda.synchronize()
    return graph.replay
