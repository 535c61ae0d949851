"""ONNX (or a checkpoint) -> verified TensorRT engine, for every TensorRT from 8.5 (JetPack 5.1) to 11.

How precision is asked for changed across releases (``shared/reference/tensorrt.md``; the release facts are in
:mod:`cg_export.tensorrt.versions`):

- 8.5 / 8.6: explicit-batch network, ``BuilderFlag.FP16`` / ``INT8``; 8.6 is told to use its native InstanceNorm.
- 10.0 - 10.11: the same builder flags (the explicit-batch flag is implied).
- 10.12 and newer 10.x: builder flags are deprecated; FP16 comes from an FP16 graph in a strongly typed network.
- 11: builder precision flags are gone; only strongly typed networks, so FP16 must be in the graph
  (``cg_export.export.precision.convert_to_fp16`` keeps normalisation in fp32).

INT8 is explicit quantization on every version: a QDQ ONNX model (QuantizeLinear / DequantizeLinear, symmetric,
zero point 0). After building, the engine inspector says which precision each layer really runs in; an FP16 or
INT8 request that produced an all-FP32 engine fails loudly (that failure was silent on TensorRT 11 for projects
that kept setting the old flag). Then the engine is compared with ONNX Runtime or PyTorch on photographs.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from cg_export.backends.tensorrt import CudaRuntime, TensorRTRunner
from cg_export.errors import CgExportError, OptionError
from cg_export.export.defaults import DEFAULT_MAX_SHAPE, DEFAULT_MIN_SHAPE, DEFAULT_OPT_SHAPE
from cg_export.files import atomic_output, sha256_of
from cg_export.formats import format_named, format_of_suffix
from cg_export.images import model_input_kind
from cg_export.metadata import ArtifactMetadata, onnx_props
from cg_export.parity import ParityReport, check_parity, measure_parity, photograph_batches
from cg_export.sizes import round_down, round_up, verification_sizes
from cg_export.tensorrt.dla import DLA_DEVICES, DLA_MAX_DIM
from cg_export.tensorrt.sidecar import EngineParity, EngineProfile, EngineRecord, EngineSource, sidecar_path, write_sidecar
from cg_export.tensorrt.versions import (
    BUILDER_OPTIMIZATION_LEVEL_FROM,
    BUILDER_OPTIMIZATION_LEVELS,
    EXPLICIT_BATCH_IMPLIED_FROM,
    NATIVE_INSTANCENORM_FLAG_FROM,
    STRONGLY_TYPED_FROM,
    dotted,
    import_tensorrt,
    major_minor,
    tensorrt_version,
    too_old,
)

if TYPE_CHECKING:
    from cg_export.export.run import ExportRequest

INT8_CALIBRATION_ADVICE = (
    "--calib: INT8 calibration is done when exporting the ONNX model (cg-export onnx --int8 --calib DIR writes a "
    "QDQ model); pass that .onnx to cg-export trt --int8"
)


class EngineBuildError(CgExportError, RuntimeError):
    """TensorRT could not build the engine asked for, or built one that is not what was asked."""


@dataclass(frozen=True)
class ShapeProfile:
    """Min / opt / max input shapes (NCHW) of the engine's optimization profile."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    @property
    def is_static(self) -> bool:
        """True when min = opt = max (what DLA needs)."""
        return self.min == self.opt == self.max

    def describe(self) -> str:
        """``1x3x128x128 / 1x3x256x256 / 1x3x1024x1024``."""
        return " / ".join("x".join(map(str, s)) for s in (self.min, self.opt, self.max))


@dataclass(frozen=True)
class BuildPlan:
    """How to ask the installed TensorRT for a precision: network, builder and parser settings, by name.

    Attributes:
        version: TensorRT ``(major, minor)``.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        network_flags: ``NetworkDefinitionCreationFlag`` members to set.
        builder_flags: ``BuilderFlag`` members to set.
        cleared_builder_flags: ``BuilderFlag`` members to clear (TF32 for a true fp32 engine).
        parser_flags: ``OnnxParserFlag`` members to set.
        convert_graph_to_fp16: The ONNX graph must be converted to fp16 before parsing (strongly typed fp16).
        notes: What the plan decided that a user may want to know.
    """

    version: tuple[int, int]
    precision: str
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    cleared_builder_flags: tuple[str, ...]
    parser_flags: tuple[str, ...]
    convert_graph_to_fp16: bool
    notes: tuple[str, ...] = ()

    @property
    def strongly_typed(self) -> bool:
        """The network takes every tensor's type from the graph."""
        return "STRONGLY_TYPED" in self.network_flags


def plan_build(version: tuple[int, ...], *, fp16: bool, int8: bool, graph_is_fp16: bool) -> BuildPlan:
    """Decide how to get the requested precision from TensorRT ``version``.

    Args:
        version: TensorRT version, at least ``(major, minor)``.
        fp16: FP16 was asked for.
        int8: INT8 was asked for (the graph holds Q/DQ nodes).
        graph_is_fp16: The ONNX graph is already fp16 (an ``cg-export onnx --fp16`` file).

    Raises:
        EngineBuildError: the TensorRT version is older than the oldest supported (8.5).
    """
    problem = too_old(version)
    if problem:
        raise EngineBuildError(problem)
    release = major_minor(version)
    fp16 = fp16 or graph_is_fp16
    precision = "int8" if int8 else "fp16" if fp16 else "fp32"
    notes: list[str] = []
    cleared = ("TF32",) if precision == "fp32" else ()  # fp32 means fp32: TF32 convolutions lose ~3 digits
    if release < STRONGLY_TYPED_FROM:
        builder = (("INT8",) if int8 else ()) + (("FP16",) if fp16 else ())
        if release < EXPLICIT_BATCH_IMPLIED_FROM:
            network = ("EXPLICIT_BATCH",)
            # 8.6 parses InstanceNormalization into its native layer only when asked (10.x does by default);
            # 8.5 has no such flag and uses the InstanceNormalization_TRT plugin.
            parser = ("NATIVE_INSTANCENORM",) if release >= NATIVE_INSTANCENORM_FLAG_FROM else ()
        else:
            network, parser = (), ()
        return BuildPlan(release, precision, network, builder, cleared, parser, False, tuple(notes))
    # Strongly typed: every tensor's type comes from the graph, so precision is a property of the ONNX model.
    convert = fp16 and not graph_is_fp16 and not int8
    if convert:
        notes.append("strongly typed build: the graph is converted to fp16 with normalisation kept in fp32")
    if int8 and fp16 and not graph_is_fp16:
        notes.append("strongly typed build: layers outside the Q/DQ pairs run in the QDQ graph's own float type")
    return BuildPlan(release, precision, ("STRONGLY_TYPED",), (), cleared, (), convert, tuple(notes))


def parse_shape(text: str, option: str) -> tuple[int, int, int, int]:
    """``"1x3x256x256"`` -> ``(1, 3, 256, 256)``; raise a one-line error naming ``option`` otherwise."""
    try:
        values = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) <= 0:
        raise CgExportError(f"{option} {text!r}: expected NxCxHxW such as 1x3x256x256")
    return values  # type: ignore[return-value]


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def resolve_profile(
    min_shape: tuple[int, int, int, int] | None,
    opt_shape: tuple[int, int, int, int] | None,
    max_shape: tuple[int, int, int, int] | None,
    *,
    graph_dims: tuple[int | None, ...],
    size_multiple: int,
    dla: bool = False,
    fields: tuple[str, str, str] = ("min_shape", "opt_shape", "max_shape"),
    batch: int | None = None,
) -> ShapeProfile:
    """The optimization profile: given shapes validated, missing ones defaulted and fitted to the model.

    Defaults are 1x3x128x128 / 1x3x256x256 / 1x3x1024x1024, clipped to the size multiple (min rounded up, max
    down) and to any dimension the graph fixes. Given shapes must already be multiples and fit the graph.

    Args:
        min_shape, opt_shape, max_shape: NCHW shapes, or ``None`` for the default.
        graph_dims: The graph input's dims, ``None`` where dynamic.
        size_multiple: Height and width must be multiples of this.
        dla: Building for DLA, which needs one static shape.
        fields: The option each shape came from, for errors (``size_range`` when it was made from a size range).
        batch: The N of the default shapes (default 1).

    Raises:
        OptionError: a given shape does not fit the model.
    """
    given = dict(zip(fields, (min_shape, opt_shape, max_shape)))
    if len(graph_dims) != 4:
        raise CgExportError(f"the model's input has {len(graph_dims)} dimensions; expected an NCHW image input")
    for option, shape in given.items():
        if shape is None:
            continue
        for axis, (value, fixed) in enumerate(zip(shape, graph_dims)):
            if fixed is not None and value != fixed:
                raise OptionError(
                    option, _fmt(shape), f"the model fixes dimension {axis} to {fixed} "
                    f"(its input is {'x'.join('?' if d is None else str(d) for d in graph_dims)})"
                )
        if shape[2] % size_multiple or shape[3] % size_multiple:
            example = (*shape[:2], round_down(shape[2], size_multiple), round_down(shape[3], size_multiple))
            raise OptionError(option, _fmt(shape), f"height and width must be multiples of {size_multiple} for this "
                              f"generator (e.g. {_fmt(example)})")

    def fitted(default: tuple[int, int, int, int], rounding: Any) -> tuple[int, int, int, int]:
        default = (batch or default[0], *default[1:])  # type: ignore[assignment]
        dims = [fixed if fixed is not None else value for value, fixed in zip(default, graph_dims)]
        for axis in (2, 3):
            if graph_dims[axis] is None:
                dims[axis] = rounding(dims[axis], size_multiple)
        return tuple(dims)  # type: ignore[return-value]

    if dla and min_shape is None and max_shape is None:
        # DLA runs one static shape; with none given, the usual working size is the sensible one.
        opt = opt_shape or fitted(DEFAULT_OPT_SHAPE, round_up)
        low = high = opt
    else:
        low = min_shape or fitted(DEFAULT_MIN_SHAPE, round_up)
        high = max_shape or fitted(DEFAULT_MAX_SHAPE, round_down)
        opt = opt_shape or tuple(  # type: ignore[assignment]
            min(max(value, lo), hi) for value, lo, hi in zip(fitted(DEFAULT_OPT_SHAPE, round_up), low, high)
        )
    profile = ShapeProfile(tuple(low), tuple(opt), tuple(high))  # type: ignore[arg-type]
    if not all(lo <= op <= hi for lo, op, hi in zip(profile.min, profile.opt, profile.max)):
        raise CgExportError(f"shape profile {profile.describe()}: each dimension needs min <= opt <= max")
    if dla:
        if not profile.is_static:
            raise OptionError(
                "dla_core", None, f"{{dla_core}} needs one static shape, but the profile is {profile.describe()}: give "
                "{size} alone (e.g. 256x256)"
            )
        if max(profile.max[1:]) > DLA_MAX_DIM:
            raise OptionError("dla_core", None, f"{{dla_core}}: DLA takes dimensions up to {DLA_MAX_DIM}; got "
                              f"{_fmt(profile.max)}")
    return profile


@dataclass
class LayerPrecisions:
    """How many engine layers run in each precision, from the engine inspector.

    Attributes:
        counts: ``{"fp16": 41, "fp32": 3, ...}``; ``"unknown"`` counts layers the inspector gave no type for.
    """

    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of layers."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """``"41 fp16, 3 fp32 (44 layers)"``."""
        order = ("int8", "fp16", "bf16", "fp8", "fp32", "int32", "other", "unknown")
        parts = [f"{self.counts[p]} {p}" for p in order if self.counts.get(p)]
        return f"{', '.join(parts) or 'no layers'} ({self.total} layers)"


# Words TensorRT uses for types in the inspector's "Format/Datatype" (8.x, 10.x) and "DataType" (11.x) fields.
_TYPE_WORDS = (
    ("int8", ("int8",)), ("fp8", ("fp8",)), ("fp16", ("fp16", "half")), ("bf16", ("bf16",)),
    ("fp32", ("fp32", "float")), ("int32", ("int32", "int64")),
)
_RANK = ("int8", "fp8", "fp16", "bf16", "fp32", "int32")


def _type_of(description: str) -> str | None:
    lowered = description.lower()
    for precision, words in _TYPE_WORDS:
        if any(word in lowered for word in words):
            return precision
    return None


def layer_precisions(engine_information: str) -> LayerPrecisions:
    """Count layers per precision in ``EngineInspector.get_engine_information(LayerInformationFormat.JSON)``.

    A layer's precision is the narrowest type among its inputs and outputs: an INT8 convolution reads INT8 even
    when it writes FP16, and a reformat from FP32 to FP16 exists to feed FP16 layers.
    """
    try:
        info = json.loads(engine_information)
    except ValueError:
        raise EngineBuildError("the engine inspector returned no JSON; cannot check the engine's precision") from None
    counts: Counter[str] = Counter()
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict):
            counts["unknown"] += 1  # built without detailed profiling verbosity: names only
            continue
        found = set()
        for tensor in list(layer.get("Inputs", [])) + list(layer.get("Outputs", [])):
            for key in ("Format/Datatype", "DataType", "Format"):
                if isinstance(tensor, dict) and isinstance(tensor.get(key), str):
                    kind = _type_of(tensor[key])
                    if kind:
                        found.add(kind)
                        break
        precision = next((p for p in _RANK if p in found), None)
        counts[precision or "unknown"] += 1
    return LayerPrecisions(dict(counts))


def check_engine_precision(report: LayerPrecisions, precision: str, version: str) -> None:
    """Fail when the engine does not run in the precision asked for.

    Raises:
        EngineBuildError: ``fp16`` asked but no layer runs in fp16 or int8, or ``int8`` asked but none in int8.
    """
    if precision == "fp32" or report.counts.get("unknown", 0) == report.total:
        return
    low = report.counts.get("fp16", 0) + report.counts.get("int8", 0) + report.counts.get("bf16", 0)
    if precision == "fp16" and low == 0:
        raise EngineBuildError(
            f"--fp16 produced an engine whose layers all run in FP32 ({report.summary()}) on TensorRT {version}; "
            "nothing was written. On TensorRT 10.12+ and 11 FP16 must come from an FP16 ONNX graph in a strongly "
            "typed network; check that the GPU has fast FP16 and that the source graph is float"
        )
    if precision == "int8" and report.counts.get("int8", 0) == 0:
        raise EngineBuildError(
            f"--int8 produced an engine with no INT8 layer ({report.summary()}) on TensorRT {version}; nothing was "
            "written. The ONNX model needs QuantizeLinear/DequantizeLinear pairs around the convolutions"
        )


@dataclass
class EngineBuild:
    """What :func:`build_engine` produced.

    Attributes:
        path: The ``.engine`` file written.
        sidecar: Its JSON build record.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        tensorrt_version: The TensorRT that built it.
        gpu: ``"name (compute capability X.Y)"``.
        profile: The optimization profile.
        layers: Layers per precision.
        build_seconds: Time spent in TensorRT's builder.
        parity: Comparison with the reference, or ``None`` with verification off.
        reference: What the engine was compared with (``"PyTorch"`` or ``"ONNX Runtime"``).
        notes: Decisions worth telling the user.
    """

    path: Path
    sidecar: Path
    precision: str
    tensorrt_version: str
    gpu: str
    profile: ShapeProfile
    layers: LayerPrecisions
    build_seconds: float
    parity: ParityReport | None
    reference: str
    notes: list[str]


@dataclass
class _Source:
    """The model to build from: its ONNX graph and how to make a reference runner for it."""

    path: Path
    kind: str  # "onnx" or "checkpoint"
    model: onnx.ModelProto
    sha256: str
    size_multiple: int
    checkpoint_sha256: str | None
    generator: Any = None  # LoadedGenerator for checkpoint sources


def graph_is_fp16(model: onnx.ModelProto) -> bool:
    """True for a graph whose weights are float16 (what ``cg-export onnx --fp16`` writes)."""
    return any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)


def has_qdq(model: onnx.ModelProto) -> bool:
    """True when the graph holds QuantizeLinear / DequantizeLinear nodes (explicit quantization)."""
    ops = {node.op_type for node in model.graph.node}
    return {"QuantizeLinear", "DequantizeLinear"} <= ops


def _input_dims(model: onnx.ModelProto) -> tuple[int | None, ...]:
    inputs = [i for i in model.graph.input if i.name not in {init.name for init in model.graph.initializer}]
    if len(inputs) != 1:
        raise CgExportError(f"the model has {len(inputs)} inputs; a generator takes one image")
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim)


def _load_source(source: Path, arch: str | None) -> _Source:
    if not source.is_file():
        raise CgExportError(f"{source}: no such file")
    if format_of_suffix(source.suffix) is format_named("onnx"):
        from cg_export.external_data import check_external_data

        check_external_data(source)  # before onnx.load reads any external data file
        try:
            model = onnx.load(str(source))
        except Exception as exc:  # onnx raises DecodeError and others for non-ONNX bytes
            raise CgExportError(f"{source}: not a readable ONNX model ({str(exc).splitlines()[0][:80]})") from None
        meta = ArtifactMetadata.from_props(onnx_props(model), source)
        return _Source(source, "onnx", model, sha256_of(source), meta.size_multiple, meta.source_sha256)
    # A checkpoint: exported in memory with the same exporter as cg-export onnx (torch is needed only here).
    from cg_export.export.onnx import add_metadata, to_onnx_graph
    from cg_export.models import load_generator

    generator = load_generator(source, arch=arch)
    model = to_onnx_graph(generator.model)
    add_metadata(model, generator, "fp32")
    return _Source(source, "checkpoint", model, generator.sha256, generator.model.size_multiple,
                   generator.weights_sha256,
                   generator)


def default_engine_path(source: Path, precision: str) -> Path:
    """``g.onnx`` / ``g.pt`` -> ``g.engine`` (fp32) or ``g_fp16.engine`` / ``g_int8.engine``, beside the source."""
    stem = source.stem
    for suffix in ("_fp16", "_int8"):
        stem = stem.removesuffix(suffix)
    tag = "" if precision == "fp32" else f"_{precision}"
    return source.with_name(f"{stem}{tag}.engine")


@dataclass(frozen=True)
class EngineOptions:
    """How :func:`build_engine` builds and checks an engine; the defaults are the library's.

    Attributes:
        fp16: Run in FP16 (asked for the way the installed TensorRT wants it; see the module docstring).
        int8: Run in INT8 from a QDQ ONNX model (explicit quantization; calibration is the ONNX exporter's job,
            see ``cg-export onnx --int8 --calib``).
        size: Height and width the engine runs at: alone, a static engine (min = opt = max); with ``size_range``,
            the size it is optimised for.
        size_range: Smallest and largest ``(height, width)`` the engine takes.
        batch: Images per inference call (the profile's N; default 1, or what the model fixes).
        min_shape, opt_shape, max_shape: The optimization profile written out, NCHW, instead of ``size``,
            ``size_range`` and ``batch``; ``None`` takes the default (:data:`cg_export.export.defaults.DEFAULT_MIN_SHAPE`
            and its opt and max) fitted to the model.
        workspace_mb: Builder workspace limit in MiB (``None``: TensorRT's default, all free GPU memory).
        timing_cache: A timing cache file, read if it exists and written back, so rebuilds skip kernel timing.
        dla_core: Build for this DLA core (Jetson Xavier / Orin) with GPU fallback; needs a static shape and
            FP16 or INT8.
        builder_optimization_level: 0-5 (TensorRT 8.6+; ``None``: TensorRT's default, 3). Higher builds slower and
            may run faster.
        verify: Compare the engine with PyTorch (checkpoint source) or ONNX Runtime (ONNX source) on photographs.
        min_psnr_db: Lowest accepted PSNR; ``None`` uses the precision's default (50 / 40 / 30 dB).
        arch: Force the architecture of a checkpoint source.
        threads: CPU threads of the verification's reference (PyTorch or ONNX Runtime on the CPU); ``None`` is
            :func:`cg_export.threads.default_threads`.

    Raises:
        CgExportError: ``threads`` below 1 (checked when the options are made, before anything is loaded).
    """

    fp16: bool = False
    int8: bool = False
    size: tuple[int, int] | None = None
    size_range: tuple[tuple[int, int], tuple[int, int]] | None = None
    batch: int | None = None
    min_shape: tuple[int, int, int, int] | None = None
    opt_shape: tuple[int, int, int, int] | None = None
    max_shape: tuple[int, int, int, int] | None = None
    workspace_mb: int | None = None
    timing_cache: str | Path | None = None
    dla_core: int | None = None
    builder_optimization_level: int | None = None
    verify: bool = True
    min_psnr_db: float | None = None
    arch: str | None = None
    threads: int | None = None

    @classmethod
    def from_request(cls, request: ExportRequest) -> EngineOptions:
        """The options an :class:`~cg_export.export.ExportRequest` (the formats table's common words) asks for: an
        engine tuned at ``request.size`` and taking ``request.size_range`` (alone, the size: a static engine)."""
        return cls(fp16=request.precision == "fp16", int8=request.precision == "int8", verify=request.verify,
                   min_psnr_db=request.min_psnr_db, arch=request.arch, threads=request.threads, size=request.size,
                   size_range=request.size_range)

    @property
    def precision(self) -> str:
        """``"int8"``, ``"fp16"`` or ``"fp32"``."""
        return "int8" if self.int8 else "fp16" if self.fp16 else "fp32"

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise OptionError("threads", self.threads, "expected 1 or more")
        if self.batch is not None and self.batch < 1:
            raise OptionError("batch", self.batch, "expected 1 or more images per call")
        sized = (self.size, self.size_range, self.batch) != (None, None, None)
        if sized and (self.min_shape, self.opt_shape, self.max_shape) != (None, None, None):
            raise OptionError("size", None, "give {size}, {size_range} and {batch}, or the NCHW {min_shape}, "
                              "{opt_shape} and {max_shape}, not both")

    def profile_shapes(self, graph_dims: tuple[int | None, ...]) -> tuple[tuple[Any, Any, Any], tuple[str, str, str]]:
        """The NCHW min / opt / max shapes asked for (``None`` where the default applies), and the field each came
        from: ``size`` / ``size_range`` / ``batch`` made into shapes, or the shapes given as they are.

        Args:
            graph_dims: The graph input's dims (``None`` where dynamic): its channels fill C.
        """
        if (self.size, self.size_range, self.batch) == (None, None, None):
            return (self.min_shape, self.opt_shape, self.max_shape), ("min_shape", "opt_shape", "max_shape")
        if self.batch and graph_dims and graph_dims[0] and self.batch != graph_dims[0]:
            raise OptionError("batch", self.batch, f"the model fixes the batch to {graph_dims[0]}")
        batch = self.batch or graph_dims[0] or 1
        channels = graph_dims[1] if len(graph_dims) == 4 and graph_dims[1] else DEFAULT_OPT_SHAPE[1]

        def nchw(size: tuple[int, int]) -> tuple[int, int, int, int]:
            return (batch, channels, *size)

        if self.size_range is not None:
            low, high = self.size_range
            shapes = (nchw(low), nchw(self.size) if self.size else None, nchw(high))
            return shapes, ("size_range", "size", "size_range")
        if self.size is not None:  # one size alone: a static engine, as a fixed --size is in cg-export onnx
            return (nchw(self.size),) * 3, ("size", "size", "size")
        return (None, None, None), ("batch", "batch", "batch")  # the default sizes, with this batch


def _check_options(options: EngineOptions, version: tuple[int, ...]) -> None:
    level = options.builder_optimization_level
    if level is not None and level not in BUILDER_OPTIMIZATION_LEVELS:
        levels = BUILDER_OPTIMIZATION_LEVELS
        raise OptionError("builder_optimization_level", level, f"expected {levels[0]} to {levels[-1]}")
    if level is not None and major_minor(version) < BUILDER_OPTIMIZATION_LEVEL_FROM:
        raise OptionError("builder_optimization_level", None, "{builder_optimization_level} needs TensorRT "
                          f"{dotted(BUILDER_OPTIMIZATION_LEVEL_FROM)} or newer")
    if options.workspace_mb is not None and options.workspace_mb <= 0:
        raise OptionError("workspace_mb", options.workspace_mb, "expected a positive number of MiB")
    if options.dla_core is not None and not (options.fp16 or options.int8):
        raise OptionError("dla_core", None, "{dla_core}: DLA runs FP16 or INT8 only; add {fp16} (or {int8} with a QDQ "
                          "model)")


def build_engine(
    source: str | Path,
    output: str | Path | None = None,
    options: EngineOptions | None = None,
) -> EngineBuild:
    """Build a TensorRT engine from an ONNX model or a generator checkpoint, check it, and write it atomically.

    The engine is written with its JSON sidecar (:mod:`cg_export.tensorrt.sidecar`) only after its layers run in
    the precision asked for and (unless ``options.verify`` is off) its output matches the reference.

    Args:
        source: ``.onnx`` (any cg-export ONNX file: fp32, fp16 or QDQ int8) or a checkpoint ``load_generator`` reads.
        output: The ``.engine`` path; ``None`` writes ``<source stem>[_fp16|_int8].engine`` beside the source.
        options: Precision, profile, builder and verification settings (``None``: :class:`EngineOptions` defaults,
            an fp32 engine verified on photographs).

    Returns:
        What was written, its layer precisions and its parity.

    Raises:
        MissingDependencyError: TensorRT or the CUDA Python bindings are not installed (checked first).
        EngineBuildError: TensorRT could not parse or build the model, or built the wrong precision.
        ParityError: the engine's output is too far from the reference; nothing was written.
    """
    options = options or EngineOptions()
    trt = import_tensorrt()
    version = tensorrt_version(trt)
    _check_options(options, version)
    dla = options.dla_core is not None
    source = _load_source(Path(source), options.arch)
    if options.int8 and not has_qdq(source.model):
        raise CgExportError(
            f"--int8: {source.path} has no QuantizeLinear/DequantizeLinear nodes; TensorRT builds INT8 from a QDQ "
            "model (explicit quantization): export one with cg-export onnx --int8 --calib DIR"
        )
    plan = plan_build(version, fp16=options.fp16, int8=options.int8, graph_is_fp16=graph_is_fp16(source.model))
    graph_dims = _input_dims(source.model)
    shapes, fields = options.profile_shapes(graph_dims)
    profile = resolve_profile(*shapes, graph_dims=graph_dims, size_multiple=source.size_multiple, dla=dla, fields=fields,
                              batch=options.batch)
    output = Path(output) if output is not None else default_engine_path(source.path, plan.precision)
    if output.resolve() == source.path.resolve():
        raise CgExportError(f"{output}: the engine would overwrite its source; choose another -o")
    graph = source.model
    if options.int8:
        from cg_export.export.quantize import fold_bias_dequantization

        # cg-export's QDQ models carry int32 biases for ONNX Runtime's integer kernels; TensorRT wants them float.
        graph = fold_bias_dequantization(graph)
    _preflight(graph, version, dla)
    notes = list(plan.notes)

    if plan.convert_graph_to_fp16:
        from cg_export.export.precision import convert_to_fp16

        graph = convert_to_fp16(graph)

    cuda = CudaRuntime.load(0)
    gpu = cuda.device_info(0)
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    # The network refers to weights the parser owns: keep the parser alive until the engine is built.
    network, _parser = _parse(trt, builder, logger, plan, graph)
    input_name = network.get_input(0).name
    config = _configure(trt, builder, input_name, plan, profile, options)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_seconds = time.perf_counter() - started
    if serialized is None:
        raise EngineBuildError(
            f"TensorRT {trt.__version__} could not build the engine (its log above says why); nothing was written"
        )
    engine_bytes = bytes(serialized)
    if options.timing_cache is not None:
        _save_timing_cache(config, Path(options.timing_cache))

    layers = inspect_layers(trt, logger, engine_bytes, options.dla_core)
    check_engine_precision(layers, plan.precision, str(trt.__version__))

    record = EngineRecord(
        tensorrt_version=str(trt.__version__), gpu=gpu, precision=plan.precision, strongly_typed=plan.strongly_typed,
        profiles=(EngineProfile(input_name, profile.min, profile.opt, profile.max),),
        source=EngineSource(str(source.path.resolve()), source.kind, source.sha256, source.checkpoint_sha256),
        size_multiple=source.size_multiple, layer_precisions=dict(layers.counts), engine_bytes=len(engine_bytes),
        build_seconds=round(build_seconds, 3), dla_core=options.dla_core,
    )
    reference = "PyTorch" if source.kind == "checkpoint" else "ONNX Runtime"
    parity = None
    with atomic_output(output) as tmp:
        tmp.write_bytes(engine_bytes)
        if options.verify:
            parity = verify_engine(tmp, source, profile, threads=options.threads)
            check_parity(parity, plan.precision, min_psnr_db=options.min_psnr_db)
            record = replace(record, parity=EngineParity(reference, parity.psnr_db, parity.max_abs_err))
        # The old sidecar describes the old engine: drop it before the new engine takes the name.
        sidecar_path(output).unlink(missing_ok=True)
    sidecar = write_sidecar(output, record)
    return EngineBuild(output, sidecar, plan.precision, str(trt.__version__), gpu.describe(), profile, layers,
                       build_seconds, parity, reference, notes)


def _preflight(model: onnx.ModelProto, version: tuple[int, ...], dla: bool) -> None:
    from cg_export.tensorrt.check import check_model

    report = check_model(model, version, dla=dla)
    errors = [finding for finding in report.findings if finding.severity == "error"]
    if errors:
        listed = "; ".join(str(e) for e in errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
        raise EngineBuildError(
            f"{report.target} cannot take this model: {listed} (cg-export check MODEL.onnx lists all)"
        )


def _parse(trt: Any, builder: Any, logger: Any, plan: BuildPlan, graph: onnx.ModelProto) -> tuple[Any, Any]:
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    for name in plan.parser_flags:
        parser.set_flag(getattr(trt.OnnxParserFlag, name))
    if not parser.parse(graph.SerializeToString()):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise EngineBuildError(
            f"TensorRT's ONNX parser rejected the model: {'; '.join(errors[:3]) or 'no reason given'} "
            "(cg-export check MODEL.onnx --trt-version VERSION lists what this TensorRT does not take)"
        )
    return network, parser


def _configure(
    trt: Any, builder: Any, input_name: str, plan: BuildPlan, profile: ShapeProfile, options: EngineOptions
) -> Any:
    config = builder.create_builder_config()
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.cleared_builder_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if options.builder_optimization_level is not None:
        config.builder_optimization_level = options.builder_optimization_level
    # Detailed verbosity makes the engine inspector report each layer's types (the precision check needs them).
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    optimization_profile = builder.create_optimization_profile()
    optimization_profile.set_shape(input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(optimization_profile)
    if options.timing_cache is not None:
        path = Path(options.timing_cache)
        cache = config.create_timing_cache(path.read_bytes() if path.is_file() else b"")
        if not config.set_timing_cache(cache, False):
            raise EngineBuildError(f"--timing-cache {path}: TensorRT cannot use this cache file")
    if options.dla_core is not None:
        cores = builder.num_DLA_cores
        if cores == 0:
            raise EngineBuildError(f"--dla-core: this GPU has no DLA ({DLA_DEVICES} have)")
        if not 0 <= options.dla_core < cores:
            raise EngineBuildError(f"--dla-core {options.dla_core}: this device has DLA cores 0..{cores - 1}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        # Layers DLA cannot run (reflection padding, InstanceNorm) go to the GPU instead of failing the build.
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    return config


def _save_timing_cache(config: Any, path: Path) -> None:
    data = bytes(config.get_timing_cache().serialize())
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def inspect_layers(trt: Any, logger: Any, engine_bytes: bytes, dla_core: int | None = None) -> LayerPrecisions:
    """Deserialize an engine and count its layers per precision with the engine inspector."""
    runtime = trt.Runtime(logger)
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise EngineBuildError("TensorRT cannot load the engine it just built (see its log above)")
    inspector = engine.create_engine_inspector()
    return layer_precisions(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def verify_engine(engine_path: Path, source: _Source, profile: ShapeProfile, threads: int | None = None) -> ParityReport:
    """The engine vs PyTorch (checkpoint source) or ONNX Runtime (ONNX source) on photographs inside the profile.

    ``threads`` are the CPU reference's (``None``: :func:`cg_export.threads.default_threads`).
    """
    from cg_export.threads import default_threads

    sizes = verification_sizes(source.size_multiple, around=profile.opt[2:4], width_range=(profile.min[3], profile.max[3]))
    architecture = (source.generator.config if source.generator is not None
                    else ArtifactMetadata.from_props(onnx_props(source.model), source.path).architecture)
    inputs = photograph_batches(sizes, profile.opt[0], input_kind=model_input_kind(architecture))
    threads = default_threads() if threads is None else threads
    with _reference_runner(source, threads) as reference, TensorRTRunner(engine_path) as candidate:
        return measure_parity(reference, candidate, inputs)


def _reference_runner(source: _Source, threads: int) -> Any:
    if source.kind == "checkpoint":
        from cg_export.backends.torch import TorchRunner

        # The reference is the CPU's; PyTorch's default is one thread per machine core. Set while it is active.
        return TorchRunner(source.generator.model, threads=threads)
    from cg_export.backends.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(source.path, providers=["CPUExecutionProvider"], threads=threads)
