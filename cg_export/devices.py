"""Where PyTorch runs: one default for every command (``cg-train``, ``cg-compress``, ``cg-demo``, ``cg-bench``,
``cg-stylize``) and the library.

A leaf module (no torch import), so ``--help`` can quote the default without loading PyTorch.
"""

from __future__ import annotations

#: The device every PyTorch model and training run uses unless told otherwise: CUDA when PyTorch sees a GPU, else CPU.
DEFAULT_DEVICE = "auto"
#: What ``--device`` takes, for help texts and errors.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


def is_auto(device: str | None) -> bool:
    """True for ``None`` and ``"auto"``: the device is PyTorch's first CUDA GPU when it sees one, else the CPU."""
    return device is None or str(device).lower() == DEFAULT_DEVICE
