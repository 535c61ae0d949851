"""pix2pix's U-Net generator (``unet_128``, ``unet_256``) with pytorch-CycleGAN-and-pix2pix's key names.

The network is built recursively from the innermost block outwards, so keys nest:
``model.model.0`` (outermost down conv), ``model.model.1.model.1`` (next down conv), ... ``model.model.3``
(outermost up conv). The depth of that nesting is ``num_downs``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from cg_export.models.layers import conv_bias_for, make_norm
from cg_export.models.registry import register_generator


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up, and a skip concatenation (except the outermost)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
    ):
        super().__init__()
        self.outermost = outermost
        bias = conv_bias_for(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, make_norm(norm, outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2, True),
                downconv,
                make_norm(norm, inner_nc),
                submodule,
                nn.ReLU(True),
                upconv,
                make_norm(norm, outer_nc),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net generator of pix2pix; ``num_downs`` stride-2 levels, so sizes must be multiples of ``2**num_downs``.

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        ngf: Filters of the outermost level.
        num_downs: Number of down-sampling levels (7 for ``unet_128``, 8 for ``unet_256``); at least 5.
        dropout: Dropout(0.5) in the inner ``ngf * 8`` levels.
        norm: ``"batch"`` (pix2pix default) or ``"instance"``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        num_downs: int = 8,
        dropout: bool = False,
        norm: str = "batch",
    ):
        super().__init__()
        if num_downs < 5:
            raise TypeError("num_downs must be at least 5")
        self.config: dict[str, Any] = {
            "name": "unet",
            "in_channels": in_channels,
            "out_channels": out_channels,
            "ngf": ngf,
            "num_downs": num_downs,
            "dropout": dropout,
            "norm": norm,
        }
        self.size_multiple = 2**num_downs
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            out_channels, ngf, input_nc=in_channels, submodule=block, outermost=True, norm=norm
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


@register_generator("unet")
def unet(**kwargs: Any) -> UnetGenerator:
    """U-Net with any depth (default 8 levels)."""
    return UnetGenerator(**kwargs)


@register_generator("unet_128")
def unet_128(**kwargs: Any) -> UnetGenerator:
    """pix2pix ``unet_128``: 7 levels, for 128x128 images (sizes in multiples of 128)."""
    return UnetGenerator(**{"num_downs": 7, **kwargs})


@register_generator("unet_256")
def unet_256(**kwargs: Any) -> UnetGenerator:
    """pix2pix ``unet_256``: 8 levels, for 256x256 images (sizes in multiples of 256)."""
    return UnetGenerator(**{"num_downs": 8, **kwargs})
