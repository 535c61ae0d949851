"""The latency plot: p50 by input size, one bar per model/backend/precision/batch, whiskers to p99 (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cg_export.bench.report import BenchReport
from cg_export.errors import CgExportError
from cg_export.files import atomic_output
from cg_export.optional import extra_hint, import_optional

PLOT_HINT = extra_hint("plot")


def import_pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend, or a one-line :class:`MissingDependencyError`."""
    matplotlib = import_optional("matplotlib", "for --plot", PLOT_HINT)
    matplotlib.use("Agg")
    return import_optional("matplotlib.pyplot", "for --plot", PLOT_HINT)

def write_plot(report: BenchReport, path: str | Path) -> Path:
    """Plot p50 latency by input size, one bar per model/backend/precision/batch, whiskers to p99; atomically.

    The format follows the extension (``.png``, ``.svg``, ``.pdf``).

    Raises:
        MissingDependencyError: matplotlib is not installed.
        CgExportError: no row has a latency to plot.
    """
    plt = import_pyplot()
    rows = [r for r in report.results if r.latency is not None]
    if not rows:
        raise CgExportError("nothing to plot: no model ran")
    sizes = sorted({(r.height, r.width) for r in rows}, key=lambda s: (s[0] * s[1], s))
    series = list(dict.fromkeys(
        (r.model, r.backend, r.precision, r.device, r.batch) for r in rows))
    by_key = {((r.model, r.backend, r.precision, r.device, r.batch), (r.height, r.width)): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.45 * len(series) * len(sizes)), 4.8))
    width = 0.8 / len(series)
    for i, key in enumerate(series):
        xs, p50, whisker = [], [], []
        for j, size in enumerate(sizes):
            r = by_key.get((key, size))
            if r is not None and r.latency is not None:
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                p50.append(r.latency.p50)
                whisker.append(r.latency.p99 - r.latency.p50)
        model, backend, precision, device, batch = key
        label = f"{Path(model).name} | {backend} {precision} {device}" + (f" | batch {batch}" if batch != 1 else "")
        ax.bar(xs, p50, width, yerr=[[0] * len(whisker), whisker], capsize=2, label=label)
    ax.set_xticks(range(len(sizes)), [f"{h}x{w}" for h, w in sizes])
    ax.set_yscale("log")
    ax.set_xlabel("input size (height x width)")
    ax.set_ylabel("latency, ms (bar p50, whisker p99)")
    gpu = report.environment.get("gpu")
    ax.set_title(f"cg-bench on {gpu or report.environment.get('cpu', 'this machine')}", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.grid(axis="y", which="both", alpha=0.3)
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
    except ValueError as exc:  # an extension matplotlib cannot write
        raise CgExportError(f"--plot {path}: {exc}") from None
    finally:
        plt.close(fig)
    return Path(path)
