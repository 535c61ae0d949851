"""ResNet generators of CycleGAN (Zhu et al. 2017, after Johnson et al. 2016).

Two layouts exist in the wild and both are built here with their exact state-dict key names:

* ``upsample="transpose"``: pytorch-CycleGAN-and-pix2pix's ``ResnetGenerator`` (ConvTranspose2d upsampling,
  residual blocks stored as ``conv_block``). Keys ``model.1``, ``model.4``, ``model.7``, ``model.10..``,
  ``model.{19,22}`` (ConvTranspose), ``model.26`` for 9 blocks.
* ``upsample="nearest"``: PyTorch-GAN's ``GeneratorResNet`` (nearest Upsample + 3x3 conv, blocks stored as
  ``block``). Keys ``model.1``, ``.4``, ``.7``, ``.10..``, ``.20``, ``.24``, ``.28`` for 9 blocks.

Two options exist only to reproduce files of the wild exactly: ``edge_pad`` (PyTorch-GAN pads its first and
last 7x7 convolutions by ``ReflectionPad2d(channels)``, so a one-channel model pads 1 pixel and its output is
8 pixels smaller than its input) and ``conv_bias`` (whether the convolutions before a norm carry a bias, when
that differs from the reference rule of :func:`~cg_export.models.layers.conv_bias_for`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from cg_export.models.layers import conv_bias_for, make_norm
from cg_export.models.registry import register_generator

UPSAMPLE_KINDS = ("transpose", "nearest")


def _residual_layers(dim: int, norm: str, dropout: bool, bias: bool | None = None) -> list[nn.Module]:
    bias = conv_bias_for(norm) if bias is None else bias
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(1),
        nn.Conv2d(dim, dim, kernel_size=3, bias=bias),
        make_norm(norm, dim),
        nn.ReLU(True),
    ]
    if dropout:
        # Inserting Dropout shifts the second conv from index 5 to 6, as in the reference checkpoints.
        layers.append(nn.Dropout(0.5))
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, bias=bias), make_norm(norm, dim)]
    return layers


class ResnetBlock(nn.Module):
    """Residual block with pytorch-CycleGAN-and-pix2pix key names (``conv_block.N``)."""

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False, bias: bool | None = None):
        super().__init__()
        self.conv_block = nn.Sequential(*_residual_layers(dim, norm, dropout, bias))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResidualBlock(nn.Module):
    """Residual block with PyTorch-GAN key names (``block.N``)."""

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False, bias: bool | None = None):
        super().__init__()
        self.block = nn.Sequential(*_residual_layers(dim, norm, dropout, bias))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator: c7s1-ngf, d(2ngf), d(4ngf), n x R(4ngf), u(2ngf), u(ngf), c7s1-out, Tanh.

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        ngf: Filters of the first convolution; the widest layers have ``4 * ngf``.
        n_blocks: Number of residual blocks (6 for 128 px training in the paper, 9 for 256 px).
        dropout: Dropout(0.5) inside residual blocks (pytorch-CycleGAN-and-pix2pix ``--no_dropout`` off).
        norm: ``"instance"`` (CycleGAN), ``"batch"`` or ``"none"``.
        upsample: ``"transpose"`` for the pytorch-CycleGAN-and-pix2pix layout, ``"nearest"`` for PyTorch-GAN's.
        edge_pad: Reflection padding of the first and last 7x7 convolutions: 3 keeps the size; PyTorch-GAN's
            one-channel models use 1, so their output is ``4 * (3 - edge_pad)`` pixels smaller.
        conv_bias: Bias on the convolutions before each norm; ``None`` follows the reference rule for ``norm``.

    Input height and width must be multiples of :attr:`size_multiple` (two stride-2 stages).
    """

    size_multiple = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        dropout: bool = False,
        norm: str = "instance",
        upsample: str = "transpose",
        edge_pad: int = 3,
        conv_bias: bool | None = None,
    ):
        super().__init__()
        if upsample not in UPSAMPLE_KINDS:
            raise TypeError(f"upsample must be one of {UPSAMPLE_KINDS}, not {upsample!r}")
        if n_blocks < 0 or ngf < 1 or in_channels < 1 or out_channels < 1:
            raise TypeError("ngf and channel counts must be positive and n_blocks non-negative")
        if not 0 <= edge_pad <= 3:
            raise TypeError(f"edge_pad must be 0..3, not {edge_pad!r}")
        self.config: dict[str, Any] = {
            "name": "resnet",
            "in_channels": in_channels,
            "out_channels": out_channels,
            "ngf": ngf,
            "n_blocks": n_blocks,
            "dropout": dropout,
            "norm": norm,
            "upsample": upsample,
        }
        # Recorded only where they differ from the defaults, so older configs stay valid and unchanged.
        if edge_pad != 3:
            self.config["edge_pad"] = edge_pad
        bias = conv_bias_for(norm) if conv_bias is None else conv_bias
        if bias != conv_bias_for(norm):
            self.config["conv_bias"] = bias
        self.edge_pad = edge_pad
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(edge_pad),
            nn.Conv2d(in_channels, ngf, kernel_size=7, bias=bias),
            make_norm(norm, ngf),
            nn.ReLU(True),
        ]
        channels = ngf
        for _ in range(2):
            layers += [
                nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                make_norm(norm, channels * 2),
                nn.ReLU(True),
            ]
            channels *= 2
        block = ResnetBlock if upsample == "transpose" else ResidualBlock
        layers += [block(channels, norm, dropout, bias) for _ in range(n_blocks)]
        for _ in range(2):
            if upsample == "transpose":
                layers.append(
                    nn.ConvTranspose2d(
                        channels, channels // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                    )
                )
            else:
                layers += [
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(channels, channels // 2, kernel_size=3, stride=1, padding=1, bias=bias),
                ]
            layers += [make_norm(norm, channels // 2), nn.ReLU(True)]
            channels //= 2
        layers += [nn.ReflectionPad2d(edge_pad), nn.Conv2d(channels, out_channels, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


@register_generator("resnet")
def resnet(**kwargs: Any) -> ResnetGenerator:
    """ResNet generator with any block count (default 9) and either upsampling layout."""
    return ResnetGenerator(**kwargs)


@register_generator("resnet_9blocks")
def resnet_9blocks(**kwargs: Any) -> ResnetGenerator:
    """pytorch-CycleGAN-and-pix2pix ``resnet_9blocks`` (CycleGAN's default at 256x256)."""
    return ResnetGenerator(**{"n_blocks": 9, **kwargs})


@register_generator("resnet_6blocks")
def resnet_6blocks(**kwargs: Any) -> ResnetGenerator:
    """pytorch-CycleGAN-and-pix2pix ``resnet_6blocks`` (the paper's 128x128 generator)."""
    return ResnetGenerator(**{"n_blocks": 6, **kwargs})


@register_generator("resnet_upsample")
def resnet_upsample(**kwargs: Any) -> ResnetGenerator:
    """PyTorch-GAN's ``GeneratorResNet``: nearest Upsample + conv instead of ConvTranspose (no checkerboard)."""
    return ResnetGenerator(**{"upsample": "nearest", **kwargs})


@register_generator("resnet_tiny")
def resnet_tiny(**kwargs: Any) -> ResnetGenerator:
    """A tiny ResNet generator (ngf 8, 2 blocks) for tests and quick demos; same graph, fewer weights."""
    return ResnetGenerator(**{"ngf": 8, "n_blocks": 2, **kwargs})
