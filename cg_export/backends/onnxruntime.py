"""ONNX Runtime backend (CPU, CUDA and TensorRT execution providers, whichever are installed).

Imports no torch: this is what runs on a device that only has onnxruntime, numpy and pillow.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cg_export.backends.base import ModelInfo, Runner
from cg_export.errors import BackendError
from cg_export.external_data import check_external_data
from cg_export.formats import format_named
from cg_export.metadata import FLOAT_LAYOUT, UINT8_LAYOUT, ArtifactMetadata
from cg_export.model_limits import check_model_limits, out_of_memory_error
from cg_export.optional import import_optional
from cg_export.threads import ThreadSettings, check_threads

# Preferred order when the caller names none: the fastest provider that is installed comes first.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# Short names the command line takes for the providers (``--provider cuda``).
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


def import_onnxruntime() -> Any:
    """Import onnxruntime or raise a one-line :class:`MissingDependencyError` saying how to install it."""
    return import_optional("onnxruntime", "to run ONNX models", format_named("onnx").requirement.install)


def static_dims(session: Any) -> tuple[tuple[int, int] | None, int | None]:
    """``(static (height, width) or None, fixed batch or None)`` from a session's first input shape.

    Float models are NCHW, ``--uint8-io`` models NHWC; a dimension is fixed when it is an int, not a name.
    """
    inputs = session.get_inputs()[0]
    shape = list(inputs.shape)
    if len(shape) != 4:
        return None, None
    height, width = (shape[1], shape[2]) if inputs.type == "tensor(uint8)" else (shape[2], shape[3])
    size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    return size, shape[0] if isinstance(shape[0], int) else None


def graph_io(session: Any, metadata: ArtifactMetadata, path: Path) -> ArtifactMetadata:
    """``metadata`` corrected by what the graph's input says (its element type and channels decide), for models
    exported elsewhere that record nothing or something else.

    Raises:
        BackendError: the input is not an image batch (rank 4) this runner can feed.
    """
    inputs = session.get_inputs()
    shape = list(inputs[0].shape)
    if len(inputs) != 1 or len(shape) != 4:
        what = f"{len(inputs)} inputs" if len(inputs) != 1 else f"an input of rank {len(shape)} {shape}"
        raise BackendError(f"{path}: the model takes {what}; cg-export runs generators with one rank-4 image input "
                           f"({FLOAT_LAYOUT} float32, or NHWC uint8)")
    uint8 = inputs[0].type == "tensor(uint8)"
    if not uint8 and inputs[0].type != "tensor(float)":
        raise BackendError(f"{path}: the model's input is {inputs[0].type}; expected float32 {FLOAT_LAYOUT} or "
                           "uint8 NHWC images")
    channels = shape[3] if uint8 else shape[1]
    changes: dict[str, Any] = {}
    if uint8 != metadata.uint8_io:
        changes["layout"] = UINT8_LAYOUT if uint8 else FLOAT_LAYOUT
    if isinstance(channels, int) and channels != metadata.in_channels:
        changes["architecture"] = {**metadata.architecture, "in_channels": channels}
    return dataclasses.replace(metadata, **changes) if changes else metadata


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX model with ONNX Runtime.

    Args:
        model_path: The ``.onnx`` file.
        providers: Execution providers in order of preference (full names, or ``cpu``/``cuda``/``tensorrt``);
            ``None`` takes the best installed (TensorRT, then CUDA, then CPU).
        threads: Intra-op threads; ``None``: the cores this process may use (:func:`cg_export.threads.default_threads`).
    """

    name = "onnxruntime"

    def __init__(self, model_path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        super().__init__()
        check_threads(threads, "threads")
        self.model_path = Path(model_path)
        self.requested_providers = [PROVIDER_ALIASES.get(p.lower(), p) for p in providers] if providers else None
        self.threads = threads
        self.session: Any = None
        self._derived: tuple[Any, Any] | None = None
        self._options: Any = None
        self.precision = "fp32"

    def _activate(self) -> None:
        ort = import_onnxruntime()
        available = ort.get_available_providers()
        if self.requested_providers:
            missing = [p for p in self.requested_providers if p not in available]
            if missing:
                raise BackendError(
                    f"execution provider(s) {', '.join(missing)} not available here (available: {', '.join(available)})"
                )
            providers = list(self.requested_providers)
        else:
            providers = [p for p in PROVIDER_PREFERENCE if p in available]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads sleep rather than spin unless CG_EXPORT_SPIN=1: spinning threads on a busy machine
        # take the cores their parked siblings need.
        ThreadSettings.resolve(self.threads).apply_to_onnxruntime(options)
        options.log_severity_level = 3
        # Without the arena, memory goes back to the system after each run: a tiled run's peak is one inference,
        # not the sum of three sessions' arenas (about 4 GB instead of under 2 GB for a 2048x2048 photograph).
        options.enable_cpu_mem_arena = False
        if not self.model_path.is_file():
            raise BackendError(f"{self.model_path}: no such ONNX file")
        check_external_data(self.model_path)
        check_model_limits(self.model_path)  # static shapes that cannot fit are refused before ONNX Runtime allocates
        self._options = options
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise BackendError(f"{self.model_path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
        self.device = "cuda" if self.session.get_providers()[0] != "CPUExecutionProvider" else "cpu"
        metadata = ArtifactMetadata.from_props(self.session.get_modelmeta().custom_metadata_map, self.model_path)
        metadata = graph_io(self.session, metadata, self.model_path)
        static_size, batch = static_dims(self.session)
        self._info = ModelInfo("onnxruntime", self.model_path, metadata, static_size, batch)
        self.precision = metadata.precision
        self._input_name = self.session.get_inputs()[0].name

    def _deactivate(self) -> None:
        self.session = None
        self._derived = None

    @property
    def provider(self) -> str:
        """The execution provider that runs the model (the first of the session's providers)."""
        return self.session.get_providers()[0] if self.session else "inactive"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self._input_name: batch})[0]
        except Exception as exc:  # ORT raises its own exception types; out of memory is one line, the rest are bugs
            error = out_of_memory_error(self.model_path, exc, batch.shape)
            if error is None:
                raise
            raise error from None

    def norm_stats(self, batch: np.ndarray) -> np.ndarray:
        stats_session, _ = self._norm_stats_sessions()
        return self.in_model_batches(
            lambda part: stats_session.run(None, {self._input_name: self.to_model_feed(part)})[0], batch)

    def infer_with_norm_stats(self, batch: np.ndarray, stats: np.ndarray) -> np.ndarray:
        from cg_export.norm_stats import NORM_STATS

        _, tile_session = self._norm_stats_sessions()

        def run(part: np.ndarray, part_stats: np.ndarray) -> np.ndarray:
            feed = {self._input_name: self.to_model_feed(part),
                    NORM_STATS: np.ascontiguousarray(part_stats, dtype=np.float32)}
            return self.from_model_output(tile_session.run(None, feed)[0])

        return self.in_model_batches(run, batch, stats)

    def _norm_stats_sessions(self) -> tuple[Any, Any]:
        # Derived lazily: most runs never tile, and the derived graphs cost a second load of the model.
        if self._derived is None:
            import onnx

            from cg_export.norm_stats import split_norm_stats_graphs

            ort = import_onnxruntime()
            graphs = split_norm_stats_graphs(onnx.load(str(self.model_path)))
            providers = self.session.get_providers()
            self._derived = tuple(
                ort.InferenceSession(g.SerializeToString(), sess_options=self._options, providers=providers)
                for g in graphs
            )
        return self._derived

    def compute_timer(self, batch: np.ndarray) -> Callable[[], float] | None:
        """On a GPU provider, the time of a run whose input and output live in device memory; ``None`` on the CPU.

        See :meth:`Runner.compute_timer`.
        """
        if self.device == "cpu":
            return None
        return self.bound_timer(batch, "cuda")

    def bound_timer(self, batch: np.ndarray, device_type: str) -> Callable[[], float]:
        """Time runs through an IOBinding whose input and output stay in ``device_type`` memory.

        The input is copied once and the output buffer, allocated by the first run, is bound again for every later
        run, so a timed run does no copy and no allocation. ONNX Runtime synchronises the device at the end of every
        run (its default), so the wall-clock time of the run is the device time.

        Args:
            batch: Float32 NCHW input (converted as :meth:`Runner.to_model_feed` says).
            device_type: ``"cuda"`` for the CUDA and TensorRT providers, ``"cpu"`` for the CPU provider.

        Returns:
            A function that runs once and returns the milliseconds the run took.
        """
        ort = import_onnxruntime()
        device_id = 0  # the session was made without provider options, so it runs on the first GPU
        binding = self.session.io_binding()
        host_input = self.to_model_feed(batch)
        resident_input = ort.OrtValue.ortvalue_from_numpy(host_input, device_type, device_id)
        binding.bind_ortvalue_input(self._input_name, resident_input)
        output_name = self.session.get_outputs()[0].name
        binding.bind_output(output_name, device_type, device_id)
        self.session.run_with_iobinding(binding)
        binding.bind_ortvalue_output(output_name, binding.get_outputs()[0])
        return _BoundRun(self.session, binding, resident_input)


class _BoundRun:
    """One timed ``run_with_iobinding``; holds the device input for as long as the binding points at it."""

    def __init__(self, session: Any, binding: Any, resident_input: Any):
        self.session = session
        self.binding = binding
        self.resident_input = resident_input

    def __call__(self) -> float:
        started = time.perf_counter()
        self.session.run_with_iobinding(self.binding)
        return (time.perf_counter() - started) * 1000.0
