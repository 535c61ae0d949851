"""The 70x70 PatchGAN discriminator of CycleGAN (pix2pix's ``NLayerDiscriminator`` with ``n_layers=3``).

Layer layout and state-dict keys follow pytorch-CycleGAN-and-pix2pix with InstanceNorm (so convolutions keep
their bias): ``model.0`` C64 (no norm), ``model.2`` C128, ``model.5`` C256 (stride 2), ``model.8`` C512 (stride 1),
``model.11`` the one-channel output; 4x4 kernels, LeakyReLU 0.2. Each output value judges one 70x70 patch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cg_export.models.layers import conv_bias_for, make_norm


def receptive_field(n_layers: int) -> int:
    """Side in pixels of the patch each output value judges: 70 for the paper's 3 layers, 34 for 2, 16 for 1.

    Walks back from one output value through the 4x4 convolutions: the two stride-1 ones at the end, then the
    ``n_layers`` stride-2 ones.
    """
    field = 1
    for stride in [1, 1] + [2] * n_layers:
        field = (field - 1) * stride + 4
    return field


def smallest_input(n_layers: int) -> int:
    """The smallest square input that leaves the discriminator an output of at least 2x2 (``4 * 2**n_layers``)."""
    return 4 * 2**n_layers


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake scores, one per overlapping patch (70x70 with the default three layers).

    Args:
        in_channels: Image channels.
        ndf: Filters of the first convolution; deeper ones have up to ``8 * ndf``.
        n_layers: Stride-2 stages after the first one (3 gives the paper's 70x70 receptive field).
        norm: ``"instance"`` (CycleGAN) or ``"batch"`` (pix2pix).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = conv_bias_for(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        multiplier = 1
        for layer in range(1, n_layers + 1):
            previous, multiplier = multiplier, min(2**layer, 8)
            # The last stage keeps the resolution (stride 1), which is what makes the receptive field 70 px.
            stride = 2 if layer < n_layers else 1
            layers += [
                nn.Conv2d(ndf * previous, ndf * multiplier, kernel_size=4, stride=stride, padding=1, bias=bias),
                make_norm(norm, ndf * multiplier),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * multiplier, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def lsgan_loss(prediction: Tensor, real: bool) -> Tensor:
    """LSGAN's loss: the mean squared error of the discriminator's output to 1 (``real``) or 0, in float32."""
    target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
    return F.mse_loss(prediction.float(), target.float())
