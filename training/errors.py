"""Errors a user of the trainer can cause. They are :class:`cg_export.errors.CgExportError` subclasses, so the
command line prints them on one line and exits non-zero, like every other command of the toolkit."""

from __future__ import annotations

from cg_export.errors import CgExportError, OptionError


class DatasetError(CgExportError, ValueError):
    """The data root is missing, has no usable images in a domain, or is laid out in a way we do not read."""


class TrainingError(CgExportError, ValueError):
    """Training options are invalid, or a run folder cannot be started or resumed as asked."""


class TrainingOptionError(OptionError, TrainingError):
    """A training option has a value it cannot take; carries the field, so the command line names its flag."""
