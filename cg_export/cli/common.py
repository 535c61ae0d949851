"""What every command shares: one-line errors without tracebacks, the app's conventions, and option parsing helpers.

The options themselves are declared in :mod:`cg_export.cli.options`; what commands print, in
:mod:`cg_export.cli.printer`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from cg_export.errors import CgExportError

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn expected failures into ``error: <message>`` on stderr and a non-zero exit, with no traceback.

    Unexpected exceptions still show their traceback: they are bugs, and the traceback is what a bug report needs.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CgExportError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; no output was left half-written", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


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
