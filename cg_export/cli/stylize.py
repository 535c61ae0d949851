"""``cg-stylize``: photographs, folders and videos through any model artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.common import echo, new_app, reports_errors

app = new_app("Stylize photographs, folders and videos with a generator (.pt/.pth, .onnx or .engine).")


@app.command()
@reports_errors
def stylize(
    model: Path = typer.Argument(..., help="The generator: .pt/.pth checkpoint, .onnx or TensorRT .engine."),
    inputs: list[Path] = typer.Argument(..., help="Image files, folders (recursive) and videos."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (one input) or folder."),
    tile: int | None = typer.Option(None, help="Tile side in pixels; 0 = whole image (default: from free memory)."),
    overlap: int | None = typer.Option(None, help="Context around each tile, blended (default 32)."),
    stats_size: int | None = typer.Option(None, help="Thumbnail side for whole-image InstanceNorm statistics "
                                                     "(default 512)."),
    batch: int | None = typer.Option(None, help="Tiles per inference call (default 1)."),
    device: str | None = typer.Option(None, help="PyTorch device for .pt models: cpu or cuda (default cpu)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
) -> None:
    """Stylize images and videos; every output keeps its input's size."""
    from cg_export.backends import runner_for
    from cg_export.stylize import StylizeOptions, Stylizer, stylize_paths

    defaults = StylizeOptions()
    options = StylizeOptions(
        tile=tile, overlap=defaults.overlap if overlap is None else overlap,
        stats_size=defaults.stats_size if stats_size is None else stats_size,
        batch=defaults.batch if batch is None else batch,
    )
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
    app()


if __name__ == "__main__":
    main()
