"""Typed errors. Every error a user can cause is a :class:`CgExportError`; the CLI prints its message on one line
and exits non-zero, so messages are written to be read by a person and say what to do."""

from __future__ import annotations


class CgExportError(Exception):
    """Base class of every expected, user-facing failure."""

    exit_code = 1


class CheckpointError(CgExportError, ValueError):
    """A checkpoint file is missing, unreadable, unsafe or not a generator we know."""


class ArchitectureError(CgExportError, ValueError):
    """An architecture name or its arguments are wrong, or weights do not fit the architecture."""


class ImageError(CgExportError, ValueError):
    """An input image cannot be read or has an unusable shape."""


class OutputError(CgExportError, ValueError):
    """An output cannot be written where it was asked to go (onto an input, onto a folder, into a read-only one)."""


class MissingDependencyError(CgExportError, ImportError):
    """An optional package needed for the requested operation is not installed."""

    def __init__(self, package: str, purpose: str, install_hint: str):
        self.package = package
        super().__init__(f"{package} is needed {purpose} but is not installed: {install_hint}")


class ParityError(CgExportError, ValueError):
    """A converted model's output differs from the reference by more than the accepted threshold.

    Attributes:
        report: The :class:`cg_export.parity.ParityReport` holding the measured numbers.
    """

    def __init__(self, message: str, report: object):
        self.report = report
        super().__init__(message)


class BackendError(CgExportError, RuntimeError):
    """A runtime could not load or run a model file."""
