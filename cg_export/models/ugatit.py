"""U-GAT-IT's generator (Kim et al. 2020; znxlwm/UGATIT-pytorch), with its exact state-dict key names.

An encoder (``DownBlock``: 7x7 conv, two stride-2 convs, ``n_blocks`` residual blocks, InstanceNorm, no conv
bias) feeds a class-activation-map attention: the features are weighted by the global-average-pooling and
global-max-pooling classifiers' weights (``gap_fc``, ``gmp_fc``), concatenated, and merged by ``conv1x1``. An
MLP (``FC``) turns the features into AdaLIN's ``gamma`` and ``beta``; ``n_blocks`` residual blocks with AdaLIN
(``UpBlock1_<i>``) and a decoder of nearest upsampling + conv + LIN (``UpBlock2``) give the image.

The full model's MLP takes the whole flattened feature map, so it only runs at the training size
(``img_size``, 256 by default: :attr:`UgatitGenerator.fixed_size`); ``--light`` pools the features first and
runs at any size. Only the translated image is returned (the reference also returns the CAM logits and
heatmap, which inference does not use). AdaLIN and LIN are written with means and unbiased variances, as the
reference computes them, so they export as plain ReduceMean / Sub / Mul / Div / Sqrt nodes.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cg_export.models.registry import register_generator

EPS = 1e-5


def _normalized(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` over ``dims`` with the unbiased variance, as ``torch.var`` gives it."""
    centered = x - x.mean(dim=dims, keepdim=True)
    count = math.prod(x.shape[d] for d in dims)
    variance = (centered * centered).sum(dim=dims, keepdim=True) / (count - 1)
    return centered / torch.sqrt(variance + EPS)


def _instance_layer_mix(x: Tensor, rho: Tensor) -> Tensor:
    """``rho * InstanceNorm(x) + (1 - rho) * LayerNorm(x)`` with unbiased variances (U-GAT-IT's definition)."""
    return rho * _normalized(x, (2, 3)) + (1 - rho) * _normalized(x, (1, 2, 3))


class AdaLIN(nn.Module):
    """Adaptive Layer-Instance Normalization: the mix ``rho`` is learnt, ``gamma``/``beta`` come from the MLP."""

    def __init__(self, channels: int):
        super().__init__()
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), 0.9))

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return _instance_layer_mix(x, self.rho) * gamma[:, :, None, None] + beta[:, :, None, None]


class LIN(nn.Module):
    """Layer-Instance Normalization of the decoder: learnt ``rho``, ``gamma`` and ``beta``."""

    def __init__(self, channels: int):
        super().__init__()
        self.rho = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return _instance_layer_mix(x, self.rho) * self.gamma + self.beta


class EncoderBlock(nn.Module):
    """Residual block of the encoder (``conv_block.{1,5}``, InstanceNorm, no bias)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.InstanceNorm2d(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class AdaLINBlock(nn.Module):
    """Residual block of the bottleneck with AdaLIN after each convolution."""

    def __init__(self, dim: int):
        super().__init__()
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(dim, dim, 3, bias=False)
        self.norm1 = AdaLIN(dim)
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(dim, dim, 3, bias=False)
        self.norm2 = AdaLIN(dim)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return x + self.norm2(self.conv2(self.pad2(out)), gamma, beta)


class UgatitGenerator(nn.Module):
    """U-GAT-IT's ResnetGenerator.

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        ngf: Filters of the first convolution (``--ch``, 64 by default).
        n_blocks: Residual blocks in the encoder and in the AdaLIN bottleneck each (``--n_res``, 4).
        img_size: Training size (``--img_size``, 256); the full model only runs at that size.
        light: The ``--light`` model, whose MLP pools the features first and so runs at any size.
    """

    size_multiple = 4

    def __init__(
        self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 4, img_size: int = 256,
        light: bool = False,
    ):
        super().__init__()
        if n_blocks < 1 or ngf < 1 or in_channels < 1 or out_channels < 1 or img_size < 4 or img_size % 4:
            raise TypeError("ngf, channels and n_blocks must be positive and img_size a multiple of 4")
        self.config: dict[str, Any] = {
            "name": "ugatit", "in_channels": in_channels, "out_channels": out_channels, "ngf": ngf,
            "n_blocks": n_blocks, "img_size": img_size, "light": light,
        }
        self.n_blocks = n_blocks
        self.light = light
        self.fixed_size = None if light else (img_size, img_size)
        width = ngf * 4
        down: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=False), nn.InstanceNorm2d(ngf), nn.ReLU(True),
        ]
        for channels in (ngf, ngf * 2):
            down += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels * 2, 3, stride=2, bias=False),
                     nn.InstanceNorm2d(channels * 2), nn.ReLU(True)]
        down += [EncoderBlock(width) for _ in range(n_blocks)]
        self.DownBlock = nn.Sequential(*down)
        self.gap_fc = nn.Linear(width, 1, bias=False)
        self.gmp_fc = nn.Linear(width, 1, bias=False)
        self.conv1x1 = nn.Conv2d(width * 2, width, 1)
        mlp_in = width if light else (img_size // 4) ** 2 * width
        self.FC = nn.Sequential(nn.Linear(mlp_in, width, bias=False), nn.ReLU(True),
                                nn.Linear(width, width, bias=False), nn.ReLU(True))
        self.gamma = nn.Linear(width, width, bias=False)
        self.beta = nn.Linear(width, width, bias=False)
        for i in range(n_blocks):
            setattr(self, f"UpBlock1_{i + 1}", AdaLINBlock(width))
        up: list[nn.Module] = []
        for channels in (width, width // 2):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                   nn.Conv2d(channels, channels // 2, 3, bias=False), LIN(channels // 2), nn.ReLU(True)]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, bias=False), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        x = self.DownBlock(x)
        # Class activation map: the features weighted by each pooling classifier's weights, merged by conv1x1.
        gap = x * self.gap_fc.weight[:, :, None, None]
        gmp = x * self.gmp_fc.weight[:, :, None, None]
        x = F.relu(self.conv1x1(torch.cat([gap, gmp], 1)))
        pooled = x.mean(dim=(2, 3)) if self.light else x.flatten(1)
        features = self.FC(pooled)
        gamma, beta = self.gamma(features), self.beta(features)
        for i in range(self.n_blocks):
            x = getattr(self, f"UpBlock1_{i + 1}")(x, gamma, beta)
        return self.UpBlock2(x)


def infer_ugatit_config(state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """U-GAT-IT generator config from its keys and shapes (the full model's MLP width gives ``img_size``)."""
    from cg_export.errors import CheckpointError

    first = state_dict["DownBlock.1.weight"]
    blocks = {int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"UpBlock1_(\d+)\.conv1\.weight", k))}
    mlp = state_dict.get("FC.0.weight")
    last = [v for k, v in state_dict.items() if re.fullmatch(r"UpBlock2\.\d+\.weight", k)]
    if mlp is None or not last or not blocks:
        raise CheckpointError("U-GAT-IT generator keys are incomplete (FC / UpBlock2); the file is damaged")
    last_conv = max(((int(k.split(".")[1]), v) for k, v in state_dict.items()
                     if re.fullmatch(r"UpBlock2\.\d+\.weight", k)), key=lambda item: item[0])[1]
    ngf = int(first.shape[0])
    width = ngf * 4
    light = int(mlp.shape[1]) == width
    side = math.isqrt(int(mlp.shape[1]) // width) if not light else 64
    return {
        "name": "ugatit",
        "in_channels": int(first.shape[1]),
        "out_channels": int(last_conv.shape[0]),
        "ngf": ngf,
        "n_blocks": len(blocks),
        "img_size": 256 if light else side * 4,
        "light": light,
    }


@register_generator("ugatit")
def ugatit(**kwargs: Any) -> UgatitGenerator:
    """U-GAT-IT's generator (full model, 256x256, 4 blocks by default)."""
    return UgatitGenerator(**kwargs)


@register_generator("ugatit_light")
def ugatit_light(**kwargs: Any) -> UgatitGenerator:
    """U-GAT-IT ``--light``: features pooled before the MLP, so any size runs."""
    return UgatitGenerator(**{"light": True, **kwargs})
