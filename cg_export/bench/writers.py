"""A report for people: the terminal table (rendered by rich), Markdown, and one progress line per finished row.

Both tables carry the same cells (:func:`table_cells`); a row's notes become ``[n]`` marks with the notes numbered
below the table, so a long reason does not stretch every row.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from rich.box import Box
from rich.console import Console
from rich.table import Table

from cg_export.bench.report import BenchReport, BenchResult
from cg_export.files import atomic_output

TABLE_HEADER = ("model", "backend", "precision", "device", "size", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ms",
                "compute p50 ms", "img/s", "peak MB", "PSNR dB", "max abs err", "GMACs", "params M", "note")
NUMERIC_COLUMNS = range(TABLE_HEADER.index("batch"), TABLE_HEADER.index("note"))
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


def table_cells(report: BenchReport) -> tuple[list[list[str]], list[str]]:
    """The cells of every row under :data:`TABLE_HEADER`, notes replaced by ``[n]`` marks; and the notes, in order.

    Rows with the same note share its number.
    """
    notes: list[str] = []
    rows = []
    for r in report.results:
        mark = ""
        if r.note:
            if r.note not in notes:
                notes.append(r.note)
            mark = f"[{notes.index(r.note) + 1}]"
        lat = r.latency
        rows.append([
            r.model, r.backend, r.precision or "-", r.device or "-", f"{r.height}x{r.width}", str(r.batch),
            *(format_ms(getattr(lat, key) if lat else None) for key in ("p50", "p90", "p99", "mean")),
            format_ms(r.compute.p50 if r.compute else None),
            format_value(r.throughput_ips, 2), format_value(r.peak_mem_mb, 0), format_value(r.psnr_db, 1),
            "-" if r.max_abs_err is None else f"{r.max_abs_err:.2e}",
            "-" if r.macs is None else f"{r.macs / 1e9:.2f}", "-" if r.params is None else f"{r.params / 1e6:.3f}", mark,
        ])
    return rows, notes


def rich_table(report: BenchReport) -> Table:
    """The report as a :class:`rich.table.Table` (numbers right-aligned, cells never wrapped), without the notes."""
    table = Table(box=ASCII_SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style=None)
    for index, title in enumerate(TABLE_HEADER):
        table.add_column(title, justify="right" if index in NUMERIC_COLUMNS else "left", no_wrap=True)
    for cells in table_cells(report)[0]:
        table.add_row(*cells)
    return table


def format_table(report: BenchReport) -> str:
    """The report as an aligned plain-text table with numbered notes below it, for the terminal and for logs.

    The table is as wide as its cells need, whatever the terminal's width: a report is read in logs and CI output
    too, where a table squeezed to 80 columns would cut model paths.
    """
    table = rich_table(report)
    measuring = Console(file=io.StringIO(), width=1_000_000, color_system=None)
    width = measuring.measure(table).maximum
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False, markup=False, emoji=False)
    console.print(table)
    lines = [line.rstrip() for line in console.file.getvalue().splitlines()]  # type: ignore[attr-defined]
    lines += [f"[{i}] {note}" for i, note in enumerate(table_cells(report)[1], 1)]
    return "\n".join(lines)


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
