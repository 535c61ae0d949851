"""``cg-export openvino``: a verified OpenVINO IR from a checkpoint or an ``.onnx`` model.

Thin: options go one-to-one to :func:`cg_export.export.openvino.export_openvino`; unset options stay ``None`` so the
library owns every default. ``register(app)`` adds the command to the ``cg-export`` app.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.common import reports_errors
from cg_export.cli.options import (
    arch_option,
    fp16_option,
    min_psnr_option,
    output_option,
    threads_option,
    verify_option,
)
from cg_export.cli.printer import echo, print_parity, print_written


@reports_errors
def openvino_command(
    source: Path = typer.Argument(..., help="A generator checkpoint, or an .onnx model cg-export wrote "
                                  "(fp32, fp16, int8 QDQ, uint8 I/O)."),
    output: Path | None = output_option("The .xml, or a folder for <name>.xml and <name>.bin "
                                        "(default: <source>[_fp16]_openvino/ beside the source)."),
    fp16: bool = fp16_option("Compress float weights to fp16 (GPU/NPU compute in fp16)."),
    uint8_io: bool = typer.Option(False, "--uint8-io", help="Checkpoint source: take and return uint8 NHWC RGB."),
    verify: bool = verify_option("Compare with the reference on photographs."),
    min_psnr_db: float | None = min_psnr_option(),
    arch: str | None = arch_option("Force the architecture of a checkpoint source."),
    threads: int | None = threads_option(),
) -> None:
    """Convert to OpenVINO IR (.xml + .bin), verify it against PyTorch or ONNX Runtime, and write it."""
    from cg_export.export import run_export
    from cg_export.export.openvino import OpenVinoExportOptions

    options = OpenVinoExportOptions(fp16=fp16, uint8_io=uint8_io, arch=arch, verify=verify, min_psnr_db=min_psnr_db,
                                    threads=threads)
    outcome = run_export("openvino", source, output, options)
    result = outcome.result
    echo("converted", f"{source} -> {result.precision} IR with OpenVINO {result.openvino_version} "
                      f"in {result.export_seconds:.1f} s")
    if result.execution is not None:
        echo("kernels", result.execution.summary())
    for note in result.notes:
        echo("note", note)
    print_parity(result.parity, result.precision, result.reference, min_psnr_db)
    print_written(outcome)


def register(app: typer.Typer) -> None:
    """Add ``openvino`` to the ``cg-export`` app."""
    app.command("openvino")(openvino_command)
