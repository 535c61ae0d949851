"""A report for people: the terminal table (rendered by rich), Markdown, and one progress line per finished row.

Both tables carry the same cells (:func:`table_cells`); a row's notes become ``[n]`` marks with the notes numbered
below the table, so a long reason does not stretch every row.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import replace
from pathlib import Path

from rich.box import Box
from rich.console import Console
from rich.table import Table

from cg_export.bench.report import BenchReport, BenchResult
from cg_export.bench.timing import format_speedup, speedup
from cg_export.files import atomic_output
from cg_export.parity import floor_status, psnr_floor

TABLE_HEADER = ("model", "backend", "precision", "device", "size", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ms",
                "compute p50 ms", "img/s", "speed-up", "peak MB", "PSNR dB", "status", "max abs err", "GMACs",
                "params M", "note")
# The default terminal table: what decides between rows (how fast, how much faster, how close, acceptable or not)
# in at most TABLE_WIDTH columns; --wide shows TABLE_HEADER.
# Without a device column the backend cell carries the device where its name does not say it (torch:cuda:0).
SHORT_HEADER = ("model", "backend", "precision", "size", "batch", "p50 ms", "speed-up", "PSNR dB", "status", "note")
TABLE_WIDTH = 100
# The narrowest a model name is cut to ("...int8.onnx"); below it a file is no longer told apart by its name.
MIN_MODEL_WIDTH = 12
TEXT_COLUMNS = frozenset({"model", "backend", "precision", "device", "size", "status", "note"})
# rich's SIMPLE_HEAD drawn in ASCII: a dashed rule under the header and nothing else, so the table reads the same
# in a log file, a CI console or a terminal without Unicode.
ASCII_SIMPLE_HEAD = Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)


def format_value(value: float | None, digits: int = 1) -> str:
    """A number for tables: ``-`` when missing, ``inf`` for identical outputs."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def format_ms(value: float | None) -> str:
    """Milliseconds with about four significant digits, ``-`` when missing."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def baselines(report: BenchReport) -> dict[tuple[int, int, int], BenchResult]:
    """The row each row's speed-up is relative to, by (height, width, batch): the PyTorch fp32 row of that size and
    batch (the parity reference, as in deploy's report), else the first row of it that ran."""
    found: dict[tuple[int, int, int], BenchResult] = {}
    for row in report.results:
        key = (row.height, row.width, row.batch)
        if not row.available:
            continue
        current = found.get(key)
        is_reference = row.backend == "torch" and row.precision == "fp32"
        if current is None or (is_reference and not (current.backend == "torch" and current.precision == "fp32")):
            found[key] = row
    return found


def backend_on_device(row: BenchResult) -> str:
    """The backend with its device where the backend's label does not already say it: ``torch:cuda:0``,
    ``openvino:CPU``, but ``onnxruntime:CUDA`` as it is."""
    if row.device is None or ":" in row.backend:
        return row.backend
    return f"{row.backend}:{row.device}"


def row_status(row: BenchResult) -> str:
    """``passes`` or ``below floor`` (its PSNR against its precision's floor, as deploy judges), ``-`` without PSNR."""
    return floor_status(row.psnr_db, psnr_floor(row.precision)) or "-"


def table_cells(report: BenchReport, header: tuple[str, ...] = TABLE_HEADER) -> tuple[list[list[str]], list[str]]:
    """The cells of every row under ``header`` (:data:`TABLE_HEADER` or a subset of its titles), notes replaced by
    ``[n]`` marks; and the notes, in order. Without a ``device`` column, the backend cell names the device
    (:func:`backend_on_device`).

    Rows with the same note share its number.
    """
    notes: list[str] = []
    rows = []
    base = baselines(report)
    for r in report.results:
        mark = ""
        if r.note:
            if r.note not in notes:
                notes.append(r.note)
            mark = f"[{notes.index(r.note) + 1}]"
        lat = r.latency
        reference = base.get((r.height, r.width, r.batch))
        factor = speedup(reference.latency.p50, lat.p50) if lat and reference and reference.latency else None
        cells = {
            "model": r.model, "backend": r.backend if "device" in header else backend_on_device(r),
            "precision": r.precision or "-", "device": r.device or "-",
            "size": f"{r.height}x{r.width}", "batch": str(r.batch),
            **{f"{key} ms": format_ms(getattr(lat, key) if lat else None) for key in ("p50", "p90", "p99", "mean")},
            "compute p50 ms": format_ms(r.compute.p50 if r.compute else None),
            "img/s": format_value(r.throughput_ips, 2), "speed-up": format_speedup(factor),
            "peak MB": format_value(r.peak_mem_mb, 0), "PSNR dB": format_value(r.psnr_db, 1), "status": row_status(r),
            "max abs err": "-" if r.max_abs_err is None else f"{r.max_abs_err:.2e}",
            "GMACs": "-" if r.macs is None else f"{r.macs / 1e9:.2f}",
            "params M": "-" if r.params is None else f"{r.params / 1e6:.3f}", "note": mark,
        }
        rows.append([cells[title] for title in header])
    return rows, notes


def rich_table(report: BenchReport, wide: bool = True, gap: int = 2) -> Table:
    """The report as a :class:`rich.table.Table` (numbers right-aligned, cells never wrapped), without the notes.

    Args:
        report: The report.
        wide: Every column (:data:`TABLE_HEADER`); ``False``: :data:`SHORT_HEADER`'s.
        gap: Spaces between columns (1 or more).
    """
    header = TABLE_HEADER if wide else SHORT_HEADER
    table = Table(box=ASCII_SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, gap - 1, 0, 0),
                  header_style=None)
    for title in header:
        table.add_column(title, justify="left" if title in TEXT_COLUMNS else "right", no_wrap=True)
    for cells in table_cells(report, header)[0]:
        table.add_row(*cells)
    return table


def format_table(report: BenchReport, wide: bool = False) -> str:
    """The report as an aligned plain-text table with numbered notes below it, for the terminal and for logs.

    The default table has the columns that decide between rows (:data:`SHORT_HEADER`: p50, speed-up, PSNR and
    whether it passes its precision's floor) in at most :data:`TABLE_WIDTH` columns: long model paths are cut to
    their file name, then with "...", and notes wrap. ``wide`` gives every column (:data:`TABLE_HEADER`) as wide
    as its cells need, whatever the terminal's width: a report is read in logs and CI output too, where a table
    squeezed to 80 columns would cut model paths.
    """
    if wide:
        lines = _render(rich_table(report))
    else:
        # Two spaces between columns where the names fit beside them, else one (and the names shortened).
        fitted, gap = _fit(report, 2), 2
        if fitted is None:
            fitted, gap = _fit(report, 1) or _fit(report, 1, force=True), 1
        lines = _render(rich_table(fitted, wide=False, gap=gap))
    for i, note in enumerate(table_cells(report)[1], 1):
        text = f"[{i}] {note}"
        lines += [text] if wide else textwrap.wrap(text, TABLE_WIDTH, subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(lines)


def _fit(report: BenchReport, gap: int, force: bool = False) -> BenchReport | None:
    """The report with model names shortened until the short table fits :data:`TABLE_WIDTH` columns at this gap
    between columns: the report itself when it fits, ``None`` when even names of :data:`MIN_MODEL_WIDTH` do not
    (unless ``force``: then names of that width). Paths lose their folders first (the full path is in ``--wide``,
    ``--json`` and ``--markdown``), then names lose their start, keeping the end that tells files apart
    (``...g_int8.onnx``)."""
    width = max(len(line) for line in _render(rich_table(report, wide=False, gap=gap)))
    if width <= TABLE_WIDTH:
        return report
    rows = [replace(r, model=Path(r.model).name) for r in report.results]
    longest = max(len(r.model) for r in rows)
    width -= max(len("model"), *(len(r.model) for r in report.results)) - max(len("model"), longest)
    if width > TABLE_WIDTH:
        limit = longest - (width - TABLE_WIDTH)
        if limit < MIN_MODEL_WIDTH and not force:
            return None
        limit = max(limit, MIN_MODEL_WIDTH)
        rows = [replace(r, model=r.model if len(r.model) <= limit else "..." + r.model[3 - limit:]) for r in rows]
    return BenchReport(report.environment, rows, report.reference, report.timing)


def _render(table: Table) -> list[str]:
    """The table as lines of plain text, as wide as its cells need."""
    measuring = Console(file=io.StringIO(), width=1_000_000, color_system=None)
    width = measuring.measure(table).maximum
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False, markup=False, emoji=False)
    console.print(table)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]  # type: ignore[attr-defined]


def to_markdown(report: BenchReport) -> str:
    """The report as Markdown: what ran where, the table, and the notes."""
    env = report.environment
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    lines = [
        "# cg-bench report",
        "",
        (f"- Machine: {env.get('cpu')} ({env.get('cores')} cores, {env.get('usable_cores', env.get('cores'))} "
         f"usable, models on {env.get('threads', '?')} threads), GPU: {env.get('gpu') or 'none'}; "
         f"Python {env.get('python')}; {versions}"),
    ]
    if report.timing:
        lines.append(f"- Timing: {report.timing}; latency is end to end (host array in, host array out); "
                     "compute is device time without copies where the backend separates it")
    if report.reference:
        lines.append(f"- Parity reference (PyTorch fp32 on the CPU, real photographs): {report.reference}")
    rows, notes = table_cells(report)
    lines += ["", "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    if notes:
        lines += ["", *[f"{i}. {note}" for i, note in enumerate(notes, 1)]]
    return "\n".join(lines) + "\n"


def write_markdown(report: BenchReport, path: str | Path) -> Path:
    """Write the report as Markdown, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(to_markdown(report))
    return Path(path)


def describe_row(row: BenchResult) -> str:
    """``model backend precision HxW batch N``: which row a progress line is about."""
    return f"{row.model} {row.backend} {row.precision or '-'} {row.height}x{row.width} batch {row.batch}"


def progress_line(row: BenchResult, with_note: bool = True) -> tuple[str, str]:
    """What to print when a row has finished: ``("timed", "...: p50 X ms, PSNR Y dB")`` or ``("skipped", ...)``.

    Args:
        row: The finished row.
        with_note: For a skipped row, append why (a caller can leave out a reason it has already printed).
    """
    what = describe_row(row)
    if row.latency is None:
        return "skipped", f"{what}: {row.note}" if with_note else what
    psnr = "" if row.psnr_db is None else f", PSNR {format_value(row.psnr_db)} dB"
    return "timed", f"{what}: p50 {format_ms(row.latency.p50)} ms{psnr}"
