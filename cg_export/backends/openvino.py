"""OpenVINO backend: runs OpenVINO IR (``.xml`` with its ``.bin``) and, when asked, ``.onnx`` files.

Imports no torch, and ``openvino`` only when a runner is activated: an x86 edge box with openvino, numpy and
pillow runs models with this module. The default device is ``CPU``; ``GPU``, ``NPU``, ``AUTO`` (any name
``openvino.Core().available_devices`` lists) are passed through.

Two things OpenVINO decides by itself are made explicit here:

* **Float execution precision.** The CPU plugin runs float layers in bf16 on CPUs with AMX or AVX512-BF16 unless told
  otherwise, which would make an fp32 file miss its fp32 floor. The runner asks for ``f32`` on the CPU by default
  (the precision every artifact is verified in) and reports what the compiled model actually runs
  (``inference_precision="bf16"`` / ``"f16"`` opts into the faster float path).
* **Which kernels run.** :class:`ExecutionReport` counts the compiled model's layers per type, kernel and runtime
  precision (the CPU plugin's ``primitiveType``: ``jit_avx2_I8``, ``brgconv_avx512_amx_bf16`` ...), like the
  TensorRT inspector, so an int8 file whose convolutions do not run integer kernels is reported as such.

The metadata cg-export writes into an IR's ``rt_info`` (section ``cg_export``) is read by :func:`read_ir_metadata`
from the ``.xml`` alone, without openvino. An ``.onnx`` opened through OpenVINO carries its ``metadata_props`` in the
model's ``rt_info["framework"]``; both are parsed by :meth:`ArtifactMetadata.from_props`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cg_export.backends.base import ModelInfo, Runner
from cg_export.errors import BackendError
from cg_export.formats import format_named, format_of_suffix
from cg_export.metadata import PREFIX, ArtifactMetadata
from cg_export.optional import import_optional
from cg_export.threads import ThreadSettings

RT_INFO_SECTION = "cg_export"
FRAMEWORK_SECTION = "framework"
NORM_STATS = "norm_stats"
DEFAULT_DEVICE = "CPU"
# What the runner asks the CPU plugin for when the caller names no float precision (see the module docstring).
CPU_DEFAULT_INFERENCE_PRECISION = "f32"
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")
# The layer types whose kernels say whether a model runs in int8 (they hold nearly all of a generator's MACs).
HEAVY_LAYERS = ("Convolution", "Deconvolution")
INTEGER_PRECISIONS = ("i8", "u8")
_INSTALL = format_named("openvino").requirement.install


def import_openvino() -> Any:
    """Import openvino or raise a one-line :class:`MissingDependencyError` naming the ``[openvino]`` extra."""
    return import_optional("openvino", "to run and export OpenVINO models", _INSTALL)


def rt_info_props(model: Any) -> dict[str, str]:
    """The ``cg_export.*`` strings an ``openvino.Model`` carries: our own ``rt_info`` section when the model is an IR
    cg-export wrote, else the ONNX ``metadata_props`` OpenVINO's ONNX reader keeps under ``framework``."""
    info = model.get_rt_info()
    if RT_INFO_SECTION in info:
        section = info[RT_INFO_SECTION]
        return {PREFIX + key: model.get_rt_info([RT_INFO_SECTION, key]).astype(str) for key in section}
    if FRAMEWORK_SECTION in info:
        section = info[FRAMEWORK_SECTION]
        return {key: model.get_rt_info([FRAMEWORK_SECTION, key]).astype(str) for key in section
                if key.startswith(PREFIX)}
    return {}


def write_rt_info(model: Any, metadata: ArtifactMetadata) -> None:
    """Record ``metadata`` in an ``openvino.Model``'s ``rt_info`` section ``cg_export`` (written into the IR)."""
    for key, value in metadata.to_props().items():
        model.set_rt_info(value, [RT_INFO_SECTION, key[len(PREFIX):]])


def read_ir_metadata(path: str | Path) -> ArtifactMetadata:
    """The checked metadata of an OpenVINO IR, read from its ``.xml`` alone (no openvino, no weights).

    Raises:
        BackendError: the file is not a readable IR, or its metadata is broken.
    """
    path = Path(path)
    if format_of_suffix(path.suffix) is format_named("onnx"):
        from cg_export.metadata import read_onnx_metadata

        return read_onnx_metadata(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise BackendError(f"{path}: not a readable OpenVINO IR ({exc})") from None
    if root.tag != "net":
        raise BackendError(f"{path}: not an OpenVINO IR (its root element is <{root.tag}>, not <net>)")
    rt_info = root.find("rt_info")
    props: dict[str, str] = {}
    if rt_info is not None:
        ours = rt_info.find(RT_INFO_SECTION)
        framework = rt_info.find(FRAMEWORK_SECTION)
        if ours is not None:
            props = {PREFIX + item.tag: item.get("value", "") for item in ours}
        elif framework is not None:
            props = {item.tag: item.get("value", "") for item in framework if item.tag.startswith(PREFIX)}
    return ArtifactMetadata.from_props(props, path)


@dataclass(frozen=True)
class ExecutionReport:
    """What a compiled OpenVINO model actually runs: float precision and kernels per layer type.

    Attributes:
        devices: The devices executing it (``["CPU"]``; ``AUTO`` resolves to real ones).
        inference_precision: The float precision the plugin runs non-quantized layers in (``f32``, ``bf16``, ``f16``).
        kernels: ``{layer type: {(kernel, runtime precision): count}}`` from the runtime model
            (constants, inputs and outputs left out).
    """

    devices: list[str]
    inference_precision: str
    kernels: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)

    def count(self, layer_type: str, precisions: tuple[str, ...] | None = None) -> int:
        """Layers of ``layer_type`` (running in one of ``precisions``, if given)."""
        return sum(n for (_, precision), n in self.kernels.get(layer_type, {}).items()
                   if precisions is None or precision in precisions)

    @property
    def heavy_layers(self) -> int:
        """Convolution and deconvolution layers."""
        return sum(self.count(t) for t in HEAVY_LAYERS)

    @property
    def integer_heavy_layers(self) -> int:
        """Convolution and deconvolution layers running integer (i8/u8) kernels."""
        return sum(self.count(t, INTEGER_PRECISIONS) for t in HEAVY_LAYERS)

    def summary(self) -> str:
        """One line: devices, float precision, and the heavy layers' kernels."""
        parts = []
        for layer_type in HEAVY_LAYERS:
            kernels = self.kernels.get(layer_type)
            if kernels:
                listed = ", ".join(f"{n} {kernel}" for (kernel, _), n in sorted(kernels.items(), key=lambda kv: -kv[1]))
                parts.append(f"{layer_type}: {listed}")
        return (f"{'+'.join(self.devices)}, float layers in {self.inference_precision}, "
                f"{self.integer_heavy_layers} of {self.heavy_layers} conv layers on integer kernels"
                + (f" ({'; '.join(parts)})" if parts else ""))

    def table(self) -> list[tuple[str, str, str, int]]:
        """Every ``(layer type, kernel, runtime precision, count)``, most frequent layer types first."""
        rows = [(t, k, p, n) for t, kernels in self.kernels.items() for (k, p), n in kernels.items()]
        return sorted(rows, key=lambda r: (-sum(self.kernels[r[0]].values()), r[0], -r[3]))

    def mismatch(self, precision: str) -> str | None:
        """Why the kernels do not match the artifact's ``precision`` (``None`` when they do).

        An int8 model whose convolutions all run float kernels, or an fp32 model run in reduced float precision,
        is worth saying out loud: the file's name promises something the device does not do.
        """
        if precision == "int8" and self.heavy_layers and self.integer_heavy_layers == 0:
            return (f"an int8 model, but none of its {self.heavy_layers} conv layers runs an integer kernel on "
                    f"{'+'.join(self.devices)}: it computes in {self.inference_precision}")
        if precision == "fp32" and self.inference_precision != "f32":
            return f"an fp32 model, but {'+'.join(self.devices)} runs its float layers in {self.inference_precision}"
        return None


def execution_report(compiled: Any) -> ExecutionReport:
    """Read an ``openvino.CompiledModel``'s runtime model into an :class:`ExecutionReport`."""
    kernels: dict[str, Counter] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer_type = info["layerType"].astype(str)
        if layer_type in ("Const", "Input", "Output"):
            continue
        kernel = info["primitiveType"].astype(str)
        precision = info["runtimePrecision"].astype(str).lower()
        kernels.setdefault(layer_type, Counter())[(kernel, precision)] += 1
    try:
        devices = [str(d) for d in compiled.get_property("EXECUTION_DEVICES")]
    except RuntimeError:
        devices = ["unknown"]
    try:
        precision = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
    except RuntimeError:  # not every plugin has the property
        precision = "unknown"
    return ExecutionReport(devices, _short_precision(precision), {t: dict(c) for t, c in kernels.items()})


def _short_precision(text: str) -> str:
    # The property prints as "<Type: 'float32'>" or "f32" depending on the version.
    for long, short in (("bfloat16", "bf16"), ("float16", "f16"), ("float32", "f32")):
        if long in text:
            return short
    return text


@dataclass(frozen=True)
class OperatorTime:
    """Time one kind of operator took in a profiled inference (OpenVINO's performance counters).

    Attributes:
        node_type: The plugin's layer type (``Convolution``, ``MVN``, ``Reorder`` ...).
        exec_type: The kernel (``jit_avx2_I8``, ``brgconv_avx512_f32`` ...).
        milliseconds: Summed real time of the layers of this type and kernel.
        layers: How many layers ran it.
    """

    node_type: str
    exec_type: str
    milliseconds: float
    layers: int


def profile_operators(profiling_info: list[Any]) -> list[OperatorTime]:
    """Sum an infer request's ``profiling_info`` (needs ``PERF_COUNT``) by layer type and kernel, slowest first."""
    times: dict[tuple[str, str], list[float]] = {}
    for entry in profiling_info:
        if str(entry.status).endswith("EXECUTED"):
            key = (entry.node_type, entry.exec_type)
            times.setdefault(key, []).append(entry.real_time.total_seconds() * 1000.0)
    rows = [OperatorTime(t, k, sum(v), len(v)) for (t, k), v in times.items()]
    return sorted(rows, key=lambda r: -r.milliseconds)


class OpenVinoRunner(Runner):
    """Runs an OpenVINO IR or an ONNX model with OpenVINO.

    A ``--uint8-io`` model (uint8 NHWC RGB in and out) is run through the same float NCHW interface as every other
    runner: batches are rounded to bytes on the way in and scaled back on the way out, so bench, parity and tiling
    need not know; :meth:`infer_bytes` feeds camera bytes straight in.

    Args:
        model_path: The ``.xml`` (its ``.bin`` beside it) or ``.onnx`` file.
        device: An OpenVINO device (``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ``AUTO``; case-insensitive);
            default ``CPU``.
        threads: Inference threads; ``None`` lets OpenVINO use every core.
        inference_precision: Float precision of non-quantized layers: ``f32``, ``bf16`` or ``f16``. ``None``: ``f32``
            on the CPU (what the artifacts are verified in), the plugin's own default elsewhere.
    """

    name = "openvino"

    def __init__(self, model_path: str | Path, device: str | None = None, threads: int | None = None,
                 inference_precision: str | None = None):
        super().__init__()
        self.model_path = Path(model_path)
        self.requested_device = (device or DEFAULT_DEVICE).upper()
        self.threads = threads
        if inference_precision is not None and inference_precision not in INFERENCE_PRECISIONS:
            raise BackendError(f"inference precision {inference_precision!r}: choose one of "
                               f"{', '.join(INFERENCE_PRECISIONS)}")
        self.inference_precision = inference_precision
        self.device = _device_label([self.requested_device])
        self.execution: ExecutionReport | None = None
        self._core: Any = None
        self._model: Any = None
        self._compiled: Any = None
        self._request: Any = None
        self._derived: tuple[Any, Any] | None = None

    def _activate(self) -> None:
        ov = import_openvino()
        if not self.model_path.is_file():
            raise BackendError(f"{self.model_path}: no such model file")
        is_onnx = format_of_suffix(self.model_path.suffix) is format_named("onnx")
        if not is_onnx and not self.model_path.with_suffix(".bin").is_file():
            raise BackendError(f"{self.model_path}: its weights {self.model_path.with_suffix('.bin').name} are missing")
        if is_onnx:
            # OpenVINO reads an ONNX file's external data itself: only from inside the model's own folder.
            from cg_export.external_data import check_external_data
            from cg_export.model_limits import check_model_limits

            check_external_data(self.model_path)
            check_model_limits(self.model_path)  # static shapes that cannot fit, refused before OpenVINO allocates
        self._core = ov.Core()
        available = self._core.available_devices
        base = self.requested_device.split(".")[0]
        if base not in ("AUTO", "MULTI", "HETERO") and self.requested_device not in available and base not in available:
            raise BackendError(f"OpenVINO device {self.requested_device!r} is not available here "
                               f"(available: {', '.join(available)})")
        try:
            self._model = self._core.read_model(str(self.model_path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line texts
            raise BackendError(f"{self.model_path}: OpenVINO cannot read it ({_first_line(exc)})") from None
        metadata = ArtifactMetadata.from_props(rt_info_props(self._model), self.model_path)
        self._compiled = self._compile(self._model)
        self._request = self._compiled.create_infer_request()
        self.execution = execution_report(self._compiled)
        self.device = _device_label(self.execution.devices)
        self.precision = metadata.precision
        self._info = ModelInfo("openvino", self.model_path, metadata, *_static_dims(self._model, metadata.uint8_io))

    def _compile(self, model: Any, profiling: bool = False) -> Any:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.requested_device.startswith("CPU"):
            # No pinning of threads to cores unless CG_EXPORT_SPIN=1 (see ThreadSettings); the count stays
            # OpenVINO's own (every core) unless given.
            settings = ThreadSettings.resolve(self.threads)
            config["ENABLE_CPU_PINNING"] = settings.spinning
            if self.threads:
                config["INFERENCE_NUM_THREADS"] = settings.count
        elif self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        precision = self.inference_precision
        if precision is None and self.requested_device.startswith("CPU"):
            precision = CPU_DEFAULT_INFERENCE_PRECISION
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        if profiling:
            config["PERF_COUNT"] = True
        try:
            return self._core.compile_model(model, self.requested_device, config)
        except Exception as exc:
            raise BackendError(f"{self.model_path}: OpenVINO cannot compile it for {self.requested_device} "
                               f"({_first_line(exc)})") from None

    def _deactivate(self) -> None:
        self._request = self._compiled = self._model = self._core = None
        self._derived = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        # The model's own I/O: Runner.__call__ converts float NCHW to uint8 NHWC and back for a --uint8-io model.
        try:
            return self._request.infer({0: batch})[0].copy()
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses; out of memory is one line
            from cg_export.model_limits import out_of_memory_error

            error = out_of_memory_error(self.model_path, exc, batch.shape)
            if error is None:
                raise
            raise error from None

    def infer_bytes(self, images: np.ndarray) -> np.ndarray:
        """Run a ``--uint8-io`` model on uint8 NHWC RGB images as they are; returns uint8 NHWC RGB.

        Raises:
            BackendError: the model takes float input.
        """
        if not self.info.uint8_io:
            raise BackendError(f"{self.model_path}: takes float32 NCHW input, not uint8 images")
        return self._request.infer({0: np.ascontiguousarray(images, dtype=np.uint8)})[0].copy()

    def profile(self, batch: np.ndarray, runs: int = 1) -> list[OperatorTime]:
        """Per-operator time of ``runs`` inferences of ``batch`` (OpenVINO's performance counters), summed.

        Compiles a second, profiling copy of the model; the runner's own timing is not slowed by the counters.
        """
        compiled = self._compile(self._model, profiling=True)
        request = compiled.create_infer_request()
        feed = {0: self.to_model_feed(batch)}
        request.infer(feed)  # the first run allocates and picks kernels for the shape
        totals: dict[tuple[str, str], OperatorTime] = {}
        for _ in range(runs):
            request.infer(feed)
            for row in profile_operators(request.profiling_info):
                seen = totals.get((row.node_type, row.exec_type))
                totals[(row.node_type, row.exec_type)] = row if seen is None else OperatorTime(
                    row.node_type, row.exec_type, seen.milliseconds + row.milliseconds, row.layers)
        return sorted(totals.values(), key=lambda r: -r.milliseconds)

    def norm_stats(self, batch: np.ndarray) -> np.ndarray:
        stats_request, _ = self._norm_stats_requests()
        return self.in_model_batches(lambda part: stats_request.infer({0: self.to_model_feed(part)})[0].copy(), batch)

    def infer_with_norm_stats(self, batch: np.ndarray, stats: np.ndarray) -> np.ndarray:
        _, tile_request = self._norm_stats_requests()

        def run(part: np.ndarray, part_stats: np.ndarray) -> np.ndarray:
            feed = {0: self.to_model_feed(part), NORM_STATS: np.ascontiguousarray(part_stats, dtype=np.float32)}
            return self.from_model_output(tile_request.infer(feed)[0].copy())

        return self.in_model_batches(run, batch, stats)

    def _norm_stats_requests(self) -> tuple[Any, Any]:
        # Derived lazily: most runs never tile, and each derived model is a second compilation.
        if self._derived is None:
            stats_model, tile_model = split_norm_stats_models(self._model)
            self._derived = (self._compile(stats_model).create_infer_request(),
                             self._compile(tile_model).create_infer_request())
        return self._derived


def _device_label(devices: list[str]) -> str:
    # "cpu" like every other host backend (bench measures host memory for it); OpenVINO's names for the others.
    return "cpu" if all(d.split(".")[0] == "CPU" for d in devices) else "+".join(devices)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _static_dims(model: Any, uint8_io: bool) -> tuple[tuple[int, int] | None, int | None]:
    shape = model.inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4:
        return None, None
    dims = [d.get_length() if d.is_static else None for d in shape]
    height, width = (dims[1], dims[2]) if uint8_io else (dims[2], dims[3])
    return ((height, width) if height and width else None), dims[0]


def split_norm_stats_models(model: Any) -> tuple[Any, Any]:
    """Derive the stats model and the tile model of an ``openvino.Model`` (see :mod:`cg_export.norm_stats`).

    OpenVINO reads an ONNX ``InstanceNormalization`` as ``MVN`` over the spatial axes (eps inside the square root)
    followed by the scale and bias; the statistics are those of every such MVN's input, in graph order, laid out as
    :func:`cg_export.norm_stats.split_norm_stats_graphs` lays them out, so both derivations agree.

    Raises:
        BackendError: the model has no such MVN, or one normalises another way.
    """
    ov = import_openvino()
    ops = import_optional("openvino.opset13", "to run and export OpenVINO models", _INSTALL)

    def norms_of(graph: Any) -> list[Any]:
        found = [op for op in graph.get_ordered_ops() if op.get_type_name() == "MVN"]
        for op in found:
            attributes = op.get_attributes()
            axes = op.input_value(1).get_node()
            if (not attributes.get("normalize_variance") or attributes.get("eps_mode", "").upper() != "INSIDE_SQRT"
                    or axes.get_type_name() != "Constant"
                    or sorted(int(a) % 4 for a in axes.get_data().ravel()) != [2, 3]):
                raise BackendError(f"normalisation layer {op.get_friendly_name()!r} is not an InstanceNorm "
                                   "(spatial MVN with variance); tiles cannot share its statistics")
        if not found:
            raise BackendError("the model has no InstanceNorm: tiles can run independently, no statistics needed")
        return found

    def axes(*values: int) -> Any:
        return ops.constant(np.array(values, np.int64))

    stats_copy = model.clone()
    means, variances = [], []
    for norm in norms_of(stats_copy):
        x = norm.input_value(0)
        mean_kept = ops.reduce_mean(x, axes(2, 3), keep_dims=True)
        centred = ops.subtract(x, mean_kept)
        variances.append(ops.reduce_mean(ops.multiply(centred, centred), axes(2, 3), keep_dims=False))
        means.append(ops.reduce_mean(x, axes(2, 3), keep_dims=False))
    stats = ops.concat([ops.unsqueeze(ops.concat(means, 1), axes(1)), ops.unsqueeze(ops.concat(variances, 1), axes(1))], 1)
    stats_result = ops.result(stats)
    stats_result.get_output_tensor(0).set_names({NORM_STATS})
    stats_model = ov.Model([stats_result], stats_copy.get_parameters(), "norm_stats")

    tile_copy = model.clone()
    norms = norms_of(tile_copy)
    counts = [norm.get_input_partial_shape(0)[1].get_length() for norm in norms]
    given = ops.parameter([-1, 2, sum(counts)], np.float32, name=NORM_STATS)
    given.get_output_tensor(0).set_names({NORM_STATS})
    offset = 0
    for norm, count in zip(norms, counts):
        eps = np.float32(norm.get_attributes()["eps"])
        mean = ops.reshape(ops.slice(given, axes(0, offset), axes(1, offset + count), axes(1, 1), axes(1, 2)),
                           axes(0, count, 1, 1), special_zero=True)
        var = ops.reshape(ops.slice(given, axes(1, offset), axes(2, offset + count), axes(1, 1), axes(1, 2)),
                          axes(0, count, 1, 1), special_zero=True)
        std = ops.sqrt(ops.add(var, ops.constant(eps)))
        normalised = ops.divide(ops.subtract(norm.input_value(0), mean), std)
        norm.output(0).replace(normalised.output(0))
        offset += count
    tile_model = ov.Model(tile_copy.get_results(), [*tile_copy.get_parameters(), given], "tile")
    return stats_model, tile_model
