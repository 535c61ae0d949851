"""Every line the commands print: an aligned ``label  text`` for progress, and the parity and bench lines that
several commands share, so ``cg-export onnx``, ``cg-export trt`` and ``cg-bench`` say the same thing the same way.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from cg_export.parity import DEFAULT_MIN_PSNR, ParityReport, format_psnr

if TYPE_CHECKING:
    from cg_export.bench import BenchResult
    from cg_export.export import ExportOutcome

LABEL_WIDTH = 10


def echo(label: str, text: str) -> None:
    """Print an aligned ``label  text`` progress line (flushed, so it shows while the next step runs)."""
    typer.echo(f"{label:<{LABEL_WIDTH}}{text}")
    sys.stdout.flush()


def print_parity(parity: ParityReport | None, precision: str, reference: str, min_psnr_db: float | None) -> None:
    """One ``parity`` line per verified input and a ``verified`` verdict, or ``verify  skipped`` without checks.

    Args:
        parity: What verification measured; ``None`` when it was switched off.
        precision: The artifact's precision; picks the default threshold shown.
        reference: What the artifact was compared with, e.g. ``"PyTorch"``.
        min_psnr_db: The ``--min-psnr`` given, or ``None`` for the precision's default.
    """
    if parity is None:
        echo("verify", "skipped (--no-verify)")
        return
    for case in parity.cases:
        echo("parity", f"{case.label}: max abs error {case.max_abs_err:.2e}, PSNR {format_psnr(case.psnr_db)}")
    threshold = DEFAULT_MIN_PSNR[precision] if min_psnr_db is None else min_psnr_db
    echo("verified", f"{precision} vs {reference}: {parity.summary()}; threshold {threshold:g} dB")


def print_written(outcome: ExportOutcome) -> None:
    """The last line of every export command, the same for every format: ``wrote  ONNX int8: g_int8.onnx (2.1 MB)
    in 6.3 s`` (:meth:`cg_export.export.ExportOutcome.line`)."""
    echo("wrote", outcome.line())


class BenchRowPrinter:
    """Prints each benchmark row as it finishes (pass it as ``run_benchmark(progress=...)``).

    A model that cannot open fails every row the same way, so the reason is printed once, on its first row.
    """

    def __init__(self) -> None:
        self._said: set[str] = set()

    def __call__(self, row: BenchResult) -> None:
        from cg_export.bench import progress_line

        echo(*progress_line(row, with_note=row.available or row.note not in self._said))
        if not row.available:
            self._said.add(row.note or "")
