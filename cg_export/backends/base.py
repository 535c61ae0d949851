"""The Runner interface every backend implements, and picking a backend from a model file."""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from cg_export.errors import BackendError, MissingDependencyError

# File extensions runner_for() knows; TensorRT engines go by either name.
ENGINE_SUFFIXES = (".engine", ".plan")
MODEL_SUFFIXES = (".pt", ".pth", ".onnx", *ENGINE_SUFFIXES)


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

    def compute_timer(self, batch: np.ndarray) -> Callable[[], float] | None:
        """A way to time the computation alone, without the host-device copies, for benchmarks.

        Backends that compute on the host return ``None``: their end-to-end time *is* their compute time.
        Device backends copy ``batch`` to the device once and return a function that runs one inference on it,
        leaves the output on the device, waits for the device, and returns the device time in milliseconds.
        The runner must be active; the returned function holds the device buffers until it is dropped.

        Args:
            batch: Float32 NCHW input, the same an ordinary call takes.
        """
        return None

    def norm_stats(self, batch: np.ndarray) -> np.ndarray:
        """Whole-image InstanceNorm statistics of ``batch``, shape (N, 2, S) (see :mod:`cg_export.norm_stats`).

        Raises:
            BackendError: the backend cannot expose the statistics.
        """
        raise BackendError(f"the {self.name} backend cannot compute whole-image InstanceNorm statistics; "
                           "use the .onnx or .pt model for tiled inference")

    def infer_with_norm_stats(self, batch: np.ndarray, stats: np.ndarray) -> np.ndarray:
        """Run ``batch`` (tiles of one image) with every InstanceNorm using ``stats`` from :meth:`norm_stats`.

        ``stats`` has one row per image of ``batch`` (repeat it for tiles of the same image).
        """
        raise BackendError(f"the {self.name} backend cannot run tiles with given InstanceNorm statistics; "
                           "use the .onnx or .pt model for tiled inference")


def runner_for(model_path: str | Path, **options: Any) -> Runner:
    """Build the runner a model file needs, chosen by its extension.

    Args:
        model_path: ``.pt`` / ``.pth`` (PyTorch checkpoint), ``.onnx``, or ``.engine`` / ``.plan`` (TensorRT).
        **options: Passed to the runner (``device``, ``providers`` ...).

    Raises:
        BackendError: the extension belongs to no backend, or this installation lacks the backend's module.
        MissingDependencyError: the runtime the file needs (torch, tensorrt) is not installed.
    """
    suffix = Path(model_path).suffix.lower()
    if suffix in (".pt", ".pth"):
        try:
            from cg_export.backends.torch import TorchRunner
        except ImportError as exc:
            if exc.name != "torch":
                raise
            raise MissingDependencyError("torch", "to run PyTorch checkpoints", "pip install torch") from None
        return TorchRunner.from_checkpoint(model_path, **options)
    if suffix == ".onnx":
        from cg_export.backends.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model_path, **options)
    if suffix in ENGINE_SUFFIXES:
        # Imported only here; the module itself imports tensorrt and the CUDA bindings only on activate(), where a
        # missing one becomes a one-line MissingDependencyError.
        try:
            from cg_export.backends.tensorrt import TensorRTRunner
        except ImportError:
            raise BackendError(
                f"{model_path}: this cg-export installation has no TensorRT backend "
                "(cg_export.backends.tensorrt); reinstall cg-export"
            ) from None

        return TensorRTRunner(model_path, **options)
    raise BackendError(
        f"{model_path}: unknown model type {suffix!r}; expected .pt, .pth, .onnx, .engine or .plan"
    )
