"""CUT / FastCUT's ResNet generator (taesungp/contrastive-unpaired-translation), anti-aliased sampling included.

CUT (Park et al. 2020) keeps pytorch-CycleGAN-and-pix2pix's ``ResnetGenerator`` but, by default, makes its
sampling anti-aliased (Zhang 2019, "Making convolutional networks shift-invariant again"):

* each downsampling is Conv3x3 stride 1 + norm + ReLU + ``Downsample``: reflection pad, then a fixed binomial
  blur filter applied depthwise with stride 2 (``--no_antialias`` gives the stride-2 convolution back);
* each upsampling is ``Upsample`` (replication pad 1, then the fixed filter as a depthwise stride-2 transposed
  convolution, cropped) + Conv3x3 + norm + ReLU (``--no_antialias_up`` gives the ConvTranspose back).

The filters are buffers in the checkpoint (``model.7.filt``, ``model.11.filt`` ... of shape ``(C, 1, k, k)``),
loaded like any weight. Here they run as ordinary grouped ``Conv`` / ``ConvTranspose`` with constant weights,
and the transposed convolution's crop is folded into its padding, so the exported graph has only Pad, Conv and
ConvTranspose nodes: plain operators every runtime (ONNX Runtime, TensorRT, OpenVINO) takes.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cg_export.models.layers import conv_bias_for, make_norm
from cg_export.models.registry import register_generator
from cg_export.models.resnet import ResnetBlock

DEFAULT_DOWN_FILTER = 3
DEFAULT_UP_FILTER = 4


def binomial_filter(size: int) -> Tensor:
    """The normalised 2-D binomial blur filter of side ``size`` (row ``[1, 2, 1]`` for 3, ``[1, 3, 3, 1]`` for 4)."""
    if not 1 <= size <= 7:
        raise ValueError(f"blur filter size must be 1..7, not {size}")
    row = torch.tensor([float(math.comb(size - 1, k)) for k in range(size)])
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling: reflection pad, then a fixed blur applied depthwise with stride 2.

    Args:
        channels: Feature channels (the filter is repeated per channel, as stored in the checkpoint).
        filter_size: Side of the binomial filter (CUT's default 3).
    """

    def __init__(self, channels: int, filter_size: int = DEFAULT_DOWN_FILTER):
        super().__init__()
        self.channels = channels
        before, after = (filter_size - 1) // 2, filter_size // 2
        self.pads = (before, after, before, after)
        self.register_buffer("filt", binomial_filter(filter_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, self.pads, mode="reflect"), self.filt, stride=2, groups=self.channels)


class BlurUpsample(nn.Module):
    """Anti-aliased 2x upsampling: replication pad 1, then the fixed filter as a depthwise transposed conv.

    The reference crops the transposed convolution's output by one row and column at the start (and, for even
    filters, one at the end too); for even filters that crop is the same as one more pixel of transposed-conv
    padding, which is how it is computed here, so no Slice reaches the exported graph.

    Args:
        channels: Feature channels.
        filter_size: Side of the binomial filter (CUT's default 4); the filter is scaled by 4 (stride squared) so
            that the upsampled image keeps its brightness.
    """

    def __init__(self, channels: int, filter_size: int = DEFAULT_UP_FILTER):
        super().__init__()
        self.channels = channels
        self.odd = filter_size % 2 == 1
        self.padding = 1 + (filter_size - 1) // 2
        self.register_buffer("filt", (binomial_filter(filter_size) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        if self.odd:
            y = F.conv_transpose2d(x, self.filt, stride=2, padding=self.padding, groups=self.channels)
            return y[:, :, 1:, 1:]
        return F.conv_transpose2d(x, self.filt, stride=2, padding=self.padding + 1, groups=self.channels)


class CutResnetGenerator(nn.Module):
    """CUT / FastCUT's ResnetGenerator with its exact state-dict key names.

    Args:
        in_channels: Input image channels.
        out_channels: Output image channels.
        ngf: Filters of the first convolution.
        n_blocks: Residual blocks (CUT's default ``resnet_9blocks``).
        norm: ``"instance"`` (CUT's ``--normG`` default), ``"batch"`` or ``"none"``.
        dropout: Dropout in the residual blocks (CUT trains with ``--no_dropout`` by default).
        antialias: Blur-pool downsampling (``False`` is ``--no_antialias``).
        antialias_up: Blur upsampling (``False`` is ``--no_antialias_up``).
        down_filter: Side of the downsampling blur filter.
        up_filter: Side of the upsampling blur filter.
    """

    size_multiple = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: bool = False,
        antialias: bool = True,
        antialias_up: bool = True,
        down_filter: int = DEFAULT_DOWN_FILTER,
        up_filter: int = DEFAULT_UP_FILTER,
    ):
        super().__init__()
        if n_blocks < 0 or ngf < 1 or in_channels < 1 or out_channels < 1:
            raise TypeError("ngf and channel counts must be positive and n_blocks non-negative")
        self.config: dict[str, Any] = {
            "name": "cut_resnet", "in_channels": in_channels, "out_channels": out_channels, "ngf": ngf,
            "n_blocks": n_blocks, "norm": norm, "dropout": dropout, "antialias": antialias,
            "antialias_up": antialias_up, "down_filter": down_filter, "up_filter": up_filter,
        }
        bias = conv_bias_for(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, kernel_size=7, bias=bias), make_norm(norm, ngf),
            nn.ReLU(True),
        ]
        channels = ngf
        for _ in range(2):
            if antialias:
                layers += [
                    nn.Conv2d(channels, channels * 2, kernel_size=3, stride=1, padding=1, bias=bias),
                    make_norm(norm, channels * 2), nn.ReLU(True), BlurDownsample(channels * 2, down_filter),
                ]
            else:
                layers += [
                    nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                    make_norm(norm, channels * 2), nn.ReLU(True),
                ]
            channels *= 2
        layers += [ResnetBlock(channels, norm, dropout) for _ in range(n_blocks)]
        for _ in range(2):
            if antialias_up:
                layers += [
                    BlurUpsample(channels, up_filter),
                    nn.Conv2d(channels, channels // 2, kernel_size=3, stride=1, padding=1, bias=bias),
                ]
            else:
                layers.append(nn.ConvTranspose2d(
                    channels, channels // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias))
            layers += [make_norm(norm, channels // 2), nn.ReLU(True)]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def infer_cut_config(state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """CUT generator config from its keys: which halves are anti-aliased, filter sizes, widths, norm, depth.

    Raises:
        CheckpointError: the keys are incomplete.
    """
    from cg_export.errors import CheckpointError
    from cg_export.models.layers import read_norm

    first = state_dict.get("model.1.weight")
    blocks = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    filters = {int(m.group(1)): v for k, v in state_dict.items() if (m := re.fullmatch(r"model\.(\d+)\.filt", k))}
    convs = sorted(int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"model\.(\d+)\.weight", k)))
    if first is None or first.dim() != 4 or not convs:
        raise CheckpointError("CUT generator keys are incomplete (no model.1.weight); the file is damaged")
    start = blocks[0] if blocks else None
    down = [v for i, v in filters.items() if start is None or i < start]
    up = [v for i, v in filters.items() if start is not None and i > start]
    dropout = any(v.dim() == 4 for k, v in state_dict.items() if re.fullmatch(r"model\.\d+\.conv_block\.6\.weight", k))
    return {
        "name": "cut_resnet",
        "in_channels": int(first.shape[1]),
        "out_channels": int(state_dict[f"model.{convs[-1]}.weight"].shape[0]),
        "ngf": int(first.shape[0]),
        "n_blocks": len(blocks),
        "norm": read_norm(state_dict, "model.1", "model.2"),
        "dropout": dropout,
        "antialias": bool(down),
        "antialias_up": bool(up),
        "down_filter": int(down[0].shape[-1]) if down else DEFAULT_DOWN_FILTER,
        "up_filter": int(up[0].shape[-1]) if up else DEFAULT_UP_FILTER,
    }


@register_generator("cut_resnet")
def cut_resnet(**kwargs: Any) -> CutResnetGenerator:
    """CUT / FastCUT ``resnet_9blocks`` with anti-aliased down- and upsampling (their default)."""
    return CutResnetGenerator(**kwargs)


@register_generator("cut_resnet_tiny")
def cut_resnet_tiny(**kwargs: Any) -> CutResnetGenerator:
    """A tiny CUT generator (ngf 8, 2 blocks) for tests; same graph, fewer weights."""
    return CutResnetGenerator(**{"ngf": 8, "n_blocks": 2, **kwargs})
