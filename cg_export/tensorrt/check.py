"""Pre-flight for TensorRT: what a given TensorRT's ONNX parser (and DLA) will refuse, found without a GPU.

``cg-export check MODEL.onnx --trt-version 8.6 --dla`` reads the graph and reports, per node, what TensorRT of
that version does not take: an opset above what its parser reads, operators it lacks, attributes it does not
implement (Resize modes, non-constant padding), quantization it cannot run (Q/DQ with a non-zero or unsigned
zero point), and, for DLA, the dynamic shapes and layers that DLA cannot run and that fall back to the GPU.

The facts themselves live in :mod:`cg_export.tensorrt` (the parser support matrices of each release in
``parser``, DLA's layers and limits in ``dla``, the releases and their API changes in ``versions``); this module
applies them to a graph. A release between two matrices is checked against the older one; where that may be too
strict the finding is a warning, not an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from cg_export.errors import CgExportError, OptionError
from cg_export.external_data import external_data_files as check_external_data_files
from cg_export.tensorrt.dla import DLA_EXPLICIT_QUANTIZATION_FROM, DLA_MAX_BATCH, DLA_MAX_DIM, DLA_OPS
from cg_export.tensorrt.parser import (
    OLDEST_CHECKABLE,
    RESIZE_COORDINATES,
    RESIZE_MODES,
    RESIZE_NEAREST_MODES,
    support_for,
)
from cg_export.tensorrt.versions import (
    NATIVE_INSTANCENORM_DEFAULT_FROM,
    NATIVE_INSTANCENORM_FLAG_FROM,
    OLDEST_SUPPORTED,
    OLDEST_SUPPORTED_PLATFORM,
    dotted,
    import_tensorrt,
    major_minor,
    tensorrt_version,
)

# Default target when none is given and no TensorRT is installed: the oldest release cg-export builds for, which
# is also the strictest parser.
DEFAULT_TARGET = OLDEST_SUPPORTED


@dataclass(frozen=True)
class Finding:
    """One thing TensorRT (or DLA) of the target version will refuse or handle in a way worth knowing.

    Attributes:
        severity: ``"error"`` (the parser or builder refuses it), ``"warning"`` (it builds, with a cost or a risk),
            ``"note"`` (how cg-export handles it).
        message: What and what to do.
        where: The node (``"Pad 'pad_3'"``) or ``None`` for the whole model.
    """

    severity: str
    message: str
    where: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class CheckReport:
    """Findings of a pre-flight against one TensorRT version.

    Attributes:
        target: ``"TensorRT 8.6"`` (plus `` with DLA``).
        version: The TensorRT version checked against.
        dla: DLA was checked too.
        opset: The model's default-domain opset.
        nodes: Number of nodes.
        findings: Everything found, errors first.
    """

    target: str
    version: tuple[int, ...]
    dla: bool
    opset: int
    nodes: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing would be refused."""
        return not any(f.severity == "error" for f in self.findings)

    def count(self, severity: str) -> int:
        """Number of findings of ``severity``."""
        return sum(f.severity == severity for f in self.findings)


def parse_target(text: str | None) -> tuple[int, ...] | None:
    """The TensorRT version a check judges by: ``"8.6"`` (or ``"trt=8.6"``) -> ``(8, 6)``; ``"trt=10.3.0"`` ->
    ``(10, 3, 0)``; ``None`` or ``"trt"`` -> ``None`` (the installed TensorRT, else the oldest supported).

    Raises:
        OptionError: (field ``trt_version``) not a version, ``trt`` or ``trt=VERSION``.
    """
    text = (text or "trt").strip().lower()
    if text[:1].isdigit():  # a bare version, as --trt-version takes it
        text = f"trt={text}"
    name, _, version = text.partition("=")
    if name not in ("trt", "tensorrt"):
        raise OptionError("trt_version", repr(text), "expected a TensorRT version such as 8.6 (or trt=8.6)")
    if not version:
        return None
    try:
        numbers = tuple(int(part) for part in version.split("."))
    except ValueError:
        numbers = ()
    if not numbers or len(numbers) > 4 or major_minor(numbers) < OLDEST_CHECKABLE:
        raise OptionError("trt_version", repr(text), f"expected a TensorRT version {dotted(OLDEST_CHECKABLE)} or "
                          "newer, such as 8.6 or 10.3")
    return numbers if len(numbers) > 1 else (numbers[0], 0)


def default_version() -> tuple[tuple[int, ...], str]:
    """The installed TensorRT's version, else the oldest cg-export supports; with a word on which it is."""
    try:
        return tensorrt_version(import_tensorrt()), "the installed TensorRT"
    except ImportError:  # not installed (MissingDependencyError is an ImportError) or a broken install
        return DEFAULT_TARGET, (f"no TensorRT here: the oldest cg-export builds for ({OLDEST_SUPPORTED_PLATFORM}); "
                                "name a TensorRT version to check against another")


def check_file(path: str | Path, trt_version: str | None = None, dla: bool = False) -> CheckReport:
    """Pre-flight an ONNX file against a TensorRT version (``"8.6"``; see :func:`parse_target`).

    Raises:
        CgExportError: the file is missing or not ONNX, or the target is malformed.
    """
    path = Path(path)
    version = parse_target(trt_version)
    if not path.is_file():
        raise CgExportError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends for files that are not ONNX
        raise CgExportError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:80]})") from None
    if check_external_data_files(path, model):
        # Constants (scales, zero points, pads) are read from the data files, found beside the model, never in
        # the working directory.
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(path.resolve().parent))
    if version is None:
        version, _ = default_version()
    return check_model(model, version, dla=dla)


def check_model(model: onnx.ModelProto, version: tuple[int, ...], *, dla: bool = False) -> CheckReport:
    """Everything TensorRT ``version`` (and DLA, if ``dla``) would refuse or handle specially in ``model``."""
    release = major_minor(version)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    graph = model.graph
    report = CheckReport(
        f"TensorRT {dotted(release)}" + (" with DLA" if dla else ""), tuple(version), dla, opset,
        len(graph.node),
    )
    add = report.findings.append
    try:
        typed = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is only used for the fp16 InstanceNorm warning; a graph it fails on still checks
        typed = model
    types = {v.name: v.type.tensor_type.elem_type for v in list(typed.graph.value_info) + list(typed.graph.input)}
    constants = _constant_values(graph)
    producers = {output: node for node in graph.node for output in node.output}

    support = support_for(version)
    exact = support.since == release
    if opset > support.max_opset:
        tested = f"the TensorRT {support.since[0]}.{support.since[1]} parser reads opsets up to {support.max_opset}"
        advice = "export with --opset 17" if support.max_opset >= 17 else f"cg-export needs TensorRT {dotted(OLDEST_SUPPORTED)}+ (opset 17)"
        if exact or release < (10, 0):  # 10.x parsers between matrices often read newer opsets
            add(Finding("error", f"opset {opset} is too new: {tested}; {advice}"))
        else:
            add(Finding("warning", f"opset {opset}: {tested}; {dotted(release)} may read it, "
                                   "but --opset 17 is safe everywhere"))
    if opset < support.min_opset:
        add(Finding("error", f"opset {opset} is too old: this TensorRT reads opset {support.min_opset} and newer"))

    for index, node in enumerate(graph.node):
        where = f"{node.op_type} {node.name or f'#{index}'!r}"
        if node.domain not in ("", "ai.onnx"):
            add(Finding("error", f"operator of domain {node.domain!r} needs a TensorRT plugin", where))
            continue
        if node.op_type in support.unsupported:
            add(Finding("error", f"TensorRT {dotted(release)}'s ONNX parser has no {node.op_type}", where))
            continue
        for finding in _node_findings(node, release, constants, types, producers):
            add(Finding(finding[0], finding[1], where))

    if dla:
        _dla_findings(graph, release, constants, add)
    order = {"error": 0, "warning": 1, "note": 2}
    report.findings = sorted(_merge_repeats(report.findings), key=lambda f: order[f.severity])
    return report


def _merge_repeats(findings: list[Finding]) -> list[Finding]:
    """One finding per (severity, message, operator): nine InstanceNorm nodes give one line naming the count."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in findings:
        op = finding.where.split(" ", 1)[0] if finding.where else ""
        groups.setdefault((finding.severity, finding.message, op), []).append(finding)
    merged = []
    for (severity, message, op), group in groups.items():
        if len(group) == 1 or not op:
            merged.extend(group)
        else:
            names = ", ".join(f.where.split(" ", 1)[1] for f in group[:3]) + (", ..." if len(group) > 3 else "")
            merged.append(Finding(severity, message, f"{op} x{len(group)} ({names})"))
    return merged


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _node_findings(
    node: onnx.NodeProto,
    version: tuple[int, int],
    constants: dict[str, np.ndarray],
    types: dict[str, int],
    producers: dict[str, onnx.NodeProto],
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    op = node.op_type
    if op == "Pad":
        mode = _attr(node, "mode", "constant")
        if version < (8, 2) and mode != "constant":
            found.append(("error", f"{mode} padding needs TensorRT 8.2+ (8.0 pads with zeros only)"))
        if mode == "wrap":
            found.append(("error", "wrap padding is not in TensorRT's ONNX parser"))
        if len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
            found.append(("warning", "pads are computed at run time; TensorRT builds faster graphs from constant pads "
                                     "(cg-export onnx writes constant pads)"))
        if len(node.input) > 3 and node.input[3] and node.input[3] not in constants:
            found.append(("error", "Pad axes must be a constant (an initializer)"))
    elif op == "Resize":
        mode = _attr(node, "mode", "nearest")
        coordinates = _attr(node, "coordinate_transformation_mode", "half_pixel")
        nearest = _attr(node, "nearest_mode", "round_prefer_floor")
        if mode not in RESIZE_MODES:
            found.append(("error", f"Resize mode {mode!r}: TensorRT takes nearest and linear"))
        if coordinates not in RESIZE_COORDINATES:
            found.append(("error", f"coordinate_transformation_mode {coordinates!r} is not supported "
                                   f"(supported: {', '.join(sorted(RESIZE_COORDINATES))})"))
        if mode == "nearest" and nearest not in RESIZE_NEAREST_MODES:
            found.append(("error", f"nearest_mode {nearest!r} is not supported"))
        if _attr(node, "antialias", 0):
            found.append(("error", "antialiased Resize is not supported"))
        if _attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            found.append(("error", "Resize keep_aspect_ratio_policy must be 'stretch'"))
    elif op == "InstanceNormalization":
        computed = [name for name in node.input[1:3] if name not in constants]
        if version < NATIVE_INSTANCENORM_FLAG_FROM and computed:
            quantized = any(getattr(producers.get(name), "op_type", "") == "DequantizeLinear" for name in computed)
            found.append(("error", "InstanceNormalization scale and bias must be initializers before TensorRT "
                          f"{dotted(NATIVE_INSTANCENORM_FLAG_FROM)}"
                          + (" (they are quantized: leave InstanceNorm out of quantization)" if quantized else "")))
        if version < NATIVE_INSTANCENORM_FLAG_FROM:
            found.append(("note", "runs as TensorRT's InstanceNormalization_TRT plugin (libnvinfer_plugin); "
                                  "cg-export loads the plugin library when building and running"))
        elif version < NATIVE_INSTANCENORM_DEFAULT_FROM:
            found.append(("note", "8.6 runs InstanceNorm natively only with OnnxParserFlag.NATIVE_INSTANCENORM, "
                                  "which cg-export trt sets (otherwise the plugin is used)"))
        if types.get(node.input[0]) == onnx.TensorProto.FLOAT16:
            found.append(("warning", "InstanceNorm computed in fp16 loses accuracy or overflows its variance; keep "
                                     "it in fp32 (cg-export onnx --fp16 does)"))
    elif op in ("Conv", "ConvTranspose") and version < (8, 5):
        weight = node.input[1] if len(node.input) > 1 else ""
        producer = producers.get(weight)
        if weight not in constants and not (producer is not None and producer.op_type == "DequantizeLinear"):
            found.append(("error", f"{op} weights must be an initializer before TensorRT 8.5"))
    elif op in ("QuantizeLinear", "DequantizeLinear"):
        found.extend(_qdq_findings(node, version, constants))
    return found


def _qdq_findings(
    node: onnx.NodeProto, version: tuple[int, int], constants: dict[str, np.ndarray]
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    scale = node.input[1] if len(node.input) > 1 else ""
    if scale not in constants:
        found.append(("error", "the quantization scale must be a constant (an initializer)"))
    elif np.any(constants[scale] <= 0):
        found.append(("error", "quantization scales must be positive"))
    if len(node.input) < 3 or not node.input[2]:
        if node.op_type == "QuantizeLinear":
            found.append(("warning", "no zero point: ONNX then quantizes to uint8, and TensorRT takes int8 only; "
                                     "give an int8 zero point of 0"))
        return found
    zero_point = constants.get(node.input[2])
    if zero_point is None:
        found.append(("error", "the zero point must be a constant 0 (symmetric quantization)"))
    elif zero_point.dtype == np.uint8:
        found.append(("error", "uint8 quantization: TensorRT takes signed int8 (symmetric, zero point 0); quantize "
                               "activations and weights as QInt8 with symmetric ranges"))
    elif zero_point.dtype == np.int32:
        found.append(("warning", "int32 DequantizeLinear (a quantized bias): TensorRT dequantizes int8 only; "
                                 "cg-export trt folds these into float biases, other tools (trtexec) need that "
                                 "done first (cg_export.export.quantize.fold_bias_dequantization)"))
    elif zero_point.dtype != np.int8:
        found.append(("error", f"{zero_point.dtype} quantization: TensorRT's INT8 path takes int8 zero points"))
    if zero_point is not None and np.any(zero_point != 0):
        found.append(("error", "zero point is not 0: TensorRT supports symmetric quantization only (zero point 0)"))
    return found


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _dla_findings(
    graph: onnx.GraphProto, version: tuple[int, int], constants: dict[str, np.ndarray], add: object
) -> None:
    initializers = {init.name for init in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = _dims(value)
        dynamic = [i for i, d in enumerate(dims) if d is None]
        if dynamic:
            add(Finding("warning", f"input {value.name!r} has dynamic dimensions {dynamic}: DLA runs one static shape, "
                                   "so the engine must be built with min = opt = max (cg-export trt --dla-core does; "
                                   "pass one shape with --opt-shape)"))
        if any(d is not None and d > DLA_MAX_DIM for d in dims[1:]):
            add(Finding("error", f"input {value.name!r} {dims}: DLA takes dimensions up to {DLA_MAX_DIM}"))
        if dims and dims[0] is not None and dims[0] > DLA_MAX_BATCH:
            add(Finding("error", f"input {value.name!r}: DLA takes batches up to {DLA_MAX_BATCH}"))
    fallback: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type not in DLA_OPS:
            fallback[node.op_type] += 1
        elif node.op_type == "Resize" and not _dla_resize_ok(node, constants):
            fallback["Resize (not nearest with integer scales 1-32)"] += 1
    has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
    if has_qdq and version < DLA_EXPLICIT_QUANTIZATION_FROM:
        add(Finding("warning", "DLA on TensorRT 8.x does not take explicit (Q/DQ) quantization: the quantized "
                               "layers run on the GPU; TensorRT 10 (JetPack 6.1+) does"))
    if fallback:
        total = sum(fallback.values())
        listed = ", ".join(f"{op} x{n}" for op, n in fallback.most_common())
        add(Finding("warning", f"{total} of {len(graph.node)} nodes cannot run on DLA and fall back to the GPU "
                               f"({listed}); every switch between DLA and GPU copies the activations"))


def _dla_resize_ok(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    if _attr(node, "mode", "nearest") != "nearest":
        return False
    scales = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is None or scales.size != 4:
        return False
    return bool(np.all(scales[:2] == 1) and np.all(scales[2:] == np.round(scales[2:])) and
                np.all((scales[2:] >= 1) & (scales[2:] <= 32)))
