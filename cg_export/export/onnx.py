"""Checkpoint -> verified ONNX model.

The exporter is ``torch.onnx.export(..., dynamo=True)``: it gives a clean graph of Conv / Pad (constant pads) /
InstanceNormalization / ConvTranspose or Resize / Add / Relu / Tanh with no shape arithmetic, which is what
TensorRT's parser and ONNX Runtime's fusions want. The TorchScript exporter, by contrast, computes every
reflection pad's amounts at run time (ConstantOfShape/Slice/Concat chains, ~110 extra nodes on a 9-block
generator); ``tests/cg_export/export/test_export_onnx.py`` pins that choice.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from torch import nn

from cg_export import __version__
from cg_export.errors import CgExportError, OptionError
from cg_export.export.defaults import (
    DEFAULT_CALIBRATION_METHOD,
    DEFAULT_OPSET,
    MAX_BATCH,
    MAX_OPSET,
    VERIFY_PHOTOS_LIMIT,
)
from cg_export.files import atomic_output
from cg_export.images import RGB_INPUT, model_input_kind
from cg_export.metadata import UINT8_LAYOUT, UINT8_RANGE, ArtifactMetadata, onnx_props, write_onnx_metadata
from cg_export.models import LoadedGenerator, load_generator
from cg_export.parity import ParityReport, check_parity, measure_parity, photograph_batches
from cg_export.sizes import verification_sizes

if TYPE_CHECKING:
    from cg_export.export.run import ExportRequest

INPUT_NAME = "input"
OUTPUT_NAME = "output"

# Ops whose opset-17 and opset-18 definitions coincide for the way our generators use them: Pad-18 only adds an
# optional ``axes`` input, Resize-18 two attributes that we check are at their defaults. TensorRT 8.5/8.6
# (JetPack 5/6) parse up to opset 17, so the exporter's opset-18 graph is relabelled rather than rebuilt.
_OPSET17_SAFE_OPS = {
    "Conv", "ConvTranspose", "Pad", "InstanceNormalization", "BatchNormalization", "Relu", "LeakyRelu", "Add",
    "Tanh", "Resize", "Concat", "Constant", "Identity", "Cast", "Mul", "Sub", "Div", "QuantizeLinear",
    "DequantizeLinear", "Sqrt", "Gemm", "MatMul", "Reshape", "Shape", "Squeeze", "Unsqueeze", "ReduceSum",
    "Gather",
}
# Reduce ops whose opset-18 form takes ``axes`` as an input where opset 17 has an attribute (U-GAT-IT's LIN).
_AXES_TO_ATTRIBUTE_OPS = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"}


@dataclass
class OnnxExport:
    """What :func:`export_onnx` produced.

    Attributes:
        path: The ONNX file written.
        generator: The source generator and its provenance.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        opset: The ONNX opset of the graph.
        export_seconds: Time to trace, convert and save (verification excluded).
        parity: Parity against PyTorch, or ``None`` with verification off.
        notes: What the user should know (e.g. calibration photographs that could not be read).
    """

    path: Path
    generator: LoadedGenerator
    precision: str
    opset: int
    export_seconds: float
    parity: ParityReport | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OnnxExportOptions:
    """How :func:`export_onnx` exports, verifies and writes a generator; every default is the exporter's.

    Attributes:
        opset: ONNX opset, 17 (readable by TensorRT 8.5+) to :data:`~cg_export.export.defaults.MAX_OPSET`.
        static_size: Fix height and width ``(H, W)``; ``None`` keeps them dynamic.
        batch: Fix the batch size; ``None`` keeps it dynamic.
        fp16: Half-precision weights and activations, InstanceNorm kept in fp32, float32 inputs and outputs.
        int8: Static int8 quantization in QDQ form (see :mod:`cg_export.export.quantize`); needs ``calib``.
        calib: Folder of photographs to calibrate int8 on (the user's own; never random noise).
        calib_method: ``minmax``, ``entropy`` or ``percentile`` (the default recipe's).
        uint8_io: Take uint8 NHWC RGB and return uint8 NHWC RGB (scaling, layout and rounding in the graph), so an
            application can pass camera bytes straight in; verified within one grey level of the float pipeline.
        verify: Compare ONNX Runtime with PyTorch before the file is kept.
        verify_photos: A folder of the user's own photographs to verify on as well as the bundled ones (up to
            :data:`VERIFY_PHOTOS_LIMIT` of them, at the first verification size).
        threads: CPU threads for verification (ONNX Runtime and PyTorch); ``None`` is
            :func:`cg_export.threads.default_threads`.
        min_psnr_db: Lowest acceptable PSNR; ``None`` uses the precision's default (50 dB fp32, 40 dB fp16,
            30 dB int8; :data:`cg_export.parity.DEFAULT_MIN_PSNR`).
        trace_cache: Where to keep and find traced graphs (:class:`TraceCache`), for a caller exporting one
            generator several times; ``None`` traces every time.
        arch: Force the architecture of a checkpoint source (see ``load_generator``).

    Raises:
        CgExportError: options that contradict each other (``fp16`` with ``int8``, ``int8`` without ``calib``,
            ``calib`` without ``int8``) or are out of range (opset, batch, size, threads), and folders that do not
            exist; all found when the options are made, before any checkpoint is loaded.
    """

    opset: int = DEFAULT_OPSET
    static_size: tuple[int, int] | None = None
    batch: int | None = None
    fp16: bool = False
    int8: bool = False
    calib: Path | None = None
    calib_method: str = DEFAULT_CALIBRATION_METHOD
    uint8_io: bool = False
    verify: bool = True
    min_psnr_db: float | None = None
    verify_photos: Path | None = None
    threads: int | None = None
    trace_cache: TraceCache | None = field(default=None, compare=False, repr=False)
    arch: str | None = None

    @classmethod
    def from_request(cls, request: ExportRequest) -> OnnxExportOptions:
        """The options an :class:`~cg_export.export.ExportRequest` (the formats table's common words) asks for."""
        return cls(fp16=request.precision == "fp16", int8=request.precision == "int8",
                   calib=request.calibration if request.precision == "int8" else None, verify=request.verify,
                   min_psnr_db=request.min_psnr_db, threads=request.threads, arch=request.arch)

    def __post_init__(self) -> None:
        if not isinstance(self.opset, int) or not DEFAULT_OPSET <= self.opset <= MAX_OPSET:
            raise OptionError("opset", self.opset, f"choose {DEFAULT_OPSET} (TensorRT 8.5+) to {MAX_OPSET}, the "
                              "opsets this exporter writes as asked")
        if self.batch is not None and not 1 <= self.batch <= MAX_BATCH:
            raise OptionError("batch", self.batch, f"a fixed batch is 1 to {MAX_BATCH}; leave it out for a "
                              "dynamic batch")
        if self.static_size is not None and (len(self.static_size) != 2 or min(self.static_size) < 1):
            raise OptionError("static_size", self.static_size, "expected a positive HEIGHTxWIDTH such as 256x256")
        if self.threads is not None and self.threads < 1:
            raise OptionError("threads", self.threads, "expected 1 or more")
        if self.min_psnr_db is not None and math.isnan(self.min_psnr_db):
            raise OptionError("min_psnr_db", self.min_psnr_db, "expected a number of dB")
        if self.fp16 and self.int8:
            raise OptionError("int8", None, "choose one of {fp16} and {int8}")
        if self.int8 and self.calib is None:
            raise OptionError("int8", None, "{int8} needs {calib} DIR: a folder of your own photographs (int8 is never calibrated on "
                              "noise)")
        if self.calib is not None and not self.int8:
            raise OptionError("calib", None, "{calib} only applies with {int8}")
        for name in ("calib", "verify_photos"):
            folder = getattr(self, name)
            if folder is None:
                continue
            object.__setattr__(self, name, Path(folder))
            if not Path(folder).is_dir():
                raise OptionError(name, folder, "no such folder; point it at a folder of your own photographs")
        if self.verify_photos is not None and not self.verify:
            raise OptionError("verify_photos", None, "{verify_photos} needs verification; leave {verify} on")

    @property
    def precision(self) -> str:
        """``"int8"``, ``"fp16"`` or ``"fp32"``."""
        return "int8" if self.int8 else "fp16" if self.fp16 else "fp32"


def export_onnx(
    checkpoint: str | Path | LoadedGenerator,
    output: str | Path | None = None,
    options: OnnxExportOptions | None = None,
) -> OnnxExport:
    """Export a generator checkpoint to ONNX and verify it against PyTorch on real photographs.

    Args:
        checkpoint: Any checkpoint :func:`cg_export.models.load_generator` accepts, or one already loaded.
        output: The ``.onnx`` path; ``None`` writes ``<checkpoint stem>[_fp16].onnx`` beside the checkpoint.
        options: Precision, shapes and verification; ``None`` is ``OnnxExportOptions()`` (fp32, opset 17, dynamic
            shapes, verified).

    Returns:
        What was written and how well it matches.

    Raises:
        CheckpointError, ArchitectureError: the checkpoint cannot be used.
        ParityError: verification failed; nothing was written.
    """
    options = OnnxExportOptions() if options is None else options
    opset, static_size, batch, verify = options.opset, options.static_size, options.batch, options.verify
    generator = checkpoint if isinstance(checkpoint, LoadedGenerator) else load_generator(checkpoint, arch=options.arch)
    if options.uint8_io and model_input_kind(generator.config) != RGB_INPUT:
        raise OptionError("uint8_io", None, f"{{uint8_io}} takes RGB camera bytes; this {generator.description} does not take RGB")
    precision = options.precision
    output = Path(output) if output is not None else default_output_path(generator.path, precision)
    if output.resolve() == generator.path.resolve():
        raise CgExportError(f"{output}: the output would overwrite the checkpoint; choose another -o")
    multiple = generator.model.size_multiple
    fixed_size = getattr(generator.model, "fixed_size", None)
    if fixed_size is not None:
        # U-GAT-IT's full model flattens its feature map into an MLP: it only runs at its training size.
        if static_size is not None and tuple(static_size) != tuple(fixed_size):
            raise OptionError("static_size", tuple(static_size), f"this {generator.description} only runs at "
                              f"{fixed_size[0]}x{fixed_size[1]}")
        static_size = tuple(fixed_size)
    if static_size is not None and (static_size[0] % multiple or static_size[1] % multiple):
        raise OptionError("static_size", tuple(static_size), f"sizes must be multiples of {multiple}")

    # The temporary file is made first: an output that cannot be written is refused before the slow work, and a
    # signal at any stage names the output it stopped.
    with atomic_output(output) as tmp:
        notes: list[str] = []
        started = time.perf_counter()
        model = to_onnx_graph(generator.model, opset=opset, static_size=static_size, batch=batch,
                              cache=options.trace_cache)
        written = graph_opset(model)
        if written != opset:  # never print one opset and write another
            raise OptionError("opset", opset, f"this exporter wrote opset {written} instead; choose another {{opset}}")
        if options.fp16:
            from cg_export.export.precision import convert_to_fp16

            model = convert_to_fp16(model)
        next_step = None
        if options.int8:
            from cg_export.export.quantize import DEFAULT_RECIPE, calibration_batches, int8_next_step, quantize_int8

            recipe = replace(DEFAULT_RECIPE, calibration_method=options.calib_method)
            skipped: list[str] = []
            images = list(calibration_batches(options.calib, size=verification_sizes(multiple)[0][0],
                                              kind=model_input_kind(generator.config), skipped=skipped))
            if skipped:
                more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
                notes.append(f"--calib: skipped {len(skipped)} unreadable file(s): {', '.join(skipped[:5])}{more}")
            model = quantize_int8(model, images, recipe, progress=True)
            next_step = int8_next_step(options.calib_method, len(images))
        add_metadata(model, generator, precision)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))
        export_seconds = time.perf_counter() - started
        parity = None
        if verify:
            sizes = [static_size] if static_size else verification_sizes(multiple)
            kind = model_input_kind(generator.config)
            inputs = photograph_batches(sizes, batch or 2, input_kind=kind)
            if options.verify_photos is not None:
                inputs += folder_batches(options.verify_photos, sizes[0], batch or 2, kind=kind)
            parity = verify_against_torch(generator.model, tmp, sizes, batch or 2, inputs=inputs,
                                          threads=options.threads)
            check_parity(parity, precision, min_psnr_db=options.min_psnr_db, next_step=next_step)
        if options.uint8_io:
            wrapped = wrap_uint8_io(model)
            onnx.checker.check_model(wrapped, full_check=True)
            onnx.save(wrapped, str(tmp))
            if verify:
                check_uint8_io(generator.model, tmp, [static_size] if static_size else verification_sizes(multiple),
                               batch or 2, precision)
    return OnnxExport(output, generator, precision, opset, export_seconds, parity, notes)


UINT8_INPUT = "image"
UINT8_OUTPUT = "stylized"


def wrap_uint8_io(model: onnx.ModelProto) -> onnx.ModelProto:
    """Wrap a float NCHW [-1, 1] generator graph so it takes and returns uint8 NHWC RGB images.

    Inside the graph: cast, NHWC->NCHW, ``x / 127.5 - 1``; after the generator ``(y + 1) * 127.5``, clip to
    [0, 255], round half to even (as :func:`cg_export.images.to_uint8`), cast to uint8, NCHW->NHWC.
    """
    from onnx import TensorProto, helper, numpy_helper

    wrapped = onnx.ModelProto.FromString(model.SerializeToString())
    graph = wrapped.graph
    old_in, old_out = graph.input[0].name, graph.output[0].name
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    constants = {
        "uint8_io_scale": np.array(127.5, np.float32), "uint8_io_one": np.array(1.0, np.float32),
        "uint8_io_zero": np.array(0.0, np.float32), "uint8_io_max": np.array(255.0, np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    head = [
        helper.make_node("Cast", [UINT8_INPUT], ["uint8_io_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["uint8_io_float"], ["uint8_io_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Div", ["uint8_io_nchw", "uint8_io_scale"], ["uint8_io_half"]),
        helper.make_node("Sub", ["uint8_io_half", "uint8_io_one"], [old_in]),
    ]
    tail = [
        helper.make_node("Add", [old_out, "uint8_io_one"], ["uint8_io_shifted"]),
        helper.make_node("Mul", ["uint8_io_shifted", "uint8_io_scale"], ["uint8_io_levels"]),
        helper.make_node("Clip", ["uint8_io_levels", "uint8_io_zero", "uint8_io_max"], ["uint8_io_clipped"]),
        helper.make_node("Round", ["uint8_io_clipped"], ["uint8_io_rounded"]),
        helper.make_node("Cast", ["uint8_io_rounded"], ["uint8_io_bytes"], to=TensorProto.UINT8),
        helper.make_node("Transpose", ["uint8_io_bytes"], [UINT8_OUTPUT], perm=[0, 2, 3, 1]),
    ]
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    nhwc = [dims[0], dims[2], dims[3], dims[1]]
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(UINT8_INPUT, TensorProto.UINT8, nhwc))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(UINT8_OUTPUT, TensorProto.UINT8, nhwc))
    del graph.value_info[:]
    recorded = ArtifactMetadata.from_props(onnx_props(wrapped))
    write_onnx_metadata(wrapped, replace(recorded, layout=UINT8_LAYOUT, value_range=UINT8_RANGE))
    return wrapped


def check_uint8_io(model: nn.Module, onnx_path: Path, sizes: list[tuple[int, int]], photos_per_batch: int,
                   precision: str) -> None:
    """The uint8 graph on photographs must be within one grey level of PyTorch's float output, rounded."""
    from cg_export.backends.onnxruntime import import_onnxruntime
    from cg_export.errors import ParityError
    from cg_export.images import to_uint8
    from cg_export.threads import ThreadSettings

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ThreadSettings.resolve().apply_to_onnxruntime(options)  # the usable cores, waiting passively (cg_export.threads)
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    for label, batch in photograph_batches(sizes, photos_per_batch):
        images = np.rint((batch + 1.0) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)
        with torch.inference_mode():
            expected = to_uint8(model(torch.from_numpy(batch)).numpy())
        got = session.run(None, {UINT8_INPUT: np.ascontiguousarray(images)})[0]
        worst = int(np.abs(got.astype(np.int16) - expected.astype(np.int16)).max())
        limit = 1 if precision == "fp32" else 255
        if worst > limit:
            raise ParityError(f"uint8 I/O graph differs from the float pipeline by {worst} grey levels on {label}",
                              None)


def default_output_path(checkpoint: Path, precision: str) -> Path:
    """``g.pt`` -> ``g.onnx`` (fp32) or ``g_fp16.onnx``, beside the checkpoint."""
    suffix = "" if precision == "fp32" else f"_{precision}"
    return checkpoint.with_name(f"{checkpoint.stem}{suffix}.onnx")


def folder_batches(folder: Path, size: tuple[int, int], photos_per_batch: int,
                   limit: int = VERIFY_PHOTOS_LIMIT, kind: str = "rgb") -> list[tuple[str, np.ndarray]]:
    """The first ``limit`` photographs of ``folder`` (sorted, recursive), fitted to ``size``, in full batches, as
    ``kind`` (:func:`cg_export.images.model_input_kind`) makes them for the model.

    Raises:
        CgExportError: the folder holds no readable image.
    """
    from cg_export.errors import ImageError
    from cg_export.export.quantize import find_calibration_images
    from cg_export.images import fit_to_size, load_image, to_model_input

    try:
        files = find_calibration_images(folder)
    except OptionError as exc:  # the same folder checks as --calib's, about this field
        raise OptionError("verify_photos", exc.value, exc.message) from None
    photos, unreadable = [], []
    for path in files:
        if len(photos) == limit:
            break
        try:
            photos.append((path.name, fit_to_size(load_image(path), *size)))
        except ImageError:
            unreadable.append(path.name)
    if not photos:
        raise OptionError("verify_photos", folder, f"none of its {len(files)} images could be read")
    batches = []
    for start in range(0, len(photos), photos_per_batch):
        # The last batch is filled up from the first photographs: a fixed-batch model takes only full batches.
        group = [photos[(start + i) % len(photos)] for i in range(photos_per_batch)]
        names = "+".join(name for name, _ in group)
        batches.append((f"{names} @ {size[0]}x{size[1]}", to_model_input([image for _, image in group], kind)))
    return batches


def graph_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset of a graph."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def verify_against_torch(
    model: nn.Module, onnx_path: Path, sizes: list[tuple[int, int]], photos_per_batch: int = 2,
    inputs: list[tuple[str, np.ndarray]] | None = None, threads: int | None = None,
) -> ParityReport:
    """ONNX Runtime (CPU) vs the PyTorch generator on real photographs at each size.

    Args:
        model: The PyTorch generator (the reference).
        onnx_path: The exported file.
        sizes: ``(height, width)`` of the bundled photographs' batches.
        photos_per_batch: Photographs per batch.
        inputs: Batches to use instead of the bundled photographs at ``sizes``.
        threads: CPU threads for both runtimes; ``None`` is :func:`cg_export.threads.default_threads`.
    """
    from cg_export.backends.onnxruntime import OnnxRuntimeRunner
    from cg_export.backends.torch import TorchRunner
    from cg_export.threads import default_threads

    if inputs is None:
        inputs = photograph_batches(sizes, photos_per_batch, input_kind=model_input_kind(model.config))
    threads = default_threads() if threads is None else threads
    with TorchRunner(model, threads=threads) as reference, OnnxRuntimeRunner(
        onnx_path, providers=["CPUExecutionProvider"], threads=threads
    ) as runner:
        return measure_parity(reference, runner, inputs)


class TraceCache:
    """The graphs of the last few traces of a program that exports one generator several times.

    A trace takes seconds even for a tiny generator, and ``cg-export deploy`` asks for the same graph for fp32,
    fp16 and int8. Graphs are kept serialized, keyed by everything the trace depends on (the module's class,
    structure, plain attributes, every parameter and buffer, and the arguments), and each caller gets its own copy
    to change. Whoever wants the reuse makes one and passes it down (:attr:`OnnxExportOptions.trace_cache`); it is
    freed with its owner.

    Args:
        entries: Graphs kept, least recently used dropped first.
        max_bytes: A bigger graph is traced again rather than held in memory.
    """

    def __init__(self, entries: int = 4, max_bytes: int = 256 << 20):
        self.entries = entries
        self.max_bytes = max_bytes
        self._graphs: dict[str, bytes] = {}  # oldest first

    def __len__(self) -> int:
        return len(self._graphs)

    def graph(self, model: nn.Module, opset: int, static_size: tuple[int, int] | None,
              batch: int | None) -> onnx.ModelProto:
        """The graph of ``model`` traced with these arguments: a copy of a kept one, or a new trace (kept)."""
        key = _trace_key(model, opset, static_size, batch)
        cached = self._graphs.pop(key, None)
        if cached is not None:
            self._graphs[key] = cached  # most recently used last
            return onnx.load_from_string(cached)
        graph = _trace(model, opset, static_size, batch)
        serialized = graph.SerializeToString()
        if len(serialized) <= self.max_bytes:
            self._graphs[key] = serialized
            while len(self._graphs) > self.entries:
                self._graphs.pop(next(iter(self._graphs)))
        return graph


def to_onnx_graph(
    model: nn.Module,
    opset: int = DEFAULT_OPSET,
    static_size: tuple[int, int] | None = None,
    batch: int | None = None,
    cache: TraceCache | None = None,
) -> onnx.ModelProto:
    """Trace a generator into an in-memory ONNX model with NCHW float32 input ``input`` and output ``output``.

    Args:
        model: The generator (put in eval mode, otherwise not modified).
        opset: Target opset (17 or newer).
        static_size: ``(H, W)`` to fix, or ``None`` for dynamic height and width.
        batch: Batch size to fix, or ``None`` for a dynamic batch.
        cache: Reuse a graph traced earlier with the same weights and arguments (see :class:`TraceCache`);
            ``None`` traces.
    """
    if opset < DEFAULT_OPSET:
        raise OptionError("opset", opset, f"the oldest opset supported is {DEFAULT_OPSET}")
    model.eval()
    if cache is None:
        return _trace(model, opset, static_size, batch)
    return cache.graph(model, opset, static_size, batch)


def _trace_key(model: nn.Module, opset: int, static_size: tuple[int, int] | None, batch: int | None) -> str:
    """A digest of everything a trace of ``model`` depends on: equal keys give identical graphs."""
    digest = hashlib.sha256()
    digest.update(repr((type(model).__module__, type(model).__qualname__, str(model), opset,
                        None if static_size is None else tuple(static_size), batch)).encode())
    for module in model.modules():  # plain attributes that forward() may read (flags, sizes, kinds)
        plain = {k: v for k, v in sorted(vars(module).items())
                 if not k.startswith("_") and isinstance(v, (bool, int, float, str, tuple, type(None)))}
        digest.update(repr((type(module).__qualname__, plain, getattr(module, "config", None))).encode())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        data = tensor.detach().cpu().contiguous()
        digest.update(repr((name, str(data.dtype), tuple(data.shape))).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def _trace(
    model: nn.Module,
    opset: int,
    static_size: tuple[int, int] | None,
    batch: int | None,
) -> onnx.ModelProto:
    multiple = model.size_multiple
    # Example sizes avoid 1 anywhere inside the network: torch.export specialises dimensions that are 1.
    height, width = static_size or (2 * max(multiple, 32), 2 * max(multiple, 32))
    # Its own generator: only the example's shape matters, and a cached trace must leave the global RNG as a
    # fresh one would.
    example = torch.randn(batch or 2, getattr(model, "config", {}).get("in_channels", 3), height, width,
                          generator=torch.Generator().manual_seed(0))
    dims: dict[int, Any] = {}
    if batch is None:
        dims[0] = torch.export.Dim("batch", min=1, max=4096)
    if static_size is None:
        dims[2] = torch.export.Dim("height_blocks", min=1, max=65536 // multiple) * multiple
        dims[3] = torch.export.Dim("width_blocks", min=1, max=65536 // multiple) * multiple
    with _quiet_exporter():
        program = torch.onnx.export(
            model.eval(),
            (example,),
            None,
            dynamo=True,
            opset_version=max(opset, 18),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": dims} if dims else None,
            optimize=True,
            verbose=False,
        )
    graph = program.model_proto
    _name_dynamic_dims(graph)
    if opset == 17:
        _relabel_as_opset17(graph)
    return graph


class _quiet_exporter:
    """Silence the dynamo exporter's progress prints and warnings (they are noise to a CLI user)."""

    def __enter__(self) -> None:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._levels = {}
        for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript"):
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.ERROR)
        import contextlib
        import io

        self._stdout = contextlib.redirect_stdout(io.StringIO())
        self._stdout.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._stdout.__exit__(*exc)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._warnings.__exit__(*exc)


def _name_dynamic_dims(model: onnx.ModelProto) -> None:
    # The exporter names dims after its symbols ("4*height_blocks"); users and TensorRT profiles see these names.
    names = ("batch", None, "height", "width")
    symbols = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    for value in (model.graph.input[0], model.graph.output[0]):
        for dim, name, symbol in zip(value.type.tensor_type.shape.dim, names, symbols):
            if name and dim.HasField("dim_param"):
                # An output that is not the input's size (PyTorch-GAN's grey-scale models: 8 px smaller) keeps
                # its expression, in the input's names: "height - 8".
                dim.dim_param = name if dim.dim_param == symbol else dim.dim_param.replace(symbol, name)
    del model.graph.value_info[:]


def _relabel_as_opset17(model: onnx.ModelProto) -> None:
    constants = {init.name: init for init in model.graph.initializer}
    unsafe = {n.op_type for n in model.graph.node} - _OPSET17_SAFE_OPS - _AXES_TO_ATTRIBUTE_OPS
    if unsafe:
        raise OptionError("opset", 17, f"not possible for this graph (ops {sorted(unsafe)}); use {{opset}} 18")
    for node in model.graph.node:
        if node.op_type == "Resize":
            kept = [a for a in node.attribute if a.name not in ("antialias", "keep_aspect_ratio_policy")]
            dropped = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute if a not in kept}
            if dropped.get("antialias", 0) != 0 or dropped.get("keep_aspect_ratio_policy", b"stretch") != b"stretch":
                raise OptionError("opset", 17, "Resize uses opset-18 features; use {opset} 18")
            del node.attribute[:]
            node.attribute.extend(kept)
        if node.op_type == "Pad" and len(node.input) > 3:
            raise OptionError("opset", 17, "Pad uses the opset-18 axes input; use {opset} 18")
        if node.op_type in _AXES_TO_ATTRIBUTE_OPS:
            if any(a.name == "noop_with_empty_axes" and a.i for a in node.attribute):
                raise OptionError("opset", 17, f"{node.op_type} uses noop_with_empty_axes; use {{opset}} 18")
            kept = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
            if len(node.input) > 1 and node.input[1]:
                if node.input[1] not in constants:
                    raise OptionError("opset", 17, f"{node.op_type} has computed axes; use {{opset}} 18")
                axes = onnx.numpy_helper.to_array(constants[node.input[1]]).astype(int).tolist()
                kept.append(onnx.helper.make_attribute("axes", axes))
                del node.input[1:]
            del node.attribute[:]
            node.attribute.extend(kept)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 17


def add_metadata(model: onnx.ModelProto, generator: LoadedGenerator, precision: str) -> None:
    """Record provenance in ``metadata_props`` (visible in Netron) so every later tool can find its reference."""
    model.producer_name = "cg-export"
    model.producer_version = __version__
    model.doc_string = f"CycleGAN generator {generator.description}, exported by cg-export {__version__}"
    write_onnx_metadata(model, ArtifactMetadata(
        precision=precision,
        size_multiple=generator.model.size_multiple,
        architecture=generator.config,
        source_checkpoint=str(generator.path.resolve()),
        source_sha256=generator.weights_sha256 or generator.sha256,
        source_format=generator.source_format,
        toolkit_version=__version__,
    ))
