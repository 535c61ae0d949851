"""The report model: one :class:`BenchResult` per row, a :class:`BenchReport` per run, and their JSON form.

The JSON shape is documented in the README (``{"environment": {...}, "results": [{...}, ...]}``); its writer
(:func:`write_json`) and reader (:func:`load_report`) live here together so they cannot drift apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cg_export.bench.timing import LatencyStats
from cg_export.errors import CgExportError
from cg_export.files import atomic_output

RESULT_KEYS = (
    "model", "backend", "precision", "device", "height", "width", "batch", "latency_ms", "throughput_ips",
    "peak_mem_mb", "psnr_db", "max_abs_err",
)


@dataclass
class BenchResult:
    """One row of the report: one model at one input size and batch size.

    Latency, throughput, memory and parity are ``None`` where they could not be measured; ``notes`` says why.
    """

    model: str
    backend: str
    precision: str | None
    device: str | None
    height: int
    width: int
    batch: int
    latency: LatencyStats | None = None
    compute: LatencyStats | None = None
    throughput_ips: float | None = None
    peak_mem_mb: float | None = None
    psnr_db: float | None = None
    max_abs_err: float | None = None
    notes: list[str] = field(default_factory=list)
    macs: int | None = None
    params: int | None = None

    @property
    def available(self) -> bool:
        """Whether the model ran at this size and batch."""
        return self.latency is not None

    @property
    def note(self) -> str | None:
        """The notes on one line, or ``None``."""
        return "; ".join(self.notes) if self.notes else None

    @property
    def key(self) -> tuple[str, str, str | None, str | None, int, int, int]:
        """What identifies a row across reports: the model's file name, backend, precision, device, size, batch."""
        return (Path(self.model).name, self.backend, self.precision, self.device, self.height, self.width, self.batch)

    def to_json(self) -> dict[str, Any]:
        """The row as in the README: the issue's keys, then ``compute_ms`` and ``note``."""
        psnr: float | str | None = self.psnr_db
        if psnr is not None and not math.isfinite(psnr):
            # Strict JSON has neither: identical outputs are "inf", a non-finite output (NaN weights) "nan".
            psnr = "inf" if math.isinf(psnr) else "nan"
        return {
            "model": self.model,
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "height": self.height,
            "width": self.width,
            "batch": self.batch,
            "latency_ms": self.latency.to_json() if self.latency else None,
            "throughput_ips": None if self.throughput_ips is None else round(self.throughput_ips, 3),
            "peak_mem_mb": None if self.peak_mem_mb is None else round(self.peak_mem_mb, 1),
            "psnr_db": psnr,
            "max_abs_err": self.max_abs_err,
            "compute_ms": self.compute.to_json() if self.compute else None,
            "note": self.note,
            "macs": self.macs,
            "params": self.params,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchResult:
        """Inverse of :meth:`to_json`."""
        psnr = data.get("psnr_db")
        return cls(
            model=str(data["model"]),
            backend=str(data["backend"]),
            precision=data.get("precision"),
            device=data.get("device"),
            height=int(data["height"]),
            width=int(data["width"]),
            batch=int(data["batch"]),
            latency=LatencyStats.from_json(data["latency_ms"]) if data.get("latency_ms") else None,
            compute=LatencyStats.from_json(data["compute_ms"]) if data.get("compute_ms") else None,
            throughput_ips=data.get("throughput_ips"),
            peak_mem_mb=data.get("peak_mem_mb"),
            psnr_db=math.inf if psnr == "inf" else math.nan if psnr == "nan" else psnr,
            max_abs_err=data.get("max_abs_err"),
            notes=[data["note"]] if data.get("note") else [],
            macs=data.get("macs"),
            params=data.get("params"),
        )


@dataclass
class BenchReport:
    """Every row of one benchmark run, and the machine it ran on.

    Attributes:
        environment: ``{"cpu", "cores", "gpu", "python", "versions"}`` (see :func:`describe_environment`).
        results: The rows, in the order they ran.
        reference: Where parity came from (or why there is none); not part of the JSON.
        timing: How rows were timed (:meth:`TimingSettings.describe`); not part of the JSON.
    """

    environment: dict[str, Any]
    results: list[BenchResult]
    reference: str = ""
    timing: str = ""

    def to_json(self) -> dict[str, Any]:
        """``{"environment": {...}, "results": [{...}, ...]}``, the shape the README documents."""
        return {"environment": self.environment, "results": [r.to_json() for r in self.results]}

    @classmethod
    def from_json(cls, data: Any, source: str = "report") -> BenchReport:
        """Read a report written by :func:`write_json`.

        Raises:
            CgExportError: ``data`` is not a cg-bench report.
        """
        try:
            return cls(dict(data["environment"]), [BenchResult.from_json(row) for row in data["results"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise CgExportError(f"{source}: not a cg-bench JSON report ({type(exc).__name__}: {exc})") from None


def load_report(path: str | Path) -> BenchReport:
    """Read a JSON report (a ``--compare`` baseline).

    Raises:
        CgExportError: missing file, invalid JSON, or not a cg-bench report.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CgExportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CgExportError(f"{path}: not a readable JSON report ({exc})") from None
    return BenchReport.from_json(data, str(path))


def write_json(report: BenchReport, path: str | Path) -> Path:
    """Write the report as JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return Path(path)
