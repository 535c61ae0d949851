"""The Runner interface every backend implements, and :class:`ModelInfo`, what a runner says about its model.

Which backend opens which file is decided in :mod:`cg_export.backends.registry`, never here: this module imports no
backend."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from cg_export.errors import BackendError
from cg_export.metadata import FLOAT_LAYOUT, ArtifactMetadata


@dataclass(frozen=True)
class ModelInfo:
    """What a runner knows about its model once it has opened it, so no other module reopens the file.

    Attributes:
        backend: The runtime's name (:attr:`cg_export.formats.Format.backend`).
        path: The model file (``None`` for a module given in memory).
        metadata: What the artifact records about itself (precision, layout, size multiple, architecture, source).
        static_size: ``(height, width)`` when the model takes only that size, else ``None``.
        batch: The batch size when it is fixed, else ``None``.
    """

    backend: str
    path: Path | None
    metadata: ArtifactMetadata
    static_size: tuple[int, int] | None = None
    batch: int | None = None

    @property
    def precision(self) -> str:
        """``fp32``, ``fp16`` or ``int8``."""
        return self.metadata.precision

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this."""
        return self.metadata.size_multiple

    @property
    def uint8_io(self) -> bool:
        """Whether the model takes and returns uint8 NHWC RGB images instead of float32 NCHW in [-1, 1]."""
        return self.metadata.uint8_io

    @property
    def layout(self) -> str:
        """``NCHW`` (float32) or ``NHWC uint8 RGB``."""
        return self.metadata.layout

    @property
    def ngf(self) -> int | None:
        """The generator's width, where known."""
        return self.metadata.ngf

    @property
    def in_channels(self) -> int:
        """Image channels the model takes."""
        return self.metadata.in_channels

    @property
    def source_checkpoint(self) -> Path | None:
        """The checkpoint the model was exported from, as recorded (it may no longer exist)."""
        recorded = self.metadata.source_checkpoint
        return Path(recorded) if recorded else None

    @property
    def source_sha256(self) -> str | None:
        """The recorded content hash of the source checkpoint."""
        return self.metadata.source_sha256

    def describe(self) -> str:
        """One line for logs: precision, I/O and shape."""
        shape = "static " + "x".join(map(str, self.static_size)) if self.static_size else "dynamic size"
        batch = f"batch {self.batch}" if self.batch else "dynamic batch"
        io = "uint8 NHWC I/O" if self.uint8_io else f"float32 {FLOAT_LAYOUT} I/O"
        return f"{self.precision}, {io}, {shape}, {batch}, size multiple {self.size_multiple}"


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
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo:
        """What the model is (precision, I/O, shapes, size multiple, source); known once the runner is active.

        Raises:
            BackendError: the runner has not been activated.
        """
        if self._info is None:
            raise BackendError(f"{self.name} runner: its model is described only once it is active (use 'with')")
        return self._info

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Runner:
        """An inactive runner for a model file (what :func:`cg_export.backends.runner_for` calls)."""
        return cls(path, **options)  # type: ignore[call-arg]

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
        """Run one batch (float32 NCHW in [-1, 1]); returns float32 NCHW in [-1, 1], whatever the model's own I/O.

        A ``--uint8-io`` model is fed uint8 NHWC and its uint8 output converted back (see :meth:`to_model_feed`),
        so no tool branches on the kind of model.
        """
        if not self.is_active:
            raise BackendError(f"{self.name} runner used before activate() (use it in a 'with' block)")
        return self.in_model_batches(lambda part: self.from_model_output(self.infer(self.to_model_feed(part))), batch)

    def in_model_batches(self, run: Callable[..., np.ndarray], batch: np.ndarray, *per_image: np.ndarray
                         ) -> np.ndarray:
        """``run(batch, *per_image)``, split into and padded to the model's fixed batch size when it has one.

        A model exported with a fixed batch of N runs a batch of any size: in parts of N, the last one filled up by
        repeating its last image, whose extra outputs are dropped.

        Args:
            run: Runs one part.
            batch: The images (first axis).
            *per_image: Arrays with one row per image (such as InstanceNorm statistics), split the same way.
        """
        fixed = self._info.batch if self._info is not None else None
        count = len(batch)
        if not fixed or count == fixed:
            return run(batch, *per_image)
        outputs = []
        for start in range(0, count, fixed):
            stop = min(start + fixed, count)
            take = list(range(start, stop)) + [stop - 1] * (fixed - (stop - start))
            outputs.append(run(batch[take], *(a[take] for a in per_image))[: stop - start])
        return np.concatenate(outputs)

    def to_model_feed(self, batch: np.ndarray) -> np.ndarray:
        """The float32 NCHW [-1, 1] batch as the model takes it: contiguous float32, or uint8 NHWC RGB for a
        ``--uint8-io`` model (exact for batches made from 8-bit images, which is what every tool feeds)."""
        if self._info is not None and self._info.uint8_io:
            from cg_export.images import to_uint8

            return np.ascontiguousarray(to_uint8(batch))
        return np.ascontiguousarray(batch, dtype=np.float32)

    def from_model_output(self, output: np.ndarray) -> np.ndarray:
        """The model's output as float32 NCHW in [-1, 1] (undoes a ``--uint8-io`` model's uint8 NHWC)."""
        if self._info is not None and self._info.uint8_io:
            from cg_export.images import to_model_input

            return to_model_input(np.asarray(output, dtype=np.uint8))
        return output

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Backend-specific inference on a batch in the model's own I/O (:meth:`to_model_feed`), returning the
        model's own output (float32 NCHW, or uint8 NHWC for a ``--uint8-io`` model)."""

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
