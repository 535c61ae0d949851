"""TensorRT backend: runs a serialized engine with the name-based tensor API (TensorRT 8.5 and newer).

Imports no torch: a Jetson that has only TensorRT, numpy, pillow and NVIDIA's CUDA Python bindings runs engines
with this module. ``tensorrt`` and the CUDA bindings are imported when a runner is activated, never at import time.

Engines are tied to the TensorRT version and the GPU that built them. ``cg-export trt`` writes a JSON sidecar
(``<engine>.json``, :mod:`cg_export.tensorrt.sidecar`) recording both, so loading an engine elsewhere fails with a
message that says what to rebuild instead of TensorRT's own deserialisation error.
"""

from __future__ import annotations

import ctypes
import importlib
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cg_export.backends.base import ModelInfo, Runner
from cg_export.errors import BackendError, MissingDependencyError
from cg_export.metadata import ArtifactMetadata
from cg_export.model_limits import DEFAULT_MAX_PIXELS, format_bytes, memory_limit
from cg_export.tensorrt.sidecar import EngineRecord, GpuInfo, compatibility_problem, read_sidecar
from cg_export.tensorrt.versions import import_tensorrt, tensorrt_version, too_old

__all__ = ["CudaRuntime", "GpuInfo", "TensorRTRunner", "import_cudart", "import_tensorrt"]

CUDA_PYTHON_HINT = (
    'pip install "cuda-python>=12,<13" (CUDA 12: JetPack 6, x86 with tensorrt-cu12), "cuda-python>=13" (CUDA 13) or '
    '"cuda-python>=11.8,<12" (JetPack 5)'
)


def import_cudart() -> Any:
    """The CUDA runtime bindings: ``cuda.bindings.runtime`` (cuda-python 12.6+) or ``cuda.cudart`` (older)."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingDependencyError("cuda-python", "to move images to and from the GPU", CUDA_PYTHON_HINT)


class CudaRuntime:
    """The few CUDA runtime calls a runner needs, with errors turned into :class:`BackendError`.

    Args:
        cudart: The CUDA runtime bindings module (see :func:`import_cudart`).
    """

    def __init__(self, cudart: Any):
        self.cudart = cudart

    @classmethod
    def load(cls, device: int = 0) -> CudaRuntime:
        """Import the bindings, check that ``device`` exists and make it current."""
        cuda = cls(import_cudart())
        error, count = cuda.cudart.cudaGetDeviceCount()
        if cuda._failed(error) or count == 0:
            reason = cuda._error_text(error) if cuda._failed(error) else "no CUDA device"
            raise BackendError(f"no usable NVIDIA GPU here ({reason}); TensorRT engines run only on a CUDA GPU")
        if not 0 <= device < count:
            raise BackendError(f"GPU {device} does not exist: this machine has {count} (0..{count - 1})")
        cuda.check(cuda.cudart.cudaSetDevice(device), "cudaSetDevice")
        return cuda

    def _failed(self, error: Any) -> bool:
        return error != self.cudart.cudaError_t.cudaSuccess

    def _error_text(self, error: Any) -> str:
        _, text = self.cudart.cudaGetErrorString(error)
        return text.decode() if isinstance(text, bytes) else str(text)

    def check(self, result: tuple, call: str) -> Any:
        """Unpack a ``(cudaError_t, *values)`` result; raise on an error, else return the value(s)."""
        error, *values = result
        if self._failed(error):
            raise BackendError(f"CUDA {call} failed: {self._error_text(error)}")
        return values[0] if len(values) == 1 else tuple(values) if values else None

    def device_info(self, device: int = 0) -> GpuInfo:
        """Name and compute capability of ``device``."""
        props = self.check(self.cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return GpuInfo(name.rstrip("\x00").strip(), f"{props.major}.{props.minor}")

    def create_stream(self) -> Any:
        return self.check(self.cudart.cudaStreamCreate(), "cudaStreamCreate")

    def destroy_stream(self, stream: Any) -> None:
        self.check(self.cudart.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def malloc(self, nbytes: int) -> int:
        return int(self.check(self.cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes} bytes)"))

    def free(self, pointer: int) -> None:
        self.check(self.cudart.cudaFree(pointer), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        """Page-locked host memory: copies from it run asynchronously and at full bus speed."""
        return int(self.check(self.cudart.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes} bytes)"))

    def free_host(self, pointer: int) -> None:
        self.check(self.cudart.cudaFreeHost(pointer), "cudaFreeHost")

    def copy_to_device(self, device_pointer: int, host_pointer: int, nbytes: int, stream: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check(self.cudart.cudaMemcpyAsync(device_pointer, host_pointer, nbytes, kind, stream), "cudaMemcpyAsync")

    def copy_to_host(self, host_pointer: int, device_pointer: int, nbytes: int, stream: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.cudart.cudaMemcpyAsync(host_pointer, device_pointer, nbytes, kind, stream), "cudaMemcpyAsync")

    def synchronize(self, stream: Any) -> None:
        self.check(self.cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def create_event(self) -> Any:
        return self.check(self.cudart.cudaEventCreate(), "cudaEventCreate")

    def destroy_event(self, event: Any) -> None:
        self.check(self.cudart.cudaEventDestroy(event), "cudaEventDestroy")

    def record_event(self, event: Any, stream: Any) -> None:
        self.check(self.cudart.cudaEventRecord(event, stream), "cudaEventRecord")

    def elapsed_ms(self, start: Any, end: Any) -> float:
        """GPU time between two recorded events, once ``end`` has been reached."""
        self.check(self.cudart.cudaEventSynchronize(end), "cudaEventSynchronize")
        return float(self.check(self.cudart.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))


# Engine I/O types the runner converts to and from float32 on the host.
_HOST_DTYPES = {"FLOAT": np.float32, "HALF": np.float16}


class _PinnedBuffer:
    """A page-locked host array and its device twin, grown on demand."""

    def __init__(self, cuda: CudaRuntime, dtype: np.dtype):
        self.cuda = cuda
        self.dtype = np.dtype(dtype)
        self.capacity = 0
        self.host = 0
        self.device = 0

    def reserve(self, count: int) -> None:
        if count <= self.capacity:
            return
        self.release()
        nbytes = count * self.dtype.itemsize
        self.host = self.cuda.malloc_host(nbytes)
        self.device = self.cuda.malloc(nbytes)
        self.capacity = count

    def view(self, count: int) -> np.ndarray:
        """The first ``count`` elements of the pinned host memory as a writable numpy array (no copy)."""
        raw = (ctypes.c_byte * (count * self.dtype.itemsize)).from_address(self.host)
        return np.frombuffer(raw, dtype=self.dtype, count=count)

    def release(self) -> None:
        if self.host:
            self.cuda.free_host(self.host)
        if self.device:
            self.cuda.free(self.device)
        self.host = self.device = self.capacity = 0


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine: one input, one output, float32 NCHW on the host.

    One CUDA stream, pinned host buffers and device buffers that grow to the largest batch seen; input shapes are set
    per call (``set_input_shape``), tensors are bound by name (``set_tensor_address``) and the engine runs with
    ``execute_async_v3``, the API every TensorRT from 8.5 to 11 shares.

    Args:
        engine_path: The ``.engine`` file (its ``.engine.json`` sidecar is read when present).
        device_index: CUDA device index.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, device_index: int = 0):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.device_index = device_index
        self.device = f"cuda:{device_index}"
        self.record: EngineRecord | None = read_sidecar(self.engine_path)
        self.precision = (self.record.precision if self.record else None) or "unknown"
        self.tensorrt_version = ""
        self.gpu: GpuInfo | None = None
        self.profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None
        self._engine: Any = None
        self._context: Any = None
        self._cuda: CudaRuntime | None = None
        self._stream: Any = None

    def _activate(self) -> None:
        if not self.engine_path.is_file():
            raise BackendError(f"{self.engine_path}: no such engine file")
        trt = import_tensorrt()
        self.tensorrt_version = str(trt.__version__)
        problem = too_old(tensorrt_version(trt))
        if problem:
            raise BackendError(problem)
        cuda = CudaRuntime.load(self.device_index)
        self.gpu = cuda.device_info(self.device_index)
        if self.record and self.record.engine_bytes not in (None, self.engine_path.stat().st_size):
            self.record = None  # a sidecar left from another build: its claims are not about this file
        problem = compatibility_problem(self.engine_path, self.record, self.tensorrt_version, self.gpu)
        if problem:
            raise BackendError(problem)

        logger = trt.Logger(trt.Logger.WARNING)
        # Engines built on TensorRT 8.5 run InstanceNorm as a plugin that lives in libnvinfer_plugin.
        trt.init_libnvinfer_plugins(logger, "")
        runtime = trt.Runtime(logger)
        dla_core = self.record.dla_core if self.record else None
        if dla_core is not None:
            runtime.DLA_core = dla_core
        engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            built = ""
            if self.record:
                gpu = self.record.gpu.name if self.record.gpu else "?"
                built = f" (built with TensorRT {self.record.tensorrt_version} on {gpu})"
            raise BackendError(
                f"{self.engine_path}: TensorRT {self.tensorrt_version} on {self.gpu.describe()} cannot load this "
                f"engine{built}; engines only load with the TensorRT version and GPU that built them, so rebuild it "
                "here with cg-export trt"
            )
        self._engine = engine
        self._input, self._output = self._io_names(trt, engine)
        self._in_dtype = self._host_dtype(engine.get_tensor_dtype(self._input), self._input)
        self._out_dtype = self._host_dtype(engine.get_tensor_dtype(self._output), self._output)
        low, opt, high = engine.get_tensor_profile_shape(self._input, 0)
        self.profile = (tuple(low), tuple(opt), tuple(high))
        if len(low) == 4 and int(low[2]) * int(low[3]) > DEFAULT_MAX_PIXELS:
            # Its smallest input is already beyond any photograph: host buffers sized from it could not be made.
            raise BackendError(f"{self.engine_path}: refused: the engine's smallest input is {low[2]}x{low[3]} "
                               f"({int(low[2]) * int(low[3]):,} pixels), above the pixel limit of "
                               f"{DEFAULT_MAX_PIXELS:,}")
        self._info = self._describe_model()
        self._context = engine.create_execution_context()
        self._cuda = cuda
        self._stream = cuda.create_stream()
        self._stream_handle = int(self._stream)
        self._in_buffer = _PinnedBuffer(cuda, self._in_dtype)
        self._out_buffer = _PinnedBuffer(cuda, self._out_dtype)

    def _describe_model(self) -> ModelInfo:
        # The engine knows its profile; the sidecar written at build time knows the rest (precision, size multiple,
        # source). An engine without its sidecar still runs, described as far as the engine itself can tell.
        metadata = self.record.metadata() if self.record else ArtifactMetadata()
        low, _, high = self.profile or ((), (), ())
        static = tuple(low[2:4]) if len(low) == 4 and tuple(low[2:4]) == tuple(high[2:4]) else None
        batch = low[0] if len(low) == 4 and low[0] == high[0] else None
        return ModelInfo("tensorrt", self.engine_path, metadata, static, batch)  # type: ignore[arg-type]

    @staticmethod
    def _io_names(trt: Any, engine: Any) -> tuple[str, str]:
        inputs, outputs = [], []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(name)
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(f"engine has inputs {inputs} and outputs {outputs}; a generator has one of each")
        return inputs[0], outputs[0]

    @staticmethod
    def _host_dtype(dtype: Any, tensor: str) -> np.dtype:
        name = getattr(dtype, "name", str(dtype))
        if name not in _HOST_DTYPES:
            raise BackendError(f"engine tensor {tensor!r} is {name}; only float32 and float16 images are supported")
        return np.dtype(_HOST_DTYPES[name])

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        low, _, high = self.profile
        if len(shape) != len(low) or any(s < lo or s > hi for s, lo, hi in zip(shape, low, high)):
            raise BackendError(
                f"input shape {'x'.join(map(str, shape))} is outside the engine's profile "
                f"{'x'.join(map(str, low))} .. {'x'.join(map(str, high))}; rebuild with --min-shape/--max-shape"
            )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(int(d) for d in batch.shape)
        self._check_shape(shape)
        if not self._context.set_input_shape(self._input, shape):
            raise BackendError(f"TensorRT rejected input shape {shape}")
        out_shape = tuple(int(d) for d in self._context.get_tensor_shape(self._output))
        in_count, out_count = int(np.prod(shape)), int(np.prod(out_shape))
        memory = memory_limit()
        needed = in_count * self._in_dtype.itemsize + out_count * self._out_dtype.itemsize
        if memory is not None and needed > memory:  # before pinned host buffers of that size are asked for
            raise BackendError(f"{self.engine_path}: running it on a {' x '.join(map(str, shape))} input needs "
                               f"{format_bytes(needed)} of host buffers, more than this machine's {format_bytes(memory)}")
        self._in_buffer.reserve(in_count)
        self._out_buffer.reserve(out_count)
        self._in_buffer.view(in_count)[:] = batch.reshape(-1)  # casts to the engine's input type if it is fp16
        cuda, stream = self._cuda, self._stream
        cuda.copy_to_device(self._in_buffer.device, self._in_buffer.host, in_count * self._in_dtype.itemsize, stream)
        self._context.set_tensor_address(self._input, self._in_buffer.device)
        self._context.set_tensor_address(self._output, self._out_buffer.device)
        if not self._context.execute_async_v3(self._stream_handle):
            raise BackendError("TensorRT failed to enqueue the engine (see the TensorRT log above)")
        cuda.copy_to_host(self._out_buffer.host, self._out_buffer.device, out_count * self._out_dtype.itemsize, stream)
        # The host array below is read right after this call, so the stream must have drained.
        cuda.synchronize(stream)
        return self._out_buffer.view(out_count).astype(np.float32).reshape(out_shape)

    def compute_timer(self, batch: np.ndarray) -> Callable[[], float]:
        """The engine's device time on a resident input, measured with CUDA events around ``execute_async_v3``.

        See :meth:`Runner.compute_timer`. The input is copied to its own device buffer once; each call runs the
        engine on it, leaves the output on the device and returns the milliseconds between the events.
        """
        if not self.is_active:
            raise BackendError("tensorrt runner used before activate() (use it in a 'with' block)")
        return _EngineTimer(self, np.ascontiguousarray(batch, dtype=np.float32))

    def _deactivate(self) -> None:
        if self._cuda is not None:
            self._in_buffer.release()
            self._out_buffer.release()
            if self._stream is not None:
                self._cuda.destroy_stream(self._stream)
        self._context = self._engine = self._stream = self._cuda = None

    def describe(self) -> str:
        """``tensorrt fp16 on cuda:0 (TensorRT 10.3.0, Orin)``."""
        where = f" (TensorRT {self.tensorrt_version}, {self.gpu.name})" if self.gpu else ""
        return f"{self.name} {self.precision} on {self.device}{where}"


class _EngineTimer:
    """One timed engine run on device-resident buffers; frees them when dropped."""

    def __init__(self, runner: TensorRTRunner, batch: np.ndarray):
        self.runner = runner
        self.shape = tuple(int(d) for d in batch.shape)
        runner._check_shape(self.shape)
        context, cuda, stream = runner._context, runner._cuda, runner._stream
        if not context.set_input_shape(runner._input, self.shape):
            raise BackendError(f"TensorRT rejected input shape {self.shape}")
        out_count = int(np.prod(tuple(int(d) for d in context.get_tensor_shape(runner._output))))
        host = np.ascontiguousarray(batch.astype(runner._in_dtype, copy=False))
        self.input = cuda.malloc(host.nbytes)
        self.output = cuda.malloc(out_count * runner._out_dtype.itemsize)
        self.start, self.end = cuda.create_event(), cuda.create_event()
        self._release = weakref.finalize(self, _free_timer, cuda, self.input, self.output, self.start, self.end)
        cuda.copy_to_device(self.input, host.ctypes.data, host.nbytes, stream)
        cuda.synchronize(stream)

    def __call__(self) -> float:
        runner = self.runner
        context, cuda, stream = runner._context, runner._cuda, runner._stream
        # The runner's own calls rebind the context, so every timed run binds its shape and buffers again.
        context.set_input_shape(runner._input, self.shape)
        context.set_tensor_address(runner._input, self.input)
        context.set_tensor_address(runner._output, self.output)
        cuda.record_event(self.start, stream)
        if not context.execute_async_v3(runner._stream_handle):
            raise BackendError("TensorRT failed to enqueue the engine (see the TensorRT log above)")
        cuda.record_event(self.end, stream)
        return cuda.elapsed_ms(self.start, self.end)


def _free_timer(cuda: CudaRuntime, input_pointer: int, output_pointer: int, start: Any, end: Any) -> None:
    cuda.free(input_pointer)
    cuda.free(output_pointer)
    cuda.destroy_event(start)
    cuda.destroy_event(end)
