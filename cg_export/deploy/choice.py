"""The decision of ``cg-export deploy``, as a pure function of the candidates' rows.

The rule: the fastest candidate (end-to-end p50 latency at the deployment size) whose worst-photo PSNR against the
PyTorch fp32 reference is at or above its floor. Latencies within :data:`TIE_TOLERANCE` of the fastest passing one
are a tie (two runs of one model on a busy CPU differ by that much), and a tie goes to the higher precision: it
draws closer to the reference for no measurable cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from cg_export.bench import LatencyStats
from cg_export.bench.timing import format_speedup, speedup
from cg_export.deploy.candidates import PRECISION_RANK
from cg_export.parity import format_psnr

TIE_TOLERANCE = 0.03

OK, FAILED, UNAVAILABLE = "ok", "failed", "not available"


@dataclass
class CandidateRow:
    """One candidate's outcome: made or not, how close to the reference, how fast.

    Attributes:
        name: The candidate (``onnx-int8``, ``student-onnx-fp16``).
        backend: The backends-table row that runs it.
        runtime: The runtime's name for people.
        precision: ``fp32``, ``fp16`` or ``int8``.
        floor_db: The lowest worst-photo PSNR it may have to be chosen.
        status: ``ok`` (made, verified and timed), ``failed`` (with ``reason``) or ``not available`` here.
        reason: Why it failed or is not available; for ``ok`` rows, a note or ``None``.
        source: ``teacher`` or ``student`` (the checkpoint it was made from).
        artifact: Its main file, relative to the deployment folder once kept, else its name.
        psnr_per_photo: PSNR in dB of each held-out photograph against the reference (``inf``: identical).
        max_abs_err: Largest absolute difference from the reference over the held-out photographs ([-1, 1] range).
        latency: End-to-end latency at the deployment size (milliseconds).
        compute: Device compute latency where the backend separates it from the copies.
        export_seconds: Time to make the artifact.
        command: The shell command that makes the artifact by hand.
    """

    name: str
    backend: str
    runtime: str
    precision: str
    floor_db: float
    status: str = OK
    reason: str | None = None
    source: str = "teacher"
    artifact: str | None = None
    psnr_per_photo: dict[str, float] = field(default_factory=dict)
    max_abs_err: float | None = None
    latency: LatencyStats | None = None
    compute: LatencyStats | None = None
    export_seconds: float | None = None
    command: str | None = None

    @property
    def psnr_db(self) -> float | None:
        """The worst photograph's PSNR, or ``None`` when it was not verified."""
        return min(self.psnr_per_photo.values()) if self.psnr_per_photo else None

    @property
    def passes(self) -> bool:
        """Made, verified and timed, with its worst photograph at or above its floor."""
        return (self.status == OK and self.latency is not None and self.psnr_db is not None
                and self.psnr_db >= self.floor_db)

    def fail(self, reason: str, status: str = FAILED) -> CandidateRow:
        """Mark the row failed (or not available) with a one-line reason; returns the row."""
        self.status, self.reason = status, reason.strip().splitlines()[0] if reason.strip() else status
        return self

    def to_json(self) -> dict[str, Any]:
        """The row as JSON types (an infinite PSNR is ``"inf"``, as in cg-bench's reports)."""
        return {
            "name": self.name, "backend": self.backend, "runtime": self.runtime, "precision": self.precision,
            "source": self.source, "status": self.status, "reason": self.reason, "artifact": self.artifact,
            "floor_db": self.floor_db, "passes": self.passes, "psnr_db": _json_db(self.psnr_db),
            "psnr_per_photo_db": {k: _json_db(v) for k, v in self.psnr_per_photo.items()},
            "max_abs_err": self.max_abs_err,
            "latency_ms": self.latency.to_json() if self.latency else None,
            "compute_ms": self.compute.to_json() if self.compute else None,
            "export_seconds": None if self.export_seconds is None else round(self.export_seconds, 2),
            "command": self.command,
        }


def _json_db(value: float | None) -> float | str | None:
    if value is None:
        return None
    return "inf" if math.isinf(value) else round(value, 3)


@dataclass(frozen=True)
class Decision:
    """What was chosen and why.

    Attributes:
        chosen: The chosen row, or ``None`` when no candidate passed.
        why: One line saying what was chosen and why (or why nothing was).
    """

    chosen: CandidateRow | None
    why: str


def choose(rows: list[CandidateRow], tie_tolerance: float = TIE_TOLERANCE) -> Decision:
    """The fastest row that passes its floor; latencies within ``tie_tolerance`` of it go to the higher precision.

    A faster row rejected for its floor is named with the ``--min-psnr`` that would choose it
    (:func:`accepting_min_psnr`), so taking it is a decision the user makes knowingly, in one rerun.

    Args:
        rows: Every candidate's row (failed and unavailable ones included; they are never chosen).
        tie_tolerance: Relative latency difference under which two rows count as equally fast.

    Returns:
        The decision; ``chosen`` is ``None`` when no row passes (the reason lists why each one did not).
    """
    chosen = _pick(rows, tie_tolerance)
    reference = next((row for row in rows if row.name == "torch-fp32" and row.latency is not None), None)
    if chosen is None:
        why = "; ".join(f"{row.name}: {_why_not(row, rows, tie_tolerance)}" for row in rows) or "no candidates"
        return Decision(None, f"no candidate passed: {why}")
    passing = [row for row in rows if row.passes]
    fastest = min(passing, key=lambda row: row.latency.p50)  # type: ignore[union-attr]
    parts = [f"chose {chosen.name} ({chosen.runtime} {chosen.precision}): p50 {chosen.latency.p50:.2f} ms, "  # type: ignore[union-attr]
             f"worst-photo PSNR {format_psnr(chosen.psnr_db)} >= {chosen.floor_db:g} dB"]  # type: ignore[arg-type]
    if chosen is not fastest:
        parts.append(f"{fastest.name} is within {tie_tolerance:.0%} ({fastest.latency.p50:.2f} ms), "  # type: ignore[union-attr]
                     f"so the higher precision wins the tie")
    else:
        parts.append("the fastest that passes")
    faster = [row for row in rows if row.status == OK and row.latency is not None and not row.passes
              and row.latency.p50 < chosen.latency.p50]  # type: ignore[union-attr]
    if faster:
        base = reference or chosen
        parts.append("faster but below their floor: " + ", ".join(
            _rejected(row, base, rows, tie_tolerance) for row in faster))
    if reference is not None and reference is not chosen:
        parts.append(f"{format_speedup(speedup(reference.latency.p50, chosen.latency.p50))} "  # type: ignore[union-attr]
                     "the speed of PyTorch fp32")
    return Decision(chosen, "; ".join(parts))


def _pick(rows: list[CandidateRow], tie_tolerance: float) -> CandidateRow | None:
    passing = [row for row in rows if row.passes]
    if not passing:
        return None
    fastest = min(passing, key=lambda row: row.latency.p50)  # type: ignore[union-attr]
    tied = [row for row in passing if row.latency.p50 <= fastest.latency.p50 * (1 + tie_tolerance)]  # type: ignore[union-attr]
    return min(tied, key=lambda row: (PRECISION_RANK[row.precision], row.latency.p50))  # type: ignore[union-attr]


def accepting_min_psnr(rows: list[CandidateRow], row: CandidateRow,
                       tie_tolerance: float = TIE_TOLERANCE) -> float | None:
    """The ``--min-psnr`` that makes deploy choose ``row``, or ``None`` when none does.

    ``--min-psnr`` sets every precision's floor at once, so the value is the row's worst-photo PSNR rounded down to
    one decimal (what a person types, and never above the PSNR), checked by choosing again with every floor at that
    value: a still faster row that the lower floor also accepts would be chosen instead, and then there is none.

    Args:
        rows: Every candidate's row.
        row: The candidate to accept (made, verified and timed).
        tie_tolerance: As for :func:`choose`.
    """
    if row.status != OK or row.latency is None or row.psnr_db is None or not math.isfinite(row.psnr_db):
        return None
    value = math.floor(row.psnr_db * 10) / 10
    relaxed = [replace(other, floor_db=value) for other in rows]
    chosen = _pick(relaxed, tie_tolerance)
    return value if chosen is not None and chosen.name == row.name else None


def _rejected(row: CandidateRow, base: CandidateRow, rows: list[CandidateRow], tie_tolerance: float) -> str:
    """``onnx-int8 was 4.40x ... but 27.1 dB < 30 dB (its int8 floor): rerun with --min-psnr 27.1 to accept it``."""
    than = "PyTorch fp32" if base.name == "torch-fp32" else base.name
    text = (f"{row.name} was {format_speedup(speedup(base.latency.p50, row.latency.p50))} the speed of {than} "  # type: ignore[union-attr]
            f"but {format_psnr(row.psnr_db)} < {row.floor_db:g} dB (its {row.precision} floor)")  # type: ignore[arg-type]
    return text + _how_to_accept(row, rows, tie_tolerance)


def _how_to_accept(row: CandidateRow, rows: list[CandidateRow], tie_tolerance: float) -> str:
    value = accepting_min_psnr(rows, row, tie_tolerance)
    if value is None:
        return ""
    return f": rerun with --min-psnr {value:g} to accept it"


def _why_not(row: CandidateRow, rows: list[CandidateRow], tie_tolerance: float) -> str:
    if row.status != OK:
        return f"{row.status} ({row.reason})" if row.reason else row.status
    if row.psnr_db is None:
        return "not verified"
    if row.latency is None:
        return "not timed"
    return (f"PSNR {format_psnr(row.psnr_db)} < {row.floor_db:g} dB"  # type: ignore[arg-type]
            + _how_to_accept(row, rows, tie_tolerance))


__all__ = ["FAILED", "OK", "TIE_TOLERANCE", "UNAVAILABLE", "CandidateRow", "Decision", "accepting_min_psnr", "choose"]
