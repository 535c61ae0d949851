"""``--version`` for every command: ``cg-export --version`` prints ``cg-export 0.1.0`` and exits 0.

Handled before typer parses anything, so it works on single-command apps (``cg-bench``, ``cg-stylize``) and
groups (``cg-export``) alike, and needs no heavy import.
"""

from __future__ import annotations

import sys

import typer

from cg_export import __version__


def run_app(app: typer.Typer, name: str, argv: list[str] | None = None) -> None:
    """Run a command's typer app, answering ``--version`` (alone) first, under the process's one signal policy
    (:class:`cg_export.cli.common.ProcessSignals`) and thread wait policy
    (:func:`cg_export.threads.prefer_passive_waiting`). Ends the process with the command's exit status.

    Args:
        app: The command's app.
        name: The command's name as typed, e.g. ``"cg-bench"``.
        argv: The arguments; ``None`` is ``sys.argv[1:]``.
    """
    from cg_export.cli.common import ProcessSignals
    from cg_export.threads import prefer_passive_waiting

    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        typer.echo(f"{name} {__version__}")
        return
    # Both before the command imports torch or a runtime: OpenMP reads its wait policy when it loads, and a signal
    # must find this process's handlers from the start to the exit (see ProcessSignals).
    prefer_passive_waiting()
    signals = ProcessSignals()
    signals.install()
    try:
        app(args=args, prog_name=name)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            typer.echo(str(exc.code), err=True)
    raise SystemExit(signals.exit_code(code))
