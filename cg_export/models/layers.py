"""Normalisation layers shared by the generator architectures."""

from __future__ import annotations

from typing import Any

from torch import nn

NORMS = ("instance", "batch", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Build the normalisation layer the peers use for ``kind``.

    CycleGAN uses ``InstanceNorm2d`` without affine parameters or running statistics; pix2pix's U-Net
    defaults to ``BatchNorm2d`` (affine, with running statistics); ``"none"`` is pytorch-CycleGAN-and-pix2pix's
    ``--norm none``, an ``Identity`` that keeps the layer's index (so later key names do not shift) and has no
    keys. All are exact matches of the reference code so their state dicts load as-is.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, not {kind!r}")


def conv_bias_for(norm: str) -> bool:
    """Whether convolutions before ``norm`` carry a bias in the reference code.

    pytorch-CycleGAN-and-pix2pix sets ``use_bias = norm_layer == InstanceNorm2d``, so BatchNorm *and* ``--norm
    none`` (a plain function returning ``Identity``) both leave the convolutions without bias.
    """
    return norm == "instance"


def read_norm(state_dict: dict[str, Any], conv_key: str, norm_key: str) -> str:
    """The normalisation after the convolution ``conv_key``, read from the keys the norm layer ``norm_key`` left.

    BatchNorm leaves an affine ``weight`` and running statistics; InstanceNorm (CycleGAN's, no affine) and
    ``--norm none`` (``Identity``) leave nothing, and are told apart by the convolution's bias, which the
    reference code gives to InstanceNorm only.
    """
    weight = state_dict.get(f"{norm_key}.weight")
    if weight is not None and weight.dim() == 1:
        return "batch"
    return "instance" if f"{conv_key}.bias" in state_dict else "none"
