"""``cg-stylize``: photographs, folders and videos through any model artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.common import given, new_app, reports_errors
from cg_export.cli.options import (
    device_option,
    max_pixels_option,
    model_files,
    output_option,
    overlap_option,
    progress_option,
    stats_size_option,
    threads_option,
    tile_batch_option,
    tile_option,
)
from cg_export.cli.printer import echo
from cg_export.cli.version import run_app
from cg_export.errors import CgExportError
from cg_export.threads import check_threads

app = new_app(f"Stylize photographs, folders and videos with a generator ({model_files()}).")


@app.command()
@reports_errors
def stylize(
    model: Path = typer.Argument(..., help=f"The generator: {model_files()}."),
    inputs: list[Path] = typer.Argument(..., help="Image files, folders (recursive) and videos."),
    output: Path = output_option("Output file (one input) or folder.", required=True),
    tile: int | None = tile_option(),
    overlap: int | None = overlap_option(),
    stats_size: int | None = stats_size_option(),
    batch: int | None = tile_batch_option(),
    device: str | None = device_option(),
    threads: int | None = threads_option(),
    max_pixels: int | None = max_pixels_option(),
    progress: bool = progress_option(),
) -> None:
    """Stylize images and videos; every output keeps its input's size."""
    from cg_export.backends import runner_for
    from cg_export.backends.registry import read_artifact_metadata
    from cg_export.files import InputFiles
    from cg_export.stylize import StylizeOptions, Stylizer, plan_outputs, stylize_jobs

    # Everything that can be checked without the model is, before it loads: options, inputs, every output.
    options = StylizeOptions(**given(tile=tile, overlap=overlap, stats_size=stats_size, batch=batch,
                                     max_pixels=max_pixels))
    check_threads(threads)
    recorded = read_artifact_metadata(model) if model.is_file() else None
    if recorded is not None:
        options.check(recorded.size_multiple)
    jobs = plan_outputs(inputs, output, InputFiles([model]))
    with runner_for(model, device=device, threads=threads) as runner:
        stylizer = Stylizer(runner, options)
        echo("model", f"{model} ({runner.describe()}; {runner.info.describe()}), {stylizer.describe()}")
        # With several inputs a failure is one "skipped" line and the rest go on; a single input's is the error.
        several = len(jobs) > 1
        report = stylize_jobs(stylizer, jobs, progress=progress, on_error=_say_skipped if several else None)
    for path, plan in list(zip(report.written, report.plans))[:5]:
        echo("wrote", f"{path} ({plan})")
    if len(report.written) > 5:
        echo("wrote", f"... {len(report.written)} files in all under {output}")
    if report.frames:
        echo("video", f"{report.frames} frames at {report.frames_per_second:.2f} frames/s")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if report.failed and not several:
        raise CgExportError(report.failed[0][1])
    if report.failed:
        typer.echo(f"error: {len(report.failed)} of {len(report.failed) + len(report.written)} inputs failed "
                   "(listed above as skipped)", err=True)
        raise typer.Exit(1)
    if report.warnings:
        raise typer.Exit(1)


def _say_skipped(path: Path, reason: str) -> None:
    typer.echo(f"skipped: {reason}", err=True)


def main() -> None:
    """Console-script entry point of ``cg-stylize``."""
    run_app(app, "cg-stylize")


if __name__ == "__main__":
    main()
