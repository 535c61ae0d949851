"""What every command shares: one-line errors without tracebacks, the app's conventions, and option parsing helpers.

The options themselves are declared in :mod:`cg_export.cli.options`; what commands print, in
:mod:`cg_export.cli.printer`.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer

from cg_export.errors import CgExportError, OptionError
from cg_export.files import record_outputs

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


def _raise_for(signal_number: int) -> None:
    if signal_number == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signal_number)


def _raise_terminated(signal_number: int, frame: object) -> None:
    _raise_for(signal_number)


def _handled_signals() -> list[int]:
    return [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]


@contextmanager
def signals_unwind() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` and SIGINT raises ``KeyboardInterrupt`` (even
    where a parent process set it to be ignored); the previous handlers come back on the way out.

    Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _raise_terminated) for number in _handled_signals()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class ProcessSignals:
    """The one signal policy of a command-line process, from its entry point to its exit (see :func:`run_app`).

    SIGINT exits 130, SIGTERM 143 (SIGHUP 129), always with one line saying what was written and what was kept.
    Inside a command (:func:`reports_errors`) a signal unwinds at once, so every
    :func:`cg_export.files.atomic_output` removes its partial file. Outside one (option parsing, printing after the
    command returned, the interpreter's exit) a signal is remembered and ends the process as soon as the command's
    own work is over: Python resets its handlers to the default while it shuts down, and a signal then used to
    kill the process without a word.

    Attributes:
        received: The first signal received, or ``None``.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._reported = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take SIGINT, SIGTERM and SIGHUP for the rest of the process (the main thread only can)."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = {number: signal.signal(number, self._remember) for number in _handled_signals()}
        # Registered before the command imports torch and the runtimes, so it runs after their own exit hooks.
        atexit.register(self._at_exit)

    def _remember(self, signal_number: int, frame: object) -> None:
        if self.received is None:
            self.received = signal_number

    def exit_code(self, code: int) -> int:
        """``code``, or ``128 + signal`` with its line on stderr when a signal came after the command finished."""
        if self.received is None:
            return code
        self._reported = True
        if code == 0:
            typer.echo(f"stopped by {signal.Signals(self.received).name} after the command finished; its outputs "
                       "were written", err=True)
        else:
            typer.echo(f"stopped by {signal.Signals(self.received).name}", err=True)
        return 128 + self.received

    def _at_exit(self) -> None:
        # From here on the interpreter tears down without running Python handlers, and restores the default
        # (terminating) ones: ignore the signals, then report one that came during the other exit hooks.
        for number in self._previous:
            signal.signal(number, signal.SIG_IGN)
        if self.received is not None and not self._reported:
            sys.stdout.flush()
            typer.echo(f"stopped by {signal.Signals(self.received).name} while exiting; the command had finished "
                       "and its outputs were written", err=True)
            sys.stderr.flush()
            os._exit(128 + self.received)


def interruption_message(exc: KeyboardInterrupt, written: list[Path]) -> str:
    """One line on what a signal stopped: the outputs already written, the one it stopped (and whether an earlier
    file there was kept), or that nothing was written."""
    number = exc.signal_number if isinstance(exc, Terminated) else signal.SIGINT
    parts = []
    if written:
        more = f" and {len(written) - 1} more" if len(written) > 1 else ""
        parts.append(f"wrote {written[0]}{more}")
    for path, existed in getattr(exc, "unwritten_outputs", []):
        parts.append(f"{path} not written, the earlier one kept" if existed else f"{path} not written")
    if not parts:
        parts.append("nothing was written")
    return f"stopped by {signal.Signals(number).name}: {'; '.join(parts)}; no output was left half-written"


def reports_errors(command: F) -> F:
    """Turn expected failures into ``error: <message>`` on stderr and a non-zero exit, with no traceback.

    Ctrl-C, SIGTERM and SIGHUP stop the command the same way (partial outputs removed, exit 128 + the signal, one
    line saying what was written and what was kept).
    Unexpected exceptions still show their traceback: they are bugs, and the traceback is what a bug report needs.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # A signal that came before the command started (while options were parsed) stops it as it starts.
        policy = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
        with record_outputs() as written:
            try:
                with signals_unwind():
                    if isinstance(policy, ProcessSignals) and policy.received is not None:
                        policy.received, number = None, policy.received
                        _raise_for(number)
                    return command(*args, **kwargs)
            except CgExportError as exc:
                typer.echo(f"error: {exc.render(flag_of) if isinstance(exc, OptionError) else exc}", err=True)
                raise typer.Exit(exc.exit_code) from None
            except KeyboardInterrupt as exc:
                typer.echo(interruption_message(exc, written), err=True)
                number = exc.signal_number if isinstance(exc, Terminated) else signal.SIGINT
                raise typer.Exit(128 + number) from None

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
