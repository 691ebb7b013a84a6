"""trinix_bench: fast RMSNorm / LayerNorm for PyTorch (Triton kernels with a measured PyTorch fallback).

Importing the package imports torch only; Triton is imported on the first call that runs a kernel.
"""

from .dispatch import (
    DispatchDecision,
    DispatchThresholds,
    current_thresholds,
    explain,
    load_dispatch_profile,
    set_dispatch_profile,
)
from .functional import fused_add_layer_norm, fused_add_rms_norm, layer_norm, rms_norm
from .modules import FastLayerNorm, FastRMSNorm

__version__ = "0.1.0"

__all__ = [
    "rms_norm",
    "layer_norm",
    "fused_add_rms_norm",
    "fused_add_layer_norm",
    "FastRMSNorm",
    "FastLayerNorm",
    "explain",
    "DispatchDecision",
    "DispatchThresholds",
    "current_thresholds",
    "load_dispatch_profile",
    "set_dispatch_profile",
    "__version__",
]
