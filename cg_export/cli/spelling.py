"""A library call written as the command line that does the same, in the commands' own flags.

Reports print the commands a user can run again (``cg-demo`` lists every step's). Their flags are read from the
command's declarations, never spelled again from field names: ``image_size`` is ``--size`` in ``cg-train``.
"""

from __future__ import annotations

from typing import Any

import typer


def flags_for(app: typer.Typer, options: dict[str, Any], command: str | None = None) -> list[str]:
    """The flags (and values) that pass ``options`` (library field -> value) to a command of ``app``.

    Args:
        app: The command's typer app.
        options: Library arguments by name; ``None`` and ``False`` are left out (the defaults), ``True`` is the
            switch alone, a ``(height, width)`` tuple is written ``HxW``.
        command: The subcommand of a group app (``"deploy"`` of ``cg-export``).

    Raises:
        KeyError: a field the command has no option for.
    """
    click_command = typer.main.get_command(app)
    if command is not None:
        click_command = click_command.commands[command]  # type: ignore[attr-defined]
    by_name = {param.name: param for param in click_command.params if param.opts and param.opts[0].startswith("-")}
    words: list[str] = []
    for field, value in options.items():
        if value is None or value is False:
            continue
        flag = max(by_name[field].opts, key=len)
        if value is True:
            words.append(flag)
        elif isinstance(value, tuple):
            words += [flag, "x".join(map(str, value))]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return words
