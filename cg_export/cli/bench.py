"""``cg-bench``: latency and parity of generator files on every backend, precision and size, in one report."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.common import echo, new_app, parse_size, reports_errors
from cg_export.errors import CgExportError

app = new_app("Time generator files (.pt, .onnx, .engine) and check their output against PyTorch fp32.")


@app.command()
@reports_errors
def bench(
    models: list[Path] = typer.Argument(..., help="Model files: .pt/.pth (PyTorch), .onnx (ONNX Runtime), "
                                        ".engine/.plan (TensorRT). The backend follows the extension."),
    size: list[str] | None = typer.Option(None, "--size", help="Input HEIGHTxWIDTH; repeat for several "
                                          "(default: 256x256)."),
    batch: list[int] | None = typer.Option(None, "--batch", help="Batch size; repeat for several (default: 1)."),
    warmup: int | None = typer.Option(None, help="Untimed runs per row (default: 3)."),
    iterations: int | None = typer.Option(None, help="Timed runs per row (default: as many as fit in --duration)."),
    duration: float | None = typer.Option(None, help="Seconds of timed runs per row, at least 5 runs "
                                          "(default: 3; not with --iterations)."),
    reference: Path | None = typer.Option(None, help="PyTorch checkpoint to measure parity against (default: the "
                                          ".pt among the models, else the source recorded in the ONNX metadata)."),
    device: str | None = typer.Option(None, help="PyTorch device for .pt models: cpu, cuda, cuda:1 (default: cpu)."),
    half: bool = typer.Option(False, "--half", help="Run .pt models in fp16."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Run .pt models in channels-last layout."),
    provider: str | None = typer.Option(None, help="ONNX Runtime execution provider: cpu, cuda, tensorrt or a full "
                                        "name such as CUDAExecutionProvider (default: the fastest installed)."),
    backend: str | None = typer.Option(None, help="Run every model with this backend, e.g. openvino (it runs .onnx "
                                       "files too; default: by extension)."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the report as JSON."),
    markdown: Path | None = typer.Option(None, help="Write the report as a Markdown table."),
    plot: Path | None = typer.Option(None, help="Plot latency by size and backend (.png, .svg, .pdf; "
                                     "needs matplotlib)."),
    compare: Path | None = typer.Option(None, help="Compare p50 latencies with an earlier --json report."),
    threshold: float | None = typer.Option(None, help="Regression threshold for --compare, in percent "
                                           "(default: 10)."),
    fail_on_regression: bool = typer.Option(False, "--fail-on-regression", help="Exit non-zero when --compare "
                                            "finds a regression."),
) -> None:
    """Time each model at each size and batch size and measure its parity with the PyTorch fp32 reference.

    Latency is end to end (host array in, host array out), with device compute time beside it where the backend
    can separate the copies. Parity is PSNR on 8-bit output and max abs error, on real photographs.
    """
    from cg_export import bench as lib

    sizes = [parse_size(text, "--size") for text in size] if size else None
    # Fail before minutes of benchmarking, not after: a bad baseline, or --plot without matplotlib.
    baseline = lib.load_report(compare) if compare else None
    threshold = lib.resolve_threshold(threshold)
    if plot is not None:
        lib.import_pyplot()
    targets = lib.targets_from_files(models, device=device, half=half or None,
                                     channels_last=channels_last or None, provider=provider,
                                     backend=backend)
    found = lib.find_reference(models, reference)
    echo("reference", found.describe())

    said: set[str] = set()

    def show(row: lib.BenchResult) -> None:
        what = f"{row.model} {row.backend} {row.precision or '-'} {row.height}x{row.width} batch {row.batch}"
        if row.latency is None:
            # A model that cannot open fails every row the same way: say why once.
            echo("skipped", what if row.note in said else f"{what}: {row.note}")
            said.add(row.note or "")
        else:
            psnr = "" if row.psnr_db is None else f", PSNR {lib.format_value(row.psnr_db)} dB"
            echo("timed", f"{what}: p50 {lib.format_ms(row.latency.p50)} ms{psnr}")

    report = lib.run_benchmark(targets, sizes=sizes, batches=batch or None, warmup=warmup, iterations=iterations,
                               duration_s=duration, reference=found, progress=show)
    typer.echo("")
    typer.echo(lib.format_table(report))
    for path, write in ((json_path, lib.write_json), (markdown, lib.write_markdown), (plot, lib.write_plot)):
        if path is not None:
            write(report, path)
            echo("wrote", str(path))
    if baseline is not None:
        comparison = lib.compare_reports(baseline, report, threshold)
        typer.echo(lib.format_comparison(comparison))
        if fail_on_regression and comparison.regressions:
            raise CgExportError(f"{len(comparison.regressions)} row(s) regressed against {compare} "
                                f"(threshold {comparison.threshold_pct:g}%)")
    if not any(row.available for row in report.results):
        raise CgExportError("no model could run; see the notes above")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
