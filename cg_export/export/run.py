"""Every exporter behind one call: :func:`run_export` reads the formats table, makes the format's options from an
:class:`ExportRequest`, runs the exporter and gives back the same record for every format (Ultralytics'
``try_export``): what was written, its size, the time it took and its parity, or why it failed.

Imports no exporter until one is run, so the command line's ``--help`` and the deploy table stay light.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cg_export.errors import CgExportError
from cg_export.formats import Format, check_precision, format_named, load_reference


@dataclass(frozen=True)
class ExportRequest:
    """What can be asked of any exporter, in the formats table's words; each exporter's options class takes what
    applies to it (``from_request``) and its own command adds the rest.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8`` (a cell of the format's precision matrix).
        calibration: Folder of the user's photographs to calibrate int8 on.
        size: ``(height, width)`` the artifact is tuned for (a TensorRT engine's optimisation shape); ``None``: the
            exporter's default.
        size_range: ``((min height, min width), (max height, max width))`` the artifact must take; ``None``: the
            exporter's default (dynamic where the format allows it, else ``size``).
        verify: Check the artifact against its reference on photographs before it is written.
        min_psnr_db: Lowest accepted PSNR; ``None``: the precision's floor.
        threads: CPU threads for export and verification; ``None``: the exporter's default.
        arch: Force the architecture of a checkpoint source.
    """

    precision: str = "fp32"
    calibration: Path | None = None
    size: tuple[int, int] | None = None
    size_range: tuple[tuple[int, int], tuple[int, int]] | None = None
    verify: bool = True
    min_psnr_db: float | None = None
    threads: int | None = None
    arch: str | None = None


@dataclass
class ExportOutcome:
    """What one export did, the same for every format.

    Attributes:
        format: The formats-table row.
        precision: The precision made (what the exporter reports; before it ran, the one asked for).
        path: The artifact written, or ``None`` when it failed.
        seconds: Wall time of the whole call (loading, conversion, verification, writing).
        size_bytes: The artifact and its companions (an IR's ``.bin``, an engine's sidecar), or ``None``.
        result: The exporter's own record (``OnnxExport``, ``EngineBuild``, ``OpenVinoExport`` ...), or ``None``.
        error: Why it failed (a one-line message), or ``None``.
        notes: Things the exporter wanted the user to know.
    """

    format: Format
    precision: str
    path: Path | None = None
    seconds: float = 0.0
    size_bytes: int | None = None
    result: Any = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def parity(self) -> Any:
        """The exporter's :class:`~cg_export.parity.ParityReport`, or ``None`` (not verified, or failed)."""
        return getattr(self.result, "parity", None)

    def line(self) -> str:
        """One line for people: ``ONNX int8: g_int8.onnx (2.1 MB) in 6.3 s``, ``OpenVINO IR fp32: g.xml with g.bin
        (2.1 MB) in 3.0 s`` or ``ONNX int8: failed: ...``."""
        what = f"{self.format.title} {self.precision}"
        if self.error is not None:
            return f"{what}: failed: {self.error}"
        size = f" ({self.size_bytes / 1e6:.1f} MB)" if self.size_bytes is not None else ""
        companions = [path.name for path in self.format.files(self.path)[1:]] if self.path is not None else []
        beside = f" with {', '.join(companions)}" if companions else ""
        return f"{what}: {self.path}{beside}{size} in {self.seconds:.1f} s"


def make_options(row: Format, request: ExportRequest) -> Any:
    """The format's own options object for ``request`` (its options class's ``from_request``)."""
    if row.options is None:
        raise CgExportError(f"{row.title} files are not exported: they are the source every export starts from")
    return load_reference(row.options).from_request(request)


def run_export(name: str, source: Any, output: str | Path | None, options: Any, *, catch: bool = False
               ) -> ExportOutcome:
    """Run format ``name``'s exporter as ``exporter(source, output, options)`` and record the outcome.

    Args:
        name: A format of :data:`cg_export.formats.FORMATS` (``onnx``, ``openvino``, ``trt``).
        source: What the exporter reads: a checkpoint path or loaded generator, or the file of the format it
            converts from (:attr:`~cg_export.formats.Format.converts_from`).
        output: The artifact to write; ``None``: the exporter's default beside the source.
        options: The format's options object, or an :class:`ExportRequest` to make it from.
        catch: Turn a :class:`CgExportError` (and, since a converter may fail in its own way, any ``Exception``)
            into the outcome's ``error`` instead of raising it: a failing format becomes a row, and the caller
            goes on with the others.

    Raises:
        CgExportError: the export failed, unless ``catch``.
        PrecisionError: the format cannot be made in the precision asked (before anything runs, even with
            ``catch``).
    """
    row = format_named(name)
    if isinstance(options, ExportRequest):
        check_precision(row.name, options.precision)
        options = make_options(row, options)
    precision = getattr(options, "precision", "fp32")
    check_precision(row.name, precision)
    if row.exporter is None:
        raise CgExportError(f"{row.title} files are not exported: they are the source every export starts from")
    outcome = ExportOutcome(row, precision)
    started = time.perf_counter()
    try:
        exporter = load_reference(row.exporter)
        outcome.result = exporter(source, output, options)
    except Exception as exc:
        if not catch:
            raise
        outcome.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return outcome
    finally:
        outcome.seconds = time.perf_counter() - started
    outcome.path = Path(outcome.result.path)
    # What was made can be more exact than what was asked: an IR converted from a QDQ file is int8.
    outcome.precision = getattr(outcome.result, "precision", precision)
    outcome.notes = list(getattr(outcome.result, "notes", []) or [])
    outcome.size_bytes = sum(p.stat().st_size for p in row.files(outcome.path))
    return outcome



__all__ = ["ExportOutcome", "ExportRequest", "make_options", "run_export"]
