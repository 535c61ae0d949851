"""Normalisation layers shared by the generator architectures."""

from __future__ import annotations

from torch import nn

NORMS = ("instance", "batch")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Build the normalisation layer the peers use for ``kind``.

    CycleGAN uses ``InstanceNorm2d`` without affine parameters or running statistics; pix2pix's U-Net
    defaults to ``BatchNorm2d``. Both are exact matches of the reference code so their state dicts load as-is.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be one of {NORMS}, not {kind!r}")


def conv_bias_for(norm: str) -> bool:
    """Whether convolutions before ``norm`` carry a bias (the reference drops it before BatchNorm)."""
    return norm == "instance"
