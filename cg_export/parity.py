"""Output parity between a reference runner and a candidate, measured on real photographs.

Two numbers per case: the max absolute error of the float outputs (in the generator's [-1, 1] range) and the
PSNR of the 8-bit images a viewer would see. Identical 8-bit outputs give ``inf`` dB. An output holding NaN or
infinite values has no parity at all: both numbers are then NaN and :func:`check_parity` fails it, whatever the
thresholds (NaN outputs round to black 8-bit images, which would otherwise compare as "identical").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cg_export.backends.base import Runner
from cg_export.errors import ParityError
from cg_export.images import RGB_INPUT, fit_to_size, sample_photographs, to_model_input, to_uint8

# Acceptance thresholds by precision. fp32: a tenth of an 8-bit level (accumulation order alone gives ~1e-4 on a
# 9-block generator); fp16 and int8 are judged by what a viewer sees (PSNR on 8-bit output).
DEFAULT_MIN_PSNR = {"fp32": 50.0, "fp16": 40.0, "int8": 30.0}
FP32_MAX_ABS_ERR = 1e-3
# What to try next when a precision misses its floor (printed with the failure).
NEXT_STEP = {
    "fp32": "check that the checkpoint and --arch are right; lower thresholds only knowingly",
    "fp16": "ship fp32, or lower --min-psnr knowingly",
    # Said where the calibration that made the file is not known (TensorRT, OpenVINO from an int8 .onnx); the int8
    # exporter, which knows it, names the methods it did not try (cg_export.export.quantize.int8_next_step).
    "int8": "re-export the int8 .onnx calibrated on more (and more typical) photographs of your own, or with another "
            "--calib-method than the one it was made with, or ship fp16",
}


@dataclass(frozen=True)
class ParityCase:
    """Parity of one input batch: its description, max abs error and 8-bit PSNR.

    Attributes:
        label: What the input was.
        max_abs_err: Largest absolute difference; NaN when an output is not finite.
        psnr_db: PSNR of the 8-bit images; NaN when an output is not finite.
        non_finite: NaN or infinite values in the candidate's and the reference's outputs.
    """

    label: str
    max_abs_err: float
    psnr_db: float
    non_finite: tuple[int, int] = (0, 0)

    @property
    def finite(self) -> bool:
        """Whether both outputs were finite numbers."""
        return self.non_finite == (0, 0)


@dataclass
class ParityReport:
    """Parity over several inputs; the summary numbers are the worst case."""

    cases: list[ParityCase] = field(default_factory=list)

    @property
    def finite(self) -> bool:
        """Whether every case's outputs were finite numbers."""
        return all(c.finite for c in self.cases)

    @property
    def max_abs_err(self) -> float:
        """Largest max-abs error over all cases (NaN if any output was not finite)."""
        if not self.finite:
            return math.nan
        return max((c.max_abs_err for c in self.cases), default=0.0)

    @property
    def psnr_db(self) -> float:
        """Lowest PSNR over all cases (NaN if any output was not finite)."""
        if not self.finite:
            return math.nan
        return min((c.psnr_db for c in self.cases), default=math.inf)

    def summary(self) -> str:
        """One line: worst PSNR and max abs error, and over what."""
        labels = ", ".join(c.label for c in self.cases)
        return f"PSNR {format_psnr(self.psnr_db)}, max abs error {self.max_abs_err:.2e} (worst of {labels})"


PASSES, BELOW_FLOOR = "passes", "below floor"


def psnr_floor(precision: str | None, min_psnr_db: float | None = None) -> float | None:
    """The lowest PSNR a model of ``precision`` may have: ``min_psnr_db`` when given, else :data:`DEFAULT_MIN_PSNR`'s
    (``None`` for a precision it does not know, such as a row with no precision)."""
    if min_psnr_db is not None:
        return min_psnr_db
    return DEFAULT_MIN_PSNR.get(precision or "")


def floor_status(psnr_db: float | None, floor_db: float | None) -> str | None:
    """:data:`PASSES` or :data:`BELOW_FLOOR` (a NaN PSNR, from non-finite outputs, is below any floor); ``None``
    when there is no PSNR or no floor to judge it by. cg-bench's table and deploy's report both say it this way."""
    if psnr_db is None or floor_db is None:
        return None
    return PASSES if psnr_db >= floor_db else BELOW_FLOOR


def format_psnr(psnr_db: float) -> str:
    """``"inf dB"`` for identical outputs, ``"not a number"`` for non-finite outputs, else one decimal."""
    if math.isnan(psnr_db):
        return "not a number (NaN/Inf outputs)"
    return "inf dB (identical)" if math.isinf(psnr_db) else f"{psnr_db:.1f} dB"


def psnr_8bit(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR in dB between two float outputs in [-1, 1], after both are rounded to 8-bit images."""
    return psnr_uint8(to_uint8(reference), to_uint8(candidate))


def psnr_uint8(reference: np.ndarray, candidate: np.ndarray) -> float:
    """PSNR in dB between two 8-bit images (or batches) of the same shape; ``inf`` when identical."""
    diff = reference.astype(np.float64) - candidate.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def compare_outputs(label: str, reference: np.ndarray, candidate: np.ndarray) -> ParityCase:
    """Compare two output batches of the same shape."""
    if reference.shape != candidate.shape:
        raise ParityError(f"{label}: output shapes differ: {reference.shape} vs {candidate.shape}", None)
    non_finite = (int(np.size(candidate) - np.count_nonzero(np.isfinite(candidate))),
                  int(np.size(reference) - np.count_nonzero(np.isfinite(reference))))
    if non_finite != (0, 0):
        return ParityCase(label, math.nan, math.nan, non_finite)
    err = float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64))))
    return ParityCase(label, err, psnr_8bit(reference, candidate))


def photograph_batches(
    sizes: list[tuple[int, int]], photos_per_batch: int = 2, input_kind: str = RGB_INPUT
) -> list[tuple[str, np.ndarray]]:
    """Model inputs made of real photographs, one batch per ``(height, width)``.

    Each batch holds ``photos_per_batch`` different photographs fitted to the size, so the dynamic batch
    dimension is exercised too. ``input_kind`` (see :func:`cg_export.images.model_input_kind`) makes them the
    grey-scale or Lab-L versions a one-channel model takes.
    """
    photos = sample_photographs(photos_per_batch)
    batches = []
    for height, width in sizes:
        images = [fit_to_size(image, height, width) for _, image in photos]
        names = "+".join(name for name, _ in photos)
        batches.append((f"{names} @ {height}x{width}", to_model_input(images, input_kind)))
    return batches


def measure_parity(reference: Runner, candidate: Runner, inputs: list[tuple[str, np.ndarray]]) -> ParityReport:
    """Run every input through both (already active) runners and compare."""
    report = ParityReport()
    for label, batch in inputs:
        report.cases.append(compare_outputs(label, reference(batch), candidate(batch)))
    return report


def check_parity(
    report: ParityReport, precision: str, min_psnr_db: float | None = None, max_abs_err: float | None = None,
    next_step: str | None = None,
) -> None:
    """Raise :class:`ParityError` when ``report`` misses the thresholds for ``precision``.

    Outputs that are not finite numbers always fail.

    Args:
        report: Measured parity.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``; picks the default thresholds.
        min_psnr_db: Lowest acceptable PSNR; ``None`` uses :data:`DEFAULT_MIN_PSNR`.
        max_abs_err: Largest acceptable max abs error; ``None`` uses 1e-3 for fp32 and no limit otherwise.
        next_step: What to try next, said with the failure; ``None``: the precision's :data:`NEXT_STEP` (a caller
            that knows what was tried, such as the int8 exporter's calibration method, says something better).
    """
    min_psnr = DEFAULT_MIN_PSNR[precision] if min_psnr_db is None else min_psnr_db
    limit = (FP32_MAX_ABS_ERR if precision == "fp32" else math.inf) if max_abs_err is None else max_abs_err
    problems = []
    broken = [c for c in report.cases if not c.finite]
    if broken:
        candidate, reference = (sum(c.non_finite[i] for c in broken) for i in (0, 1))
        problems.append(f"the outputs are not finite numbers ({candidate} NaN/Inf values from the model checked, "
                        f"{reference} from the reference, on {', '.join(c.label for c in broken)}): its weights "
                        "or graph are broken")
    elif report.psnr_db < min_psnr:
        problems.append(f"PSNR {format_psnr(report.psnr_db)} < {min_psnr:g} dB")
    if not broken and report.max_abs_err > limit:
        problems.append(f"max abs error {report.max_abs_err:.2e} > {limit:.0e}")
    if problems:
        advice = "" if broken else f"; {next_step or NEXT_STEP[precision]}"
        raise ParityError(f"{precision} parity check failed: {'; '.join(problems)} ({report.summary()}){advice}",
                          report)
