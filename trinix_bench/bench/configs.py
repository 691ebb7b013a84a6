"""The registry of named size configs and the names of every other sweep dimension.

A config is a (batch, seq_len, hidden) shape; the harness normalizes over ``hidden`` and treats the
batch * seq_len positions as independent rows. ``python benchmark_normalization.py --list`` prints
this registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    seq_len: int
    hidden: int
    note: str = ""

    @property
    def rows(self) -> int:
        return self.batch * self.seq_len

    @property
    def elements(self) -> int:
        return self.rows * self.hidden


# Named shapes, smallest to largest by rows * hidden. The decode shapes are the launch-bound end
# (one and 32 tokens of a 4096-wide model); XXXL is a 128k-token prefill of a 16k-wide model.
_NAMED = (
    Config("Decode-1", 1, 1, 4096, "decode, 1 token"),
    Config("Decode-32", 32, 1, 4096, "decode, 32 tokens"),
    Config("Small", 4, 512, 4096),
    Config("Medium", 1, 2048, 4096),
    Config("Large", 1, 4096, 8192),
    Config("XL", 1, 16384, 8192),
    Config("XXL", 1, 32768, 12288),
    Config("XXXL", 1, 131072, 16384),
)
CONFIGS: dict[str, Config] = {c.name: c for c in _NAMED}

# What --quick runs when --configs is not given: the shapes a 2-core CPU sweeps in well under 2 min.
QUICK_CONFIGS = ("Decode-1", "Decode-32", "Small")

CUSTOM_NAME = "Custom"
# Sizes a custom config takes for the flags that were not given.
CUSTOM_DEFAULTS = {"batch": 1, "seq_len": 2048, "hidden": 4096}

LAYERS = ("rmsnorm", "layernorm")
MODES = ("fwd", "bwd", "full")
DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

# The library defaults, so every provider is called as a user calls it.
EPS = {"rmsnorm": 1e-6, "layernorm": 1e-5}


def custom_config(batch=None, seq_len=None, hidden=None) -> Config:
    """The config built from --batch-size / --seq-len / --hidden-size (missing ones take defaults)."""
    return Config(
        CUSTOM_NAME,
        batch if batch is not None else CUSTOM_DEFAULTS["batch"],
        seq_len if seq_len is not None else CUSTOM_DEFAULTS["seq_len"],
        hidden if hidden is not None else CUSTOM_DEFAULTS["hidden"],
        "from --batch-size/--seq-len/--hidden-size",
    )


def format_registry() -> str:
    """The --list text: one line per named config."""
    lines = [f"{'name':<10} {'batch':>6} {'seq_len':>8} {'hidden':>7} {'rows':>8} {'MiB/bf16 tensor':>16}  note"]
    for c in _NAMED:
        mib = c.elements * 2 / 2**20
        lines.append(f"{c.name:<10} {c.batch:>6} {c.seq_len:>8} {c.hidden:>7} {c.rows:>8} {mib:>16.1f}  {c.note}")
    lines.append(f"{CUSTOM_NAME:<10} from --batch-size --seq-len --hidden-size (defaults {CUSTOM_DEFAULTS})")
    return "\n".join(lines)
