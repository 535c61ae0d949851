"""Latency and output parity of generator files on every backend, precision and size: what ``cg-bench`` reports.

A report has one row per model, input size and batch size: end-to-end latency percentiles over every timed sample
(host array in, host array out, copies included), device compute latency where the backend can separate it from
the copies, throughput, peak memory, and parity with the PyTorch fp32 reference on real photographs. It is written
as a terminal table, JSON (the shape is documented in the README and in :meth:`BenchReport.to_json`), Markdown and
a plot, and can be compared with an earlier JSON report to flag regressions.

The package follows that order: :mod:`~cg_export.bench.timing` (statistics and timing loops),
:mod:`~cg_export.bench.memory` (peak memory), :mod:`~cg_export.bench.targets` (what to run, the parity reference),
:mod:`~cg_export.bench.running` (the benchmark loop), :mod:`~cg_export.bench.report` (rows, reports, JSON),
:mod:`~cg_export.bench.environment` (the machine), :mod:`~cg_export.bench.writers` (terminal table, Markdown,
progress lines), :mod:`~cg_export.bench.plot` and :mod:`~cg_export.bench.compare` (regressions against a baseline).
Every public name is importable from ``cg_export.bench`` itself.

Heavy modules (torch, onnxruntime, tensorrt, matplotlib) are imported only by the backends and writers that need
them, so benchmarking an ONNX file on a device without PyTorch works (without parity, which needs the reference).
"""

from cg_export.bench.compare import (
    DEFAULT_THRESHOLD_PCT,
    ComparedRow,
    Comparison,
    compare_reports,
    format_comparison,
    resolve_threshold,
)
from cg_export.bench.environment import describe_environment
from cg_export.bench.memory import MemoryProbe
from cg_export.bench.plot import PLOT_HINT, import_pyplot, write_plot
from cg_export.bench.report import RESULT_KEYS, BenchReport, BenchResult, load_report, write_json
from cg_export.bench.running import (
    DEFAULT_BATCHES,
    DEFAULT_SIZES,
    ReferenceOutputs,
    backend_label,
    backend_of_file,
    photograph_batch,
    run_benchmark,
)
from cg_export.bench.targets import (
    REFERENCE_HINT,
    BenchTarget,
    Reference,
    find_reference,
    targets_from_files,
)
from cg_export.bench.timing import (
    DEFAULT_DURATION_S,
    DEFAULT_WARMUP,
    LATENCY_KEYS,
    MIN_SAMPLES,
    LatencyStats,
    TimingSettings,
    format_speedup,
    speedup,
    time_calls,
    time_device_runs,
)
from cg_export.bench.writers import (
    SHORT_HEADER,
    TABLE_HEADER,
    TABLE_WIDTH,
    baselines,
    describe_row,
    format_ms,
    format_table,
    format_value,
    progress_line,
    rich_table,
    row_status,
    table_cells,
    to_markdown,
    write_markdown,
)

__all__ = [
    "DEFAULT_BATCHES", "DEFAULT_DURATION_S", "DEFAULT_SIZES", "DEFAULT_THRESHOLD_PCT", "DEFAULT_WARMUP",
    "LATENCY_KEYS", "MIN_SAMPLES", "PLOT_HINT", "REFERENCE_HINT", "RESULT_KEYS", "SHORT_HEADER",
    "TABLE_HEADER", "TABLE_WIDTH",
    "BenchReport", "BenchResult", "BenchTarget", "ComparedRow", "Comparison", "LatencyStats", "MemoryProbe",
    "Reference", "ReferenceOutputs", "TimingSettings",
    "backend_label", "backend_of_file", "baselines", "compare_reports", "describe_environment", "describe_row", "find_reference",
    "format_comparison", "format_ms", "format_speedup", "format_table", "format_value", "import_pyplot", "load_report",
    "photograph_batch", "progress_line", "resolve_threshold", "rich_table", "row_status", "run_benchmark", "speedup", "table_cells",
    "targets_from_files", "time_calls", "time_device_runs", "to_markdown", "write_json", "write_markdown",
    "write_plot",
]
