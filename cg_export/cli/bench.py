"""``cg-bench``: latency and parity of generator files on every backend, precision and size, in one report."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.aliases import Alias, with_aliases
from cg_export.cli.common import new_app, parse_size, reports_errors
from cg_export.cli.options import (
    bench_batch_option,
    bench_size_option,
    device_option,
    duration_option,
    fp16_option,
    iterations_option,
    json_option,
    model_files,
    threads_option,
    threshold_option,
    warmup_option,
)
from cg_export.cli.printer import BenchRowPrinter, echo
from cg_export.cli.version import run_app
from cg_export.errors import CgExportError
from cg_export.files import InputFiles, check_output_file
from cg_export.threads import check_threads

app = new_app("Time generator files (.pt, .onnx, .engine) and check their output against PyTorch fp32.")


@app.command(cls=with_aliases(Alias("--half", "--fp16", takes_value=False)))
@reports_errors
def bench(
    models: list[Path] = typer.Argument(..., help=f"Model files: {model_files()}. The backend follows the "
                                        "extension."),
    size: list[str] | None = bench_size_option(),
    batch: list[int] | None = bench_batch_option(),
    warmup: int | None = warmup_option(),
    iterations: int | None = iterations_option(),
    duration_s: float | None = duration_option(),
    reference: Path | None = typer.Option(None, help="PyTorch checkpoint to measure parity against (default: the "
                                          ".pt among the models, else the source recorded in the ONNX metadata)."),
    device: str | None = device_option(),
    fp16: bool = fp16_option("Run .pt models in fp16."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Run .pt models in channels-last layout."),
    provider: str | None = typer.Option(None, help="ONNX Runtime execution provider: cpu, cuda, tensorrt or a full "
                                        "name such as CUDAExecutionProvider (default: the fastest installed)."),
    backend: str | None = typer.Option(None, help="Run every model with this backend, e.g. openvino (it runs .onnx "
                                       "files too; default: by extension)."),
    threads: int | None = threads_option(),
    json_path: Path | None = json_option("Write the report as JSON"),
    markdown: Path | None = typer.Option(None, help="Write the report as a Markdown table."),
    plot: Path | None = typer.Option(None, help="Plot latency by size and backend (.png, .svg, .pdf; "
                                     "needs matplotlib)."),
    compare: Path | None = typer.Option(None, help="Compare p50 latencies with an earlier --json report."),
    threshold_pct: float | None = threshold_option(),
    fail_on_regression: bool = typer.Option(False, "--fail-on-regression", help="Exit non-zero when --compare "
                                            "finds a regression."),
    wide: bool = typer.Option(False, "--wide", help="Print every column (p90/p99/mean, compute, img/s, memory, "
                              "max abs error, MACs, full paths), not the 100-column summary."),
) -> None:
    """Time each model at each size and batch size and measure its parity with the PyTorch fp32 reference.

    Latency is end to end (host array in, host array out), with device compute time beside it where the backend
    can separate the copies. Parity is PSNR on 8-bit output and max abs error, on real photographs. The table
    gives each row's speed-up over the PyTorch fp32 row of its size and batch (else the first row that ran) and
    whether its PSNR passes its precision's floor (50 dB fp32, 40 fp16, 30 int8); --wide shows every column.
    """
    from cg_export import bench as lib

    sizes = [parse_size(text, "--size") for text in size] if size else None
    check_threads(threads)
    inputs = InputFiles([*models, *([reference] if reference else []), *([compare] if compare else [])])
    for option, path in (("--json", json_path), ("--markdown", markdown), ("--plot", plot)):
        if path is not None:
            check_output_file(path, option)
            inputs.refuse(path, option)
    # Fail before minutes of benchmarking, not after: a bad baseline, or --plot without matplotlib.
    baseline = lib.load_report(compare) if compare else None
    threshold_pct = lib.resolve_threshold(threshold_pct)
    if plot is not None:
        lib.import_pyplot()
    targets = lib.targets_from_files(models, device=device, half=fp16 or None,
                                     channels_last=channels_last or None, provider=provider,
                                     backend=backend, threads=threads)
    found = lib.find_reference(models, reference)
    echo("reference", found.describe())

    report = lib.run_benchmark(targets, sizes=sizes, batches=batch or None, warmup=warmup, iterations=iterations,
                               duration_s=duration_s, reference=found, progress=BenchRowPrinter(), threads=threads)
    typer.echo("")
    typer.echo(lib.format_table(report, wide=wide))
    for path, write in ((json_path, lib.write_json), (markdown, lib.write_markdown), (plot, lib.write_plot)):
        if path is not None:
            write(report, path)
            echo("wrote", str(path))
    if baseline is not None:
        comparison = lib.compare_reports(baseline, report, threshold_pct)
        typer.echo(lib.format_comparison(comparison))
        if fail_on_regression and comparison.regressions:
            raise CgExportError(f"{len(comparison.regressions)} row(s) regressed against {compare} "
                                f"(threshold {comparison.threshold_pct:g}%)")
    if not any(row.available for row in report.results):
        raise CgExportError("no model could run; see the notes above")


def main() -> None:
    """Console-script entry point."""
    run_app(app, "cg-bench")


if __name__ == "__main__":
    main()
