"""``cg-export trt`` (build a verified TensorRT engine) and ``cg-export check`` (TensorRT pre-flight, no GPU).

Both are thin: options are parsed and passed one-to-one to :func:`cg_export.export.trt.build_engine` and
:func:`cg_export.tensorrt.check.check_file`; unset options stay ``None`` so the library owns every default.
``register(app)`` adds them to the ``cg-export`` app.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.aliases import Alias, deprecation, with_aliases
from cg_export.cli.common import parse_size, parse_size_range, reports_errors
from cg_export.cli.options import (
    arch_option,
    batch_option,
    fp16_option,
    int8_option,
    min_psnr_option,
    output_option,
    size_option,
    size_range_option,
    threads_option,
    verify_option,
)
from cg_export.cli.printer import echo, print_parity, print_written
from cg_export.export.defaults import DEFAULT_MAX_SHAPE, DEFAULT_MIN_SHAPE, DEFAULT_OPT_SHAPE
from cg_export.tensorrt.versions import OLDEST_SUPPORTED, dotted


def _hw(shape: tuple[int, ...]) -> str:
    return f"{shape[2]}x{shape[3]}"


@reports_errors
def trt_command(
    source: Path = typer.Argument(..., help="An .onnx model (fp32, fp16, or QDQ int8) or a generator checkpoint."),
    output: Path | None = output_option("Engine file (default: <source>[_fp16].engine)."),
    fp16: bool = fp16_option("FP16 engine (the way the installed TensorRT wants it asked)."),
    int8: bool = int8_option("INT8 engine from a QDQ ONNX model (explicit quantization)."),
    calib: Path | None = typer.Option(None, help="Calibration images for INT8 (made by cg-export onnx --int8)."),
    workspace_mb: int | None = typer.Option(None, "--workspace", help="Builder workspace limit in MiB."),
    size: str | None = size_option("The size the engine runs at: alone, a static engine; with --size-range, the size "
                                   f"it is optimised for (default: {_hw(DEFAULT_OPT_SHAPE)} within the range)"),
    size_range: str | None = size_range_option("Smallest and largest input size the engine takes (default: "
                                               f"{_hw(DEFAULT_MIN_SHAPE)}:{_hw(DEFAULT_MAX_SHAPE)}, fitted to the "
                                               "model)."),
    batch: int | None = batch_option("Images per inference call, fixed in the profile (default: 1)."),
    min_shape: str | None = typer.Option(None, "--min-shape", hidden=True),
    opt_shape: str | None = typer.Option(None, "--opt-shape", hidden=True),
    max_shape: str | None = typer.Option(None, "--max-shape", hidden=True),
    timing_cache: Path | None = typer.Option(None, help="Timing cache file, read and updated: fast rebuilds."),
    dla_core: int | None = typer.Option(None, help="Build for this DLA core (Jetson), GPU fallback on; FP16/INT8."),
    builder_optimization_level: int | None = typer.Option(None, help="0-5 (TensorRT 8.6+, default 3)."),
    verify: bool = verify_option("Compare with the reference on photographs."),
    min_psnr_db: float | None = min_psnr_option(),
    arch: str | None = arch_option("Force the architecture of a checkpoint source."),
    threads: int | None = threads_option(),
) -> None:
    """Build a TensorRT engine, check its layers' precision and its output, and write it with a JSON sidecar."""
    from cg_export.errors import CgExportError
    from cg_export.export import run_export
    from cg_export.export.trt import INT8_CALIBRATION_ADVICE, EngineOptions, parse_shape

    if calib is not None:  # kept so that the option says where calibration happens instead of "no such option"
        raise CgExportError(INT8_CALIBRATION_ADVICE)
    shapes = {
        name: parse_shape(text, option) if text is not None else None
        for name, text, option in (("min_shape", min_shape, "--min-shape"), ("opt_shape", opt_shape, "--opt-shape"),
                                   ("max_shape", max_shape, "--max-shape"))
    }
    if any(shapes.values()):
        deprecation("--min-shape/--opt-shape/--max-shape NxCxHxW", "--size HxW, --size-range MINHxMINW:MAXHxMAXW and "
                    "--batch N")
    options = EngineOptions(
        size=parse_size(size, "--size") if size else None,
        size_range=parse_size_range(size_range, "--size-range") if size_range else None, batch=batch,
        fp16=fp16, int8=int8, workspace_mb=workspace_mb, timing_cache=timing_cache, dla_core=dla_core,
        builder_optimization_level=builder_optimization_level, verify=verify, min_psnr_db=min_psnr_db, arch=arch,
        threads=threads,
        **shapes,
    )
    outcome = run_export("trt", source, output, options)
    result = outcome.result
    for note in outcome.notes:
        echo("note", note)
    echo("built", f"{result.precision} engine with TensorRT {result.tensorrt_version} on {result.gpu} "
                  f"in {result.build_seconds:.1f} s; profile {result.profile.describe()}")
    echo("layers", result.layers.summary())
    print_parity(result.parity, result.precision, result.reference, min_psnr_db)
    print_written(outcome)


@reports_errors
def check_command(
    model: Path = typer.Argument(..., help="The .onnx model to check."),
    trt_version: str | None = typer.Option(None, "--trt-version", metavar="VERSION",
                                           help="The TensorRT whose parser judges, e.g. 8.6 (default: the installed "
                                                f"one, else {dotted(OLDEST_SUPPORTED)})."),
    dla: bool = typer.Option(False, "--dla", help="Also check what DLA (Jetson Xavier / Orin) can run."),
) -> None:
    """Pre-flight an ONNX model for TensorRT without a GPU: what the parser (and DLA) of a version will refuse."""
    from cg_export.tensorrt.check import check_file, default_version, parse_target

    report = check_file(model, trt_version, dla=dla)
    why = "" if parse_target(trt_version) else f" ({default_version()[1]})"
    echo("target", f"{report.target}{why}")
    echo("model", f"{model}: opset {report.opset}, {report.nodes} nodes")
    for finding in report.findings:
        echo(finding.severity, str(finding))
    verdict = "ok" if report.ok else "refused"
    counts = ", ".join(f"{report.count(kind)} {kind}(s)" for kind in ("error", "warning", "note"))
    echo(verdict, counts)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``trt`` and ``check`` to the ``cg-export`` app."""
    app.command("trt")(trt_command)
    # check's --target named a TensorRT version; deploy's --target is where a deployment runs: one meaning each.
    app.command("check", cls=with_aliases(Alias("--target", "--trt-version")))(check_command)
