"""Typed errors. Every error a user can cause is a :class:`CgExportError`; the CLI prints its message on one line
and exits non-zero, so messages are written to be read by a person and say what to do."""

from __future__ import annotations

from collections.abc import Callable


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


class OptionError(CgExportError, ValueError):
    """An argument of a library call has a value it cannot take.

    The library names its own arguments (``static_size``), never a command line's flags: the command line that
    passed the value maps the field to its flag (``--size``) when it prints the error
    (:func:`cg_export.cli.common.reports_errors`).

    Attributes:
        field: The argument (a keyword or options field) that is wrong, e.g. ``"static_size"``.
        value: Its value, which heads the message (``static_size 300x300: ...``); ``None`` when the message is
            about the field being given at all, and then the message names the field itself (``{int8} needs ...``).
        message: What is wrong and what to do. Fields are written ``{name}`` and filled in with their names (or, on
            the command line, their flags).
    """

    def __init__(self, field: str, value: object, message: str):
        self.field = field
        self.value = value
        self.message = message
        super().__init__(self.render(lambda name: name))

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with every field written as ``name_of(field)`` (a flag on the command line).

        Args:
            name_of: Maps a field name to how the reader knows it, e.g. ``"static_size"`` -> ``"--size"``.
        """
        message = self.message.format_map(_Names(name_of))
        return message if self.value is None else f"{name_of(self.field)} {format_value(self.value)}: {message}"


class _Names(dict):  # type: ignore[type-arg]
    """``str.format_map`` mapping that spells every ``{field}`` of a message with ``name_of``."""

    def __init__(self, name_of: Callable[[str], str]):
        super().__init__()
        self.name_of = name_of

    def __missing__(self, key: str) -> str:
        return self.name_of(key)


class CheckpointOptionError(OptionError, CheckpointError):
    """An argument of checkpoint loading (``direction``) has a value it cannot take."""


def format_value(value: object) -> str:
    """How a value reads in a message: ``(256, 384)`` as ``256x384`` (a size), everything else as ``str``."""
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))
    return str(value)
