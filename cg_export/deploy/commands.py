"""The shell command that makes a deploy candidate by hand, spelled from the candidate's own export request.

A candidate is made by :func:`cg_export.export.run_export` with options its format makes from an
:class:`~cg_export.export.ExportRequest`; the command is the format's ``cg-export`` verb followed by those same
options, each written with the flag the command line declares for that field (:data:`FLAGS`; the commands name
their parameters like the fields they feed, and ``tests/cg_export/test_formats.py`` parses every candidate's command
with the real ``cg-export`` app and compares the options it gives with the ones deploy ran), so the command a report
prints and the export deploy ran cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from cg_export.deploy.candidates import CandidateSpec, ExportJob
from cg_export.export import make_options

FLAGS: dict[str, str] = {
    "fp16": "--fp16",
    "int8": "--int8",
    "calib": "--calib",
    "size": "--size",
    "size_range": "--size-range",
    "min_psnr_db": "--min-psnr",
    "verify": "--no-verify",
}
"""The ``cg-export`` flag of each export option a deploy candidate sets (boolean options: the flag that sets the
non-default value)."""


def candidate_command(spec: CandidateSpec, job: ExportJob, *, source: str, output: str, calibration: str,
                      verify: bool, min_psnr_db: float | None = None) -> str:
    """The command that makes ``spec``'s artifact as deploy does, run in the deployment folder.

    Args:
        spec: The candidate.
        job: Its export job (precision, calibration, sizes).
        source: How the command names its source (the checkpoint, or the file it converts).
        output: How it names the artifact.
        calibration: How it names the calibration folder.
        verify: Whether the command verifies on its own: off where deploy verifies the artifact itself, on where
            the artifact is finished on a device deploy could not verify on.
        min_psnr_db: The floor to verify at; ``None``: the precision's own.
    """
    if spec.format.exporter is None:
        return f"cp {shlex.quote(source)} {shlex.quote(output)}"
    request = dataclasses.replace(spec.request(job), verify=verify, min_psnr_db=min_psnr_db if verify else None)
    options = make_options(spec.format, request)
    words = ["cg-export", spec.format.name, source]
    words += _flags(options, calibration)
    words += ["-o", output]
    return " ".join(shlex.quote(word) for word in words)


def _flags(options: Any, calibration: str) -> list[str]:
    """The flags of every option that differs from the exporter's default, in the options class's field order."""
    defaults = type(options)()
    words: list[str] = []
    for field in dataclasses.fields(options):
        value, default = getattr(options, field.name), getattr(defaults, field.name)
        if value == default or field.name not in FLAGS:
            continue
        flag = FLAGS[field.name]
        if isinstance(value, bool):
            words.append(flag)
        elif field.name == "calib":
            words += [flag, calibration]
        elif isinstance(value, tuple):
            sizes = value if isinstance(value[0], tuple) else (value,)  # a size range is two sizes
            words += [flag, ":".join("x".join(str(side) for side in size) for size in sizes)]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return words


__all__ = ["FLAGS", "candidate_command"]
