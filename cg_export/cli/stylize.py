"""``cg-stylize``: photographs, folders and videos through any model artifact."""

from __future__ import annotations

import signal
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
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Leave outputs that already exist as they "
                                       "are (to resume an interrupted run): an output only ever appears under its "
                                       "name once complete, as each is written to a temporary name and renamed."),
) -> None:
    """Stylize images and videos; every output keeps its input's size.

    Ctrl-C stops at once and says which outputs are complete; the one in progress is not left half-written, and a
    rerun with --skip-existing carries on from there.
    """
    from cg_export.backends import runner_for
    from cg_export.backends.registry import read_artifact_metadata
    from cg_export.files import InputFiles
    from cg_export.stylize import StylizeOptions, Stylizer, StylizeReport, plan_outputs, stylize_jobs

    # Everything that can be checked without the model is, before it loads: options, inputs, every output.
    options = StylizeOptions(**given(tile=tile, overlap=overlap, stats_size=stats_size, batch=batch,
                                     max_pixels=max_pixels))
    check_threads(threads)
    recorded = read_artifact_metadata(model) if model.is_file() else None
    if recorded is not None:
        options.check(recorded.size_multiple)
    jobs = plan_outputs(inputs, output, InputFiles([model]))
    report = StylizeReport()
    if skip_existing and all(job.target.is_file() for job in jobs):
        # Nothing to make: say so without loading the model (seconds for a large one, minutes for an engine).
        echo("skipped", f"all {len(jobs)} outputs already exist (complete: outputs appear under their name only "
                        "when whole); left as they are")
        return
    try:
        with runner_for(model, device=device, threads=threads) as runner:
            stylizer = Stylizer(runner, options)
            echo("model", f"{model} ({runner.describe()}; {runner.info.describe()}), {stylizer.describe()}")
            # With several inputs a failure is one "skipped" line and the rest go on; a single input's is the error.
            several = len(jobs) > 1
            stylize_jobs(stylizer, jobs, progress=progress, on_error=_say_skipped if several else None,
                         skip_existing=skip_existing, report=report, on_interrupt=_say_interrupted)
    except KeyboardInterrupt as exc:
        if not getattr(exc, "__notes__", None):
            raise  # stopped before any output was started: reports_errors says so
        # The line saying what was finished is already out (stylize_jobs prints it before waiting for the model
        # call in flight); exit as reports_errors would, without its second, vaguer line.
        raise typer.Exit(128 + getattr(exc, "signal_number", signal.SIGINT)) from None
    if report.skipped:
        echo("skipped", f"{len(report.skipped)} of {len(jobs)} outputs already exist (complete: outputs appear "
                        "under their name only when whole); left as they are")
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


def _say_interrupted(line: str) -> None:
    # Ctrl-C, SIGTERM or SIGHUP (all raise KeyboardInterrupt here): one word for all of them.
    typer.echo(f"stopped: {line}", err=True)


def main() -> None:
    """Console-script entry point of ``cg-stylize``."""
    run_app(app, "cg-stylize")


if __name__ == "__main__":
    main()
