"""``cg-stylize``: photographs, folders and videos through any model artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.common import given, new_app, reports_errors
from cg_export.cli.options import (
    model_files,
    output_option,
    overlap_option,
    progress_option,
    stats_size_option,
    tile_batch_option,
    tile_option,
    torch_device_option,
)
from cg_export.cli.printer import echo
from cg_export.cli.version import run_app

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
    device: str | None = torch_device_option(),
    progress: bool = progress_option(),
) -> None:
    """Stylize images and videos; every output keeps its input's size."""
    from cg_export.backends import runner_for
    from cg_export.stylize import StylizeOptions, Stylizer, stylize_paths

    options = StylizeOptions(**given(tile=tile, overlap=overlap, stats_size=stats_size, batch=batch))
    with runner_for(model, device=device) as runner:
        stylizer = Stylizer(runner, options)
        echo("model", f"{model} ({runner.describe()}), tiles of {stylizer.tile or 'whole image'}")
        report = stylize_paths(stylizer, inputs, output, progress=progress,
                               on_error=lambda path, reason: typer.echo(f"skipped: {reason}", err=True))
    for path in report.written[:5]:
        echo("wrote", str(path))
    if len(report.written) > 5:
        echo("wrote", f"... {len(report.written)} files in all under {output}")
    if report.frames:
        echo("video", f"{report.frames} frames at {report.frames_per_second:.2f} frames/s")
    if report.failed:
        typer.echo(f"error: {len(report.failed)} of {len(report.failed) + len(report.written)} inputs failed "
                   "(listed above as skipped)", err=True)
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point of ``cg-stylize``."""
    run_app(app, "cg-stylize")


if __name__ == "__main__":
    main()
