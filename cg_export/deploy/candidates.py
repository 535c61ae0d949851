"""The candidates of ``cg-export deploy``: one table row per artifact it can make, and how each is made.

Adding a runtime or a precision is one row of :data:`CANDIDATES` (plus, for a new kind of file, one maker
function). A row says which backend of the backends table runs it, its precision, which earlier candidate it is
converted from, the import names it needs (checked with :func:`importlib.util.find_spec`, nothing is imported),
the targets it is a candidate for, and the exact command that makes it by hand. Every exporter is called from one
function each (:func:`export_onnx_file`, :func:`export_openvino_file`, :func:`build_trt_engine`), so a change of
an exporter's signature is a change in one place.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cg_export.models import LoadedGenerator

if TYPE_CHECKING:  # the exporter imports torch and onnx: only when a candidate is made
    from cg_export.export.onnx import TraceCache

TARGETS = ("local", "jetson")
"""``local``: what this machine can run (the default). ``jetson``: TensorRT on a Jetson; the ONNX candidates are
made and verified here and the TensorRT ones are finished on the device with the commands written into
``deploy.json`` and the report."""

PRECISION_RANK = {"fp32": 0, "fp16": 1, "int8": 2}
"""Lower is more precise: ties in latency are broken towards the lower rank."""


@dataclass(frozen=True)
class ExportJob:
    """What a maker function needs to write one candidate's artifact.

    Attributes:
        generator: The loaded source generator (the teacher or the student).
        output: The artifact path to write (its suffix is the row's).
        needed: The artifact of the row this one converts (``CandidateSpec.needs``), else ``None``.
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
class Requirement:
    """An import name a row needs, and what to tell the user when it is missing."""

    module: str
    missing: str


@dataclass(frozen=True)
class CandidateSpec:
    """One row of the candidate table.

    Attributes:
        name: Its name in reports and for ``--candidate`` (``onnx-int8``).
        backend: The backends-table row that runs its artifact (``onnxruntime``).
        runtime: The runtime's name for people.
        precision: ``fp32``, ``fp16`` or ``int8``; picks its default PSNR floor.
        suffix: The artifact's file suffix.
        make: Writes the artifact (see :class:`ExportJob`).
        command: The shell command that makes the same artifact by hand; ``{checkpoint}``, ``{out}``, ``{needed}``,
            ``{calib}``, ``{shape}`` (``{min_shape}``, ``{max_shape}``: an engine's profile) and ``{min_psnr}`` are
            filled in.
        needs: The row whose artifact it converts, or ``None`` (made from the checkpoint).
        requires: What must be importable here for it to be made.
        targets: The targets it is a candidate for.
        runner_options: Options for :func:`cg_export.backends.runner_for` when it is verified and timed here.

    A maker writes into a folder of its own, so every file it writes beside the artifact (an IR's ``.bin``, an
    engine's ``.json`` sidecar) travels with it.
    """

    name: str
    backend: str
    runtime: str
    precision: str
    suffix: str
    make: Callable[[ExportJob], Path]
    command: str
    needs: str | None = None
    requires: tuple[Requirement, ...] = ()
    targets: frozenset[str] = frozenset(TARGETS)
    runner_options: tuple[tuple[str, object], ...] = ()

    def missing(self) -> str | None:
        """Why this row cannot be made here, or ``None`` when everything it needs is installed."""
        for requirement in self.requires:
            try:
                found = importlib.util.find_spec(requirement.module) is not None
            except ModuleNotFoundError:  # the parent package of a dotted name is missing
                found = False
            except ValueError:  # already imported without a spec (a stand-in module): it is there
                found = True
            if not found:
                return requirement.missing
        return None


# ------------------------------------------------------------------------------------------------------ makers


def copy_checkpoint(job: ExportJob) -> Path:
    """The PyTorch reference: the checkpoint itself, copied (it is already what PyTorch runs)."""
    shutil.copy2(job.generator.path, job.output)
    return job.output


def export_onnx_file(job: ExportJob, precision: str) -> Path:
    """The one call of :func:`cg_export.export.onnx.export_onnx`: dynamic shapes, verification left to deploy.

    Deploy verifies every candidate itself, on the user's held-out photographs at the deployment size, so the
    exporter's own check (on the bundled photographs, at 256 px) is off here.
    """
    from cg_export.export.onnx import OnnxExportOptions, export_onnx

    options = OnnxExportOptions(fp16=precision == "fp16", int8=precision == "int8",
                                calib=job.calibration if precision == "int8" else None, verify=False,
                                trace_cache=job.trace_cache)
    export_onnx(job.generator, job.output, options)
    return job.output


def export_openvino_file(job: ExportJob) -> Path:
    """The one call of ``cg_export.export.openvino.export_openvino``: the IR of the ONNX model this row needs."""
    from cg_export.export.openvino import export_openvino

    assert job.needed is not None
    return Path(export_openvino(job.needed, job.output, verify=False).path)


def build_trt_engine(job: ExportJob, precision: str) -> Path:
    """The one call of :func:`cg_export.export.trt.build_engine`: an engine tuned for the deployment size.

    Its profile takes exactly that size, or the range ``job.engine_sizes`` when one is given (tuned at the size).
    """
    from cg_export.export.trt import EngineOptions, build_engine

    assert job.needed is not None
    shape = (1, 3, *job.size)
    low, high = job.engine_sizes or (job.size, job.size)
    options = EngineOptions(fp16=precision == "fp16", int8=precision == "int8", min_shape=(1, 3, *low),
                            opt_shape=shape, max_shape=(1, 3, *high), verify=False)
    return Path(build_engine(job.needed, job.output, options).path)


# ------------------------------------------------------------------------------------------------------ the table

_ONNXRUNTIME = (Requirement("onnxruntime", 'ONNX Runtime not installed (pip install "cg-export[cpu]")'),)
_OPENVINO = (Requirement("openvino", 'OpenVINO not installed (pip install "cg-export[openvino]")'),
             Requirement("cg_export.export.openvino", "this cg-export has no OpenVINO exporter"))
_TENSORRT = (Requirement("tensorrt", "TensorRT not installed"),)
_NO_VERIFY = "--no-verify"  # deploy verifies on the held-out photographs instead (see export_onnx_file)
_TRT_SHAPES = "--min-shape {min_shape} --opt-shape {shape} --max-shape {max_shape}"

CANDIDATES: tuple[CandidateSpec, ...] = (
    CandidateSpec("torch-fp32", "torch", "PyTorch", "fp32", ".pt", copy_checkpoint, "cp {checkpoint} {out}",
                  targets=frozenset({"local"}), runner_options=(("device", "cpu"),)),
    CandidateSpec("onnx-fp32", "onnxruntime", "ONNX Runtime", "fp32", ".onnx",
                  lambda job: export_onnx_file(job, "fp32"),
                  f"cg-export onnx {{checkpoint}} -o {{out}} {_NO_VERIFY}", requires=_ONNXRUNTIME),
    CandidateSpec("onnx-fp16", "onnxruntime", "ONNX Runtime", "fp16", ".onnx",
                  lambda job: export_onnx_file(job, "fp16"),
                  f"cg-export onnx {{checkpoint}} --fp16 -o {{out}} {_NO_VERIFY}", requires=_ONNXRUNTIME),
    CandidateSpec("onnx-int8", "onnxruntime", "ONNX Runtime", "int8", ".onnx",
                  lambda job: export_onnx_file(job, "int8"),
                  f"cg-export onnx {{checkpoint}} --int8 --calib {{calib}} -o {{out}} {_NO_VERIFY}",
                  requires=_ONNXRUNTIME),
    CandidateSpec("openvino-fp32", "openvino", "OpenVINO", "fp32", ".xml", export_openvino_file,
                  f"cg-export openvino {{needed}} -o {{out}} {_NO_VERIFY}", needs="onnx-fp32", requires=_OPENVINO,
                  targets=frozenset({"local"})),
    CandidateSpec("openvino-int8", "openvino", "OpenVINO", "int8", ".xml", export_openvino_file,
                  f"cg-export openvino {{needed}} -o {{out}} {_NO_VERIFY}", needs="onnx-int8", requires=_OPENVINO,
                  targets=frozenset({"local"})),
    CandidateSpec("trt-fp16", "tensorrt", "TensorRT", "fp16", ".engine", lambda job: build_trt_engine(job, "fp16"),
                  f"cg-export trt {{needed}} --fp16 {_TRT_SHAPES} {{min_psnr}}-o {{out}}", needs="onnx-fp32",
                  requires=_TENSORRT),
    CandidateSpec("trt-int8", "tensorrt", "TensorRT", "int8", ".engine", lambda job: build_trt_engine(job, "int8"),
                  f"cg-export trt {{needed}} --int8 {_TRT_SHAPES} {{min_psnr}}-o {{out}}", needs="onnx-int8",
                  requires=_TENSORRT),
)

STUDENT_PREFIX = "student-"


def candidate_named(name: str) -> CandidateSpec:
    """The row called ``name`` (without the ``student-`` prefix); ``KeyError`` if there is none."""
    for spec in CANDIDATES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def candidate_names() -> list[str]:
    """Every row's name, for messages."""
    return [spec.name for spec in CANDIDATES]


__all__ = ["CANDIDATES", "PRECISION_RANK", "STUDENT_PREFIX", "TARGETS", "CandidateSpec", "ExportJob", "Requirement",
           "build_trt_engine", "candidate_named", "candidate_names", "copy_checkpoint", "export_onnx_file",
           "export_openvino_file"]
