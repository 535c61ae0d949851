"""What every command shares: one-line errors without tracebacks, the app's conventions, and option parsing helpers.

The options themselves are declared in :mod:`cg_export.cli.options`; what commands print, in
:mod:`cg_export.cli.printer`.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from cg_export.errors import CgExportError, OptionError

F = TypeVar("F", bound=Callable[..., Any])


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM (or SIGHUP), so it unwinds like Ctrl-C does: every
    :func:`cg_export.files.atomic_output` removes its partial file and earlier outputs stay as they were.

    Attributes:
        signal_number: The signal received.
    """

    def __init__(self, signal_number: int):
        self.signal_number = signal_number
        super().__init__(signal.Signals(signal_number).name)


def _raise_terminated(signal_number: int, frame: object) -> None:
    raise Terminated(signal_number)


@contextmanager
def signals_unwind() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` and SIGINT raises ``KeyboardInterrupt`` (even
    where a parent process set it to be ignored); the previous handlers come back on the way out.

    Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = {signal.SIGTERM: _raise_terminated, signal.SIGINT: signal.default_int_handler}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = _raise_terminated
    previous = {number: signal.signal(number, handler) for number, handler in wanted.items()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def reports_errors(command: F) -> F:
    """Turn expected failures into ``error: <message>`` on stderr and a non-zero exit, with no traceback.

    Ctrl-C, SIGTERM and SIGHUP stop the command the same way (partial outputs removed, exit 128 + the signal).
    Unexpected exceptions still show their traceback: they are bugs, and the traceback is what a bug report needs.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with signals_unwind():
                return command(*args, **kwargs)
        except CgExportError as exc:
            typer.echo(f"error: {exc.render(flag_of) if isinstance(exc, OptionError) else exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except Terminated as exc:
            typer.echo(f"stopped by {signal.Signals(exc.signal_number).name}; no output was left half-written",
                       err=True)
            raise typer.Exit(128 + exc.signal_number) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; no output was left half-written", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def flag_of(field: str) -> str:
    """The flag of the running command that feeds the library argument ``field`` (``static_size`` -> ``--size``).

    Commands name their parameters like the library arguments they feed, so the running command's declaration
    says which flag it is; a field the command has no option for is written as a flag would be.
    """
    # typer carries its own click; the running command's context holds its parameters.
    from typer._click.globals import get_current_context

    context = get_current_context(silent=True)
    for param in context.command.params if context is not None else ():
        if param.name == field and param.opts and param.opts[0].startswith("-"):
            return max(param.opts, key=len)
    return "--" + field.replace("_", "-")


def parse_size(text: str, option: str) -> tuple[int, int]:
    """``"256x384"`` (height x width) or ``"256"`` (square) -> ``(256, 384)``."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) <= 0:
        raise CgExportError(f"{option} {text!r}: expected HEIGHTxWIDTH such as 256x256")
    return (values[0], values[-1])


def parse_size_range(text: str, option: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``"128x128:512x768"`` -> ``((128, 128), (512, 768))``: the smallest and the largest size."""
    low, colon, high = text.partition(":")
    if not colon:
        raise CgExportError(f"{option} {text!r}: expected MINHxMINW:MAXHxMAXW such as 128x128:512x512")
    return parse_size(low, option), parse_size(high, option)


def new_app(help_text: str, no_args_is_help: bool = True) -> typer.Typer:
    """A typer app with the toolkit's conventions (no rich tracebacks, -h works; help when run with no arguments,
    unless the command is meant to run without any, like ``cg-demo``)."""
    return typer.Typer(
        help=help_text,
        add_completion=False,
        pretty_exceptions_enable=False,
        no_args_is_help=no_args_is_help,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def given(**options: Any) -> dict[str, Any]:
    """The options the user set (not ``None``), to pass on so the library's defaults fill in the rest."""
    return {name: value for name, value in options.items() if value is not None}
