"""Weight initialisation of CycleGAN's reference code."""

from __future__ import annotations

from torch import nn


def init_weights(model: nn.Module, gain: float = 0.02) -> nn.Module:
    """Initialise convolutions with N(0, gain) and zero bias, norm weights with N(1, gain) (the paper's ``normal``).

    Returns:
        ``model``, initialised in place.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return model
