"""Comparing a run with an earlier JSON report: which rows got slower than a threshold, or stopped running."""

from __future__ import annotations

from dataclasses import dataclass

from cg_export.bench.report import BenchReport
from cg_export.bench.writers import format_ms
from cg_export.errors import OptionError

DEFAULT_THRESHOLD_PCT = 10.0


@dataclass(frozen=True)
class ComparedRow:
    """One row present in both reports.

    Attributes:
        label: ``model backend precision device HxW batch N``.
        baseline_p50: Baseline p50 latency (ms), ``None`` if it was unavailable there.
        current_p50: Current p50 latency (ms), ``None`` if unavailable now.
        change_pct: ``(current - baseline) / baseline`` in percent, ``None`` when either is missing.
        regressed: Slower by more than the threshold, or unavailable now where the baseline ran.
    """

    label: str
    baseline_p50: float | None
    current_p50: float | None
    change_pct: float | None
    regressed: bool


@dataclass
class Comparison:
    """The current report against a baseline, row by row (rows match on :attr:`BenchResult.key`)."""

    threshold_pct: float
    rows: list[ComparedRow]
    only_current: list[str]
    only_baseline: list[str]

    @property
    def regressions(self) -> list[ComparedRow]:
        """The rows that regressed."""
        return [r for r in self.rows if r.regressed]


def _row_label(key: tuple[str, str, str | None, str | None, int, int, int]) -> str:
    model, backend, precision, device, h, w, batch = key
    return f"{model} {backend} {precision or '-'} {device or '-'} {h}x{w} batch {batch}"


def resolve_threshold(threshold_pct: float | None) -> float:
    """The regression threshold in percent: the default (10) for ``None``.

    Raises:
        OptionError: (field ``threshold_pct``) a negative threshold.
    """
    threshold = DEFAULT_THRESHOLD_PCT if threshold_pct is None else threshold_pct
    if not threshold >= 0:
        raise OptionError("threshold_pct", threshold, "must be 0 or more (percent)")
    return threshold


def compare_reports(baseline: BenchReport, current: BenchReport, threshold_pct: float | None = None) -> Comparison:
    """Compare p50 latencies of the rows both reports have.

    Args:
        baseline: The earlier report.
        current: This run.
        threshold_pct: A row regresses when its p50 grew by more than this percentage (default 10), or when it
            ran in the baseline and does not run now.

    Raises:
        OptionError: (field ``threshold_pct``) a negative threshold.
    """
    threshold = resolve_threshold(threshold_pct)
    base = {r.key: r for r in baseline.results}
    now = {r.key: r for r in current.results}
    rows = []
    for key, cur in now.items():
        if key not in base:
            continue
        old = base[key]
        old_p50 = old.latency.p50 if old.latency else None
        new_p50 = cur.latency.p50 if cur.latency else None
        change = None if old_p50 is None or new_p50 is None or old_p50 <= 0 else (new_p50 - old_p50) / old_p50 * 100
        regressed = (change is not None and change > threshold) or (old_p50 is not None and new_p50 is None)
        rows.append(ComparedRow(_row_label(key), old_p50, new_p50, change, regressed))
    return Comparison(
        threshold,
        rows,
        [_row_label(k) for k in now if k not in base],
        [_row_label(k) for k in base if k not in now],
    )


def format_comparison(comparison: Comparison) -> str:
    """The comparison as lines for the terminal: one per matched row, then what only one report has."""
    lines = [f"compared with the baseline (regression: p50 more than {comparison.threshold_pct:g}% slower)"]
    for r in comparison.rows:
        if r.change_pct is not None:
            verdict = "REGRESSION" if r.regressed else "ok"
            lines.append(f"  {verdict:<10} {r.label}: p50 {format_ms(r.baseline_p50)} -> {format_ms(r.current_p50)} ms "
                         f"({r.change_pct:+.1f}%)")
        elif r.regressed:
            lines.append(f"  {'REGRESSION':<10} {r.label}: ran in the baseline, unavailable now")
        else:
            lines.append(f"  {'new':<10} {r.label}: unavailable in the baseline, p50 {format_ms(r.current_p50)} ms now")
    if not comparison.rows:
        lines.append("  no row of this run matches a row of the baseline (model file, backend, precision, device, "
                     "size, batch)")
    lines += [f"  {'not in baseline':<10} {label}" for label in comparison.only_current]
    lines += [f"  {'baseline only':<10} {label}" for label in comparison.only_baseline]
    return "\n".join(lines)
