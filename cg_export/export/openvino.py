"""Checkpoint or ONNX model -> verified OpenVINO IR (``.xml`` + ``.bin``).

A checkpoint goes through the verified ONNX export first (:func:`cg_export.export.onnx.export_onnx`), so the IR
is the same graph every other runtime runs; an ``.onnx`` (fp32, fp16 or our int8 QDQ file) is converted as it is.
OpenVINO's guidance for quantized ONNX models is to convert the QDQ graph directly: its frontend turns each
``QuantizeLinear``/``DequantizeLinear`` pair into a ``FakeQuantize`` and the CPU plugin's low-precision
transformations run the quantized convolutions in integer kernels, so one calibration serves ONNX Runtime, TensorRT
and OpenVINO alike.

The IR carries cg-export's metadata in ``rt_info`` (precision, I/O layout, size multiple, architecture, source
checkpoint and its hash), is checked against PyTorch (checkpoint source) or ONNX Runtime (ONNX source) on real
photographs at each precision's floor, and is written only when it passes: ``.bin`` first, then ``.xml`` (the file
tools open), each replaced atomically.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cg_export.backends.openvino import ExecutionReport, OpenVinoRunner, import_openvino, write_rt_info
from cg_export.errors import CgExportError, OptionError
from cg_export.files import atomic_output, sha256_of
from cg_export.formats import format_named, format_of_suffix
from cg_export.metadata import ArtifactMetadata, is_staging_path, read_onnx_metadata
from cg_export.parity import ParityReport, check_parity, compare_outputs, measure_parity, photograph_batches
from cg_export.threads import ThreadSettings, check_threads

if TYPE_CHECKING:
    from cg_export.export.run import ExportRequest

# A uint8-io model returns whole grey levels: one level is its fp32 floor (as the ONNX uint8 check); the margin
# absorbs the float rounding of a level expressed in [-1, 1].
UINT8_LEVEL = 1.0 / 127.5 * 1.001


@dataclass
class OpenVinoExport:
    """What :func:`export_openvino` produced.

    Attributes:
        path: The ``.xml`` written (its ``.bin`` beside it).
        precision: ``fp32``, ``fp16`` (fp16-compressed weights) or ``int8`` (from a QDQ model).
        reference: What the IR was verified against (``PyTorch`` or ``ONNX Runtime``).
        openvino_version: The OpenVINO that converted it.
        execution: The kernels the verification run compiled on the CPU.
        parity: Parity against the reference, or ``None`` with verification off.
        export_seconds: Time to convert and save (verification excluded).
        notes: Things worth telling the user (an int8 model that runs no integer kernel ...).
    """

    path: Path
    precision: str
    reference: str
    openvino_version: str
    execution: ExecutionReport | None
    parity: ParityReport | None
    export_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def weights_path(self) -> Path:
        """The ``.bin`` beside the ``.xml``."""
        return self.path.with_suffix(".bin")


def default_ir_path(source: Path, precision: str) -> Path:
    """``g.pt`` -> ``g_openvino/g.xml``; ``g.pt --fp16`` -> ``g_fp16_openvino/g_fp16.xml``, beside the source."""
    stem = source.stem
    if precision == "fp16" and not stem.endswith("_fp16"):
        stem += "_fp16"
    return source.with_name(f"{stem}_openvino") / f"{stem}.xml"


def resolve_ir_path(output: str | Path | None, source: Path, precision: str) -> Path:
    """The ``.xml`` to write: ``output`` when it names one, ``output/<stem>.xml`` for a folder, else the default."""
    if output is None:
        return default_ir_path(source, precision)
    output = Path(output)
    if format_of_suffix(output.suffix) is format_named("openvino"):
        return output
    if output.suffix and not output.is_dir():
        raise CgExportError(f"{output}: an OpenVINO IR is a .xml file (with its .bin) or a folder to hold them")
    return output / default_ir_path(source, precision).name


@dataclass(frozen=True)
class OpenVinoExportOptions:
    """How :func:`export_openvino` converts, verifies and writes an IR; every default is the exporter's.

    Attributes:
        fp16: Compress float weights to fp16 (half the file; GPU and NPU compute in fp16, the CPU decompresses).
        uint8_io: For a checkpoint source: take and return uint8 NHWC RGB (see ``cg-export onnx --uint8-io``).
            An ``.onnx`` source keeps the I/O it was exported with.
        arch: Force the architecture of a checkpoint source.
        verify: Compare the IR with the reference before it is kept.
        min_psnr_db: Lowest acceptable PSNR; ``None`` uses the precision's floor (50 dB fp32, 40 dB fp16,
            30 dB int8).
        threads: CPU threads of the export check and the verification (every runtime alike); ``None``:
            :func:`cg_export.threads.default_threads`.

    Raises:
        OptionError: ``threads`` below 1 (checked when the options are made, before minutes of conversion).
    """

    fp16: bool = False
    uint8_io: bool = False
    arch: str | None = None
    verify: bool = True
    min_psnr_db: float | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        check_threads(self.threads, "threads")

    @classmethod
    def from_request(cls, request: ExportRequest) -> OpenVinoExportOptions:
        """The options an :class:`~cg_export.export.ExportRequest` asks for. An IR's int8 comes from the QDQ ONNX
        file it converts (the precision matrix's ``made_from``), so only fp16 is a conversion setting here."""
        return cls(fp16=request.precision == "fp16", arch=request.arch, verify=request.verify,
                   min_psnr_db=request.min_psnr_db, threads=request.threads)

    @property
    def precision(self) -> str:
        """What the options alone ask for: ``fp16`` or ``fp32`` (an int8 IR is an fp32 conversion of a QDQ file)."""
        return "fp16" if self.fp16 else "fp32"


def export_openvino(
    source: str | Path,
    output: str | Path | None = None,
    options: OpenVinoExportOptions | None = None,
) -> OpenVinoExport:
    """Convert a generator checkpoint or an ``.onnx`` model to OpenVINO IR and verify it on real photographs.

    Args:
        source: A checkpoint :func:`cg_export.models.load_generator` accepts, or an ``.onnx`` cg-export wrote
            (fp32, fp16, int8 QDQ, ``--uint8-io``).
        output: The ``.xml``, or a folder to write ``<stem>.xml`` and ``<stem>.bin`` into; ``None`` writes
            ``<stem>[_fp16]_openvino/`` beside the source.
        options: Precision, I/O and verification (``None``: :class:`OpenVinoExportOptions` defaults).

    Returns:
        What was written and how well it matches.

    Raises:
        CheckpointError, ArchitectureError: the checkpoint cannot be used.
        BackendError: the ONNX file cannot be read or converted.
        ParityError: verification failed; nothing was written.
    """
    options = options or OpenVinoExportOptions()
    fp16, uint8_io, arch, verify, min_psnr_db, threads = (options.fp16, options.uint8_io, options.arch, options.verify,
                                                          options.min_psnr_db, options.threads)
    source = Path(source)
    ov = import_openvino()
    if not source.is_file():
        raise CgExportError(f"{source}: no such file")
    is_onnx = format_of_suffix(source.suffix) is format_named("onnx")
    if is_onnx and uint8_io:
        raise CgExportError(f"{source}: an .onnx keeps the I/O it was exported with; for uint8 I/O export it with "
                            "cg-export onnx --uint8-io, or convert the checkpoint")
    if is_onnx and arch is not None:
        raise OptionError("arch", None, "{arch} applies to checkpoint sources only")
    # The output is settled before anything is exported, so a bad -o fails in a second, not after an export.
    source_precision = read_onnx_metadata(source).precision if is_onnx else "fp32"
    precision = "fp16" if fp16 and source_precision == "fp32" else source_precision
    final = resolve_ir_path(output, source, precision)
    if source.resolve() in (final.resolve(), final.with_suffix(".bin").resolve()):
        raise CgExportError(f"{final}: the output would overwrite the source; choose another -o")
    with tempfile.TemporaryDirectory(prefix="cg-export-openvino-") as scratch:
        if is_onnx:
            onnx_path, reference = source, "ONNX Runtime"
            generator = None
        else:
            from cg_export.export.onnx import OnnxExportOptions, export_onnx

            # The same verified export as cg-export onnx: if PyTorch and ONNX Runtime disagree, no IR is made.
            onnx_export = export_onnx(source, Path(scratch) / f"{source.stem}.onnx",
                                      OnnxExportOptions(uint8_io=uint8_io, verify=verify, threads=threads, arch=arch))
            onnx_path, reference, generator = onnx_export.path, "PyTorch", onnx_export.generator
        recorded = read_onnx_metadata(onnx_path)
        started = time.perf_counter()
        try:
            model = ov.convert_model(str(onnx_path))
        except Exception as exc:  # OpenVINO's frontend raises several exception types with long texts
            raise CgExportError(f"{onnx_path}: OpenVINO cannot convert it ({str(exc).strip().splitlines()[-1]})") from None
        metadata = ir_metadata(recorded, precision, fp16, ov.__version__, source if is_onnx else None)
        write_rt_info(model, metadata)
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{final.name}.", dir=final.parent) as staging:
            staged = Path(staging) / final.name
            ov.save_model(model, str(staged), compress_to_fp16=fp16)
            export_seconds = time.perf_counter() - started
            parity, execution = None, None
            if verify:
                parity, execution = verify_ir(staged, generator.model if generator else None, onnx_path, metadata,
                                              threads=threads)
                limit = UINT8_LEVEL if metadata.uint8_io and precision == "fp32" else None
                check_parity(parity, precision, min_psnr_db=min_psnr_db, max_abs_err=limit)
            # .bin first: the .xml is what every tool opens, so it must never point at old weights.
            with atomic_output(final) as xml_tmp, atomic_output(final.with_suffix(".bin")) as bin_tmp:
                os.replace(staged.with_suffix(".bin"), bin_tmp)
                os.replace(staged, xml_tmp)
    notes = []
    mismatch = execution.mismatch(precision) if execution else None
    if mismatch:
        notes.append(mismatch)
    return OpenVinoExport(final, precision, reference, ov.__version__, execution, parity, export_seconds, notes)


def ir_metadata(recorded: ArtifactMetadata, precision: str, fp16: bool, openvino_version: str,
                onnx_source: Path | None) -> ArtifactMetadata:
    """The ONNX model's metadata, with the IR's precision and where it came from added.

    The source checkpoint (path and digest) is the one the ONNX model records. The ONNX file itself is recorded
    (``converted_from``) only when it lasts: deploy converts its own candidate inside the deployment being built,
    whose scratch path would be gone by the time anyone read it.
    """
    extra = dict(recorded.extra, openvino_version=openvino_version)
    if fp16:
        extra["weight_compression"] = "fp16"
    if onnx_source is not None and not is_staging_path(onnx_source):
        extra["converted_from"] = str(onnx_source.resolve())
        extra["converted_from_sha256"] = sha256_of(onnx_source)
    return replace(recorded, precision=precision, extra=extra)


def verify_ir(ir_path: Path, torch_model: Any, onnx_path: Path, metadata: ArtifactMetadata, threads: int | None = None
              ) -> tuple[ParityReport, ExecutionReport]:
    """The IR on OpenVINO's CPU vs PyTorch (``torch_model`` given) or ONNX Runtime (the ONNX source).

    Args:
        threads: CPU threads of every runtime involved; ``None``: :func:`cg_export.threads.default_threads`.

    Returns:
        Parity on photographs at a square and a non-square size, and the kernels OpenVINO compiled.
    """
    with OpenVinoRunner(ir_path, threads=threads) as candidate:
        sizes = [candidate.info.static_size] if candidate.info.static_size else verification_sizes(
            metadata.size_multiple)
        inputs = photograph_batches(sizes, candidate.info.batch or 2)
        if torch_model is not None:
            from cg_export.backends.torch import TorchRunner

            with TorchRunner(torch_model, threads=threads) as reference:
                return measure_parity(reference, candidate, inputs), candidate.execution
        if metadata.uint8_io:
            return _uint8_parity(onnx_path, candidate, inputs, threads), candidate.execution
        from cg_export.backends.onnxruntime import OnnxRuntimeRunner

        with OnnxRuntimeRunner(onnx_path, providers=["CPUExecutionProvider"], threads=threads) as reference:
            return measure_parity(reference, candidate, inputs), candidate.execution


def _uint8_parity(onnx_path: Path, candidate: OpenVinoRunner, inputs: list[tuple[str, np.ndarray]],
                  threads: int | None = None) -> ParityReport:
    # ONNX Runtime's runner speaks float only; a uint8 graph is compared byte for byte through a bare session.
    from cg_export.backends.onnxruntime import import_onnxruntime

    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ThreadSettings.resolve(threads).apply_to_onnxruntime(options)  # the count, waiting passively (cg_export.threads)
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    report = ParityReport()
    for label, batch in inputs:
        images = np.ascontiguousarray(np.rint((batch + 1.0) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1))
        expected = session.run(None, {session.get_inputs()[0].name: images})[0]
        got = candidate.infer_bytes(images)
        as_float = [np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0 for a in (expected, got)]
        report.cases.append(compare_outputs(label, *as_float))
    return report


def verification_sizes(multiple: int) -> list[tuple[int, int]]:
    """256x256 and 256x384 (rounded up to the size multiple), as the ONNX export checks."""
    side = math.ceil(256 / multiple) * multiple
    return [(side, side), (side, math.ceil(side * 3 // 2 / multiple) * multiple)]

