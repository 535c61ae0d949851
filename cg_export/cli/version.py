"""``--version`` for every command: ``cg-export --version`` prints ``cg-export 0.1.0`` and exits 0.

Handled before typer parses anything, so it works on single-command apps (``cg-bench``, ``cg-stylize``) and
groups (``cg-export``) alike, and needs no heavy import.
"""

from __future__ import annotations

import sys

import typer

from cg_export import __version__


def run_app(app: typer.Typer, name: str, argv: list[str] | None = None) -> None:
    """Run a command's typer app, answering ``--version`` (alone) first.

    Args:
        app: The command's app.
        name: The command's name as typed, e.g. ``"cg-bench"``.
        argv: The arguments; ``None`` is ``sys.argv[1:]``.
    """
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        typer.echo(f"{name} {__version__}")
        return
    app(args=args, prog_name=name)
