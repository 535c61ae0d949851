"""Mixed precision for every trainer: which dtype ``--amp`` means on a device, the autocast context, the scaler.

On CUDA ``--amp`` trains in bfloat16 where the GPU supports it, else in float16 with loss scaling (bfloat16 has
float32's exponent range and needs none). On the CPU it is ignored: training stays float32.
"""

from __future__ import annotations

import torch


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """The autocast dtype ``amp`` asks for on ``device``; ``None`` trains in float32."""
    if device.type != "cuda" or not amp:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` on ``device``, or a disabled one for ``None``."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def loss_scaler(dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for float16 (the one dtype whose small gradients underflow)."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
