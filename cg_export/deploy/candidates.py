"""The candidates of ``cg-export deploy``: the formats table's precision matrix (:mod:`cg_export.formats`), one
candidate per format and precision that deploy makes, and how each is made and made again by hand.

Nothing here is a table of its own: a candidate is a (format row, precision) pair; its name, runtime, suffix,
requirements and targets are the row's; it is made through :func:`cg_export.export.run_export` like every export;
and its shell command is the format's own ``cg-export`` verb with the options of the request, spelled by
:mod:`cg_export.deploy.commands`. Adding a format to the table adds its candidates here.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cg_export.export import ExportRequest, make_options, run_export
from cg_export.formats import FORMATS, PRECISIONS, TARGETS, Format
from cg_export.models import LoadedGenerator

if TYPE_CHECKING:  # the exporter imports torch and onnx: only when a candidate is made
    from cg_export.export.onnx import TraceCache

PRECISION_RANK = {precision: rank for rank, precision in enumerate(PRECISIONS)}
"""Lower is more precise: ties in latency are broken towards the lower rank."""

STUDENT_PREFIX = "student-"


@dataclass(frozen=True)
class ExportJob:
    """What a candidate needs to write its artifact.

    Attributes:
        generator: The loaded source generator (the teacher or the student).
        output: The artifact path to write (its suffix is the format's).
        needed: The artifact of the candidate this one converts (:attr:`CandidateSpec.needs`), else ``None``.
        calibration: Folder of the calibration photographs (never the verification ones).
        size: ``(height, width)`` the deployment runs at.
        engine_sizes: ``((min height, min width), (max height, max width))`` a TensorRT engine's profile takes;
            ``None``: exactly ``size``.
        trace_cache: The source's :class:`cg_export.export.onnx.TraceCache`: its fp32, fp16 and int8 ONNX files
            share one trace.
    """

    generator: LoadedGenerator
    output: Path
    needed: Path | None
    calibration: Path
    size: tuple[int, int]
    engine_sizes: tuple[tuple[int, int], tuple[int, int]] | None = None
    trace_cache: TraceCache | None = None


@dataclass(frozen=True)
class CandidateSpec:
    """One candidate: a format of the table made in one precision.

    Attributes:
        format: The formats-table row.
        precision: ``fp32``, ``fp16`` or ``int8``; picks its default PSNR floor.
        needs: The candidate whose artifact it converts (``onnx-int8`` for ``openvino-int8``), or ``None`` (made
            from the checkpoint).

    A candidate writes into a folder of its own, so every file written beside the artifact (an IR's ``.bin``, an
    engine's ``.json`` sidecar) travels with it.
    """

    format: Format
    precision: str
    needs: str | None = None

    @property
    def name(self) -> str:
        """Its name in reports and for ``--candidate``: ``<format>-<precision>`` (``onnx-int8``)."""
        return f"{self.format.name}-{self.precision}"

    @property
    def backend(self) -> str:
        """The runtime that runs its artifact, as ``deploy.json`` names it (``onnxruntime``)."""
        return self.format.backend

    @property
    def runtime(self) -> str:
        """The runtime's name for people."""
        return self.format.runtime

    @property
    def suffix(self) -> str:
        """The artifact's file suffix."""
        return self.format.suffix

    @property
    def targets(self) -> frozenset[str]:
        """The deploy targets it is a candidate for."""
        return self.format.targets

    @property
    def runner_options(self) -> tuple[tuple[str, object], ...]:
        """Options for :func:`cg_export.backends.runner_for` when it is verified and timed here."""
        return self.format.deploy_runner_options

    def missing(self) -> str | None:
        """Why this candidate cannot be made here, or ``None`` when everything it needs is installed."""
        return self.format.missing()

    def make(self, job: ExportJob) -> Path:
        """Write the artifact: the checkpoint copied for the PyTorch reference, else the format's exporter with
        verification off (deploy verifies every candidate itself, on the user's held-out photographs at the
        deployment size, rather than on the bundled photographs at 256 px)."""
        if self.format.exporter is None:
            shutil.copy2(job.generator.path, job.output)
            return job.output
        options = make_options(self.format, self.request(job))
        if job.trace_cache is not None and hasattr(options, "trace_cache"):  # formats that trace a checkpoint
            options = dataclasses.replace(options, trace_cache=job.trace_cache)
        return run_export(self.format.name, job.needed if self.needs else job.generator, job.output,
                          options).path  # type: ignore[return-value]

    def request(self, job: ExportJob) -> ExportRequest:
        """The export request of this candidate (what its shell command spells too)."""
        # A converted format takes its int8 from the QDQ file it converts: calibration belongs to the first export.
        calibrate = self.precision == "int8" and self.needs is None
        return ExportRequest(self.precision, calibration=job.calibration if calibrate else None, size=job.size,
                             size_range=job.engine_sizes, verify=False)


def _candidates() -> tuple[CandidateSpec, ...]:
    specs = []
    for row in FORMATS:
        for cell in row.conversions:
            if not cell.deploy:
                continue
            needs = f"{row.converts_from}-{cell.made_from}" if row.converts_from else None
            specs.append(CandidateSpec(row, cell.precision, needs))
    return tuple(specs)


CANDIDATES: tuple[CandidateSpec, ...] = _candidates()
"""Every candidate, in the formats table's order (the PyTorch reference first, converted formats after their
sources)."""


def candidate_named(name: str) -> CandidateSpec:
    """The candidate called ``name`` (without the ``student-`` prefix); ``KeyError`` if there is none."""
    for spec in CANDIDATES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def candidate_names() -> list[str]:
    """Every candidate's name, for messages."""
    return [spec.name for spec in CANDIDATES]


__all__ = ["CANDIDATES", "PRECISION_RANK", "STUDENT_PREFIX", "TARGETS", "CandidateSpec", "ExportJob",
           "candidate_named", "candidate_names"]
