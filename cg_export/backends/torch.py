"""PyTorch backend: the reference every other backend is compared with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cg_export.backends.base import Runner


class TorchRunner(Runner):
    """Runs a generator module eagerly.

    Args:
        model: The generator (any device/dtype; it is moved on ``activate()``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        half: Compute in float16 (inputs and outputs stay float32 on the host).
        channels_last: Use the channels-last memory format (faster convolutions on tensor-core GPUs).
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu", half: bool = False, channels_last: bool = False):
        super().__init__()
        self.model = model
        self.device = device
        self.half = half
        self.channels_last = channels_last
        self.precision = "fp16" if half else "fp32"
        self._dtype = torch.float16 if half else torch.float32
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format

    @classmethod
    def from_checkpoint(cls, path: str | Path, arch: str | None = None, **options: object) -> TorchRunner:
        """Load any supported checkpoint (see :func:`cg_export.models.load_generator`) into a runner."""
        from cg_export.models import load_generator

        return cls(load_generator(path, arch=arch).model, **options)  # type: ignore[arg-type]

    def _activate(self) -> None:
        self.model = self.model.to(device=self.device, dtype=self._dtype, memory_format=self._memory_format).eval()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, dtype=self._dtype, memory_format=self._memory_format)
            y = self.model(x)
            return y.float().cpu().numpy()
