"""The Runner interface every backend implements, and picking a backend from a model file."""

from __future__ import annotations

import abc
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from cg_export.errors import BackendError


class Runner(abc.ABC):
    """A model ready to run: host float32 NCHW arrays in [-1, 1] in, the same out.

    Use it as a context manager; nothing heavy (sessions, devices, engines) is created before ``activate()``::

        with OnnxRuntimeRunner("g.onnx") as runner:
            output = runner(batch)

    Attributes:
        name: Short backend label for reports (``"torch"``, ``"onnxruntime"`` ...).
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        device: Where it computes (``"cpu"``, ``"cuda:0"`` ...).
    """

    name: str = "runner"
    precision: str = "fp32"
    device: str = "cpu"

    def __init__(self) -> None:
        self.is_active = False

    def activate(self) -> None:
        """Load the model onto its device. Idempotent."""
        if not self.is_active:
            self._activate()
            self.is_active = True

    def deactivate(self) -> None:
        """Release what :meth:`activate` took. Idempotent."""
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.deactivate()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (float32 NCHW); returns float32 NCHW."""
        if not self.is_active:
            raise BackendError(f"{self.name} runner used before activate() (use it in a 'with' block)")
        return self.infer(np.ascontiguousarray(batch, dtype=np.float32))

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Backend-specific inference on a contiguous float32 batch."""

    @abc.abstractmethod
    def _activate(self) -> None: ...

    def _deactivate(self) -> None:  # noqa: B027  (most backends only drop references)
        pass

    def describe(self) -> str:
        """``backend precision on device``, for log lines and reports."""
        return f"{self.name} {self.precision} on {self.device}"


def runner_for(model_path: str | Path, **options: Any) -> Runner:
    """Build the runner a model file needs, chosen by its extension.

    Args:
        model_path: ``.pt`` / ``.pth`` (PyTorch checkpoint) or ``.onnx``.
        **options: Passed to the runner (``device``, ``providers`` ...).

    Raises:
        BackendError: the extension belongs to no backend.
    """
    suffix = Path(model_path).suffix.lower()
    if suffix in (".pt", ".pth"):
        from cg_export.backends.torch import TorchRunner

        return TorchRunner.from_checkpoint(model_path, **options)
    if suffix == ".onnx":
        from cg_export.backends.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model_path, **options)
    raise BackendError(f"{model_path}: unknown model type {suffix!r}; expected .pt, .pth or .onnx")
