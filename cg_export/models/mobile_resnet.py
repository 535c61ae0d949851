"""Mobile ResNet generators: CycleGAN's ResNet generator with depthwise-separable residual blocks.

This is the student family of GAN Compression (Li et al., CVPR 2020, mit-han-lab/gan-compression): the stem,
the two downsampling convolutions, the two ConvTranspose upsamplings and the last 7x7 convolution are those of
CycleGAN's generator; each 3x3 convolution of a residual block becomes a depthwise 3x3 convolution, an
InstanceNorm, and a pointwise 1x1 convolution. Most of the 9-block generator's multiply-adds are in its residual
blocks, so this cuts them several-fold at equal width, and a narrower ``ngf`` cuts the rest.

Layouts and state-dict keys are GAN Compression's, so its checkpoints load as they are:

* ``MobileResnetGenerator`` (``channels=None``): one width ``ngf``; block keys
  ``model.N.conv_block.1.conv.{0,2}.{weight,bias}`` (depthwise, pointwise) and ``conv_block.6.conv...`` (the
  second separable convolution; index 4 is a Dropout that is always present, with rate 0);
* ``SubMobileResnetGenerator`` (``channels=[...]``): per-stage widths found by their architecture search, the
  config string ``16_16_32_16_32_32_16_16`` of their released compressed models. With 8 numbers
  ``c0_c1_c2_b1_b2_b3_u1_u2``: stem ``c0``, downsampling ``2*c1`` and ``4*c2`` (the trunk), residual blocks
  ``4*b1``, ``4*b2``, ``4*b3`` inside (three groups of three blocks), upsampling ``2*u1`` and ``u2``. With 6 numbers
  ``c0_c1_c2_b_u1_u2`` every block has the inner width ``4*b``.

Indices ``model.1`` (stem), ``model.4``, ``model.7`` (downsampling), ``model.10 ..`` (blocks), then the two
ConvTranspose and the last convolution, exactly as CycleGAN's ``resnet_9blocks``. GAN Compression's sub-mobile
generator clamps its input to [-1, 1] first; images fed to a generator are in that range already, so it is left out.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from cg_export.errors import CheckpointError
from cg_export.models.layers import make_norm
from cg_export.models.registry import register_generator

NAME = "mobile_resnet"


class SeparableConv2d(nn.Module):
    """Depthwise ``k x k`` convolution, InstanceNorm, pointwise 1x1 convolution (keys ``conv.0``, ``conv.2``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel_size=kernel_size, groups=in_channels, bias=True),
            make_norm("instance", in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class MobileResnetBlock(nn.Module):
    """Residual block of two reflect-padded separable 3x3 convolutions, ``dim -> inner -> dim``."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            SeparableConv2d(dim, inner),
            make_norm("instance", inner),
            nn.ReLU(True),
            # Always there (rate 0 in GAN Compression's CycleGAN models): it keeps the second convolution at index 6.
            nn.Dropout(0.0),
            nn.ReflectionPad2d(1),
            SeparableConv2d(inner, dim),
            make_norm("instance", dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


def stage_widths(ngf: int, n_blocks: int, channels: list[int] | None) -> dict[str, Any]:
    """The channel count of every stage, from ``ngf`` or from a GAN Compression ``channels`` config.

    Returns:
        ``{"stem", "down", "trunk", "blocks": [inner width per block], "up": [first, second]}``.

    Raises:
        TypeError: ``channels`` has the wrong length or non-positive values, or names fewer block groups than needed.
    """
    if channels is None:
        return {"stem": ngf, "down": 2 * ngf, "trunk": 4 * ngf, "blocks": [4 * ngf] * n_blocks, "up": [2 * ngf, ngf]}
    if len(channels) not in (6, 8) or any(not isinstance(c, int) or c < 1 for c in channels):
        raise TypeError(f"channels must be 6 or 8 positive integers (GAN Compression's config), not {channels!r}")
    if len(channels) == 6:
        inner = [4 * channels[3]] * n_blocks
        up = [2 * channels[4], channels[5]]
    else:
        if n_blocks > 9:
            raise TypeError("an 8-number channels config describes three groups of three blocks: n_blocks <= 9")
        inner = [4 * channels[3 + index // 3] for index in range(n_blocks)]
        up = [2 * channels[6], channels[7]]
    return {"stem": channels[0], "down": 2 * channels[1], "trunk": 4 * channels[2], "blocks": inner, "up": up}


class MobileResnetGenerator(nn.Module):
    """ResNet generator whose residual blocks are depthwise-separable (GAN Compression's student).

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        ngf: Width of the first convolution; the trunk has ``4 * ngf`` channels. Ignored when ``channels`` is given
            (then recorded as the stem width).
        n_blocks: Number of separable residual blocks.
        channels: GAN Compression's per-stage widths (6 or 8 numbers, see the module docstring), or ``None``.
        norm: Only ``"instance"``; recorded so every config names its norm.
        upsample: ``"transpose"`` (GAN Compression's ConvTranspose) or ``"nearest"`` (nearest-neighbour upsampling
            and a 3x3 convolution, no checkerboard: the student of a ``resnet_upsample`` teacher; ours only, so
            recorded in the config, and bare GAN Compression state dicts are always ``"transpose"``).

    Input height and width must be multiples of :attr:`size_multiple` (two stride-2 stages).
    """

    size_multiple = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        channels: list[int] | None = None,
        norm: str = "instance",
        upsample: str = "transpose",
    ):
        super().__init__()
        if upsample not in ("transpose", "nearest"):
            raise TypeError(f"upsample must be 'transpose' or 'nearest', not {upsample!r}")
        if norm != "instance":
            raise TypeError(f"mobile ResNet generators use InstanceNorm (as GAN Compression's CycleGAN models), not {norm!r}")
        if n_blocks < 0 or ngf < 1 or in_channels < 1 or out_channels < 1:
            raise TypeError("ngf and channel counts must be positive and n_blocks non-negative")
        channels = None if channels is None else [int(c) for c in channels]
        widths = stage_widths(ngf, n_blocks, channels)
        if channels is not None:
            ngf = channels[0]
        self.config: dict[str, Any] = {
            "name": NAME,
            "in_channels": in_channels,
            "out_channels": out_channels,
            "ngf": ngf,
            "n_blocks": n_blocks,
            "channels": channels,
            "norm": "instance",
        }
        if upsample == "nearest":  # recorded only when set, so GAN Compression's configs stay as they were
            self.config["upsample"] = upsample
        stem, down, trunk = widths["stem"], widths["down"], widths["trunk"]
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, stem, kernel_size=7),
            make_norm("instance", stem),
            nn.ReLU(True),
            nn.Conv2d(stem, down, kernel_size=3, stride=2, padding=1),
            make_norm("instance", down),
            nn.ReLU(True),
            nn.Conv2d(down, trunk, kernel_size=3, stride=2, padding=1),
            make_norm("instance", trunk),
            nn.ReLU(True),
        ]
        layers += [MobileResnetBlock(trunk, inner) for inner in widths["blocks"]]
        previous = trunk
        for width in widths["up"]:
            if upsample == "transpose":
                layers.append(nn.ConvTranspose2d(previous, width, kernel_size=3, stride=2, padding=1, output_padding=1))
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                           nn.Conv2d(previous, width, kernel_size=3, padding=1)]
            layers += [
                make_norm("instance", width),
                nn.ReLU(True),
            ]
            previous = width
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(previous, out_channels, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


@register_generator(NAME)
def mobile_resnet(**kwargs: Any) -> MobileResnetGenerator:
    """Mobile ResNet generator (GAN Compression's student); default ngf 64, 9 blocks, like its mobile teacher."""
    return MobileResnetGenerator(**kwargs)


@register_generator("mobile_resnet_tiny")
def mobile_resnet_tiny(**kwargs: Any) -> MobileResnetGenerator:
    """A tiny mobile ResNet generator (ngf 4, 2 blocks) for tests; same graph, fewer weights."""
    return MobileResnetGenerator(**{"ngf": 4, "n_blocks": 2, **kwargs})


def is_mobile_resnet_state(state_dict: dict[str, Tensor]) -> bool:
    """Whether a bare state dict has GAN Compression's separable residual blocks (``conv_block.1.conv.0``)."""
    return any(re.fullmatch(r"model\.\d+\.conv_block\.1\.conv\.0\.weight", k) for k in state_dict)


def infer_mobile_resnet_config(state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """The config of a GAN Compression mobile or sub-mobile ResNet generator, from its weights' shapes.

    Raises:
        CheckpointError: keys are missing or the widths follow no layout GAN Compression writes.
    """
    def weight(key: str) -> Tensor:
        value = state_dict.get(key)
        if not isinstance(value, torch.Tensor) or value.dim() != 4:
            raise CheckpointError(f"mobile ResNet generator keys are incomplete (no 4-D {key}); the file is damaged")
        return value

    blocks = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    if not blocks or blocks != list(range(10, 10 + len(blocks))):
        raise CheckpointError("mobile ResNet generator keys are incomplete (residual blocks must start at model.10)")
    n_blocks = len(blocks)
    first_up, second_up, last = 10 + n_blocks, 13 + n_blocks, 17 + n_blocks
    stem = weight("model.1.weight")
    down = int(weight("model.4.weight").shape[0])
    trunk = int(weight("model.7.weight").shape[0])
    # ConvTranspose2d weights are (in, out, k, k).
    up = [int(weight(f"model.{first_up}.weight").shape[1]), int(weight(f"model.{second_up}.weight").shape[1])]
    inner = [int(weight(f"model.{b}.conv_block.1.conv.2.weight").shape[0]) for b in blocks]
    ngf = int(stem.shape[0])
    config = {"name": NAME, "in_channels": int(stem.shape[1]), "out_channels": int(weight(f"model.{last}.weight").shape[0]),
              "ngf": ngf, "n_blocks": n_blocks, "channels": None, "norm": "instance"}
    if stage_widths(ngf, n_blocks, None) == {"stem": ngf, "down": down, "trunk": trunk, "blocks": inner, "up": up}:
        return config
    if down % 2 or trunk % 4 or up[0] % 2 or any(w % 4 for w in inner):
        raise CheckpointError(f"mobile ResNet widths {[ngf, down, trunk, *inner, *up]} follow no GAN Compression layout")
    if len(set(inner)) == 1:
        channels = [ngf, down // 2, trunk // 4, inner[0] // 4, up[0] // 2, up[1]]
    else:
        channels = [ngf, down // 2, trunk // 4, *(inner[min(i, n_blocks - 1)] // 4 for i in (0, 3, 6)), up[0] // 2, up[1]]
    try:
        widths = stage_widths(ngf, n_blocks, channels)
    except TypeError as exc:
        raise CheckpointError(f"mobile ResNet widths follow no GAN Compression layout: {exc}") from None
    if widths["blocks"] != inner:
        raise CheckpointError(f"mobile ResNet block widths {inner} follow no GAN Compression layout (groups of three)")
    return {**config, "channels": channels}


def describe_mobile_resnet(config: dict[str, Any]) -> str:
    """One line, e.g. ``mobile_resnet_9blocks (separable blocks, ngf 16, 3->3 channels)``."""
    widths = f"GAN Compression widths {'_'.join(map(str, config['channels']))}" if config.get("channels") else (
        f"ngf {config.get('ngf', 64)}")
    upsampling = ", nearest Upsample + conv upsampling" if config.get("upsample") == "nearest" else ""
    return (f"mobile_resnet_{config.get('n_blocks', 9)}blocks (depthwise-separable blocks{upsampling}, {widths}, "
            f"{config.get('in_channels', 3)}->{config.get('out_channels', 3)} channels)")
