"""Test session setup.

Without CUDA, the Triton interpreter is switched on before anything imports triton, so
``backend="triton"`` runs our kernels on CPU tensors. With CUDA, kernels run on the GPU and the
interpreter-only tests are skipped (the two modes cannot share one process).
"""

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")
    # Triton fixes interpreter-or-compiled for its own tl.* functions when it is first imported, so
    # import it now, before any test can unset the variable around the package's lazy import.
    try:
        import triton  # noqa: F401
    except ImportError:
        pass


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    interpreting = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    skip_interp = pytest.mark.skip(reason="needs TRITON_INTERPRET=1 (CPU-only session)")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)
        if "interpreter" in item.keywords and not interpreting:
            item.add_marker(skip_interp)


def pytest_configure(config):
    config.addinivalue_line("markers", "interpreter: runs Triton kernels on CPU through TRITON_INTERPRET=1")
