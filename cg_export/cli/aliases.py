"""Old spellings of options, kept working as hidden aliases that print one deprecation line each.

A command that renamed an option declares its old spellings with :func:`with_aliases`; its arguments are rewritten
before they are parsed (``--half`` becomes ``--fp16``, ``--out=runs`` becomes ``--output=runs``), so the old spelling
reaches exactly the option the new one does and ``--help`` shows only the new one. Renames that change a value
(``check --target trt=8.6`` -> ``--trt-version 8.6``) give a ``convert``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import typer
from typer.core import TyperCommand


@dataclass(frozen=True)
class Alias:
    """One old spelling of an option.

    Attributes:
        old: The old flag, e.g. ``"--half"``.
        new: The flag it now is, e.g. ``"--fp16"``.
        takes_value: The old flag is followed by a value (``--out DIR``); ``False`` for switches (``--half``).
        convert: Turns the old value into the new one; ``None`` drops the option (the old value was the default).
        bare: For a flag that used to be a switch and now takes a value (``deploy --json``): the value it stands
            for when no value follows it.
    """

    old: str
    new: str
    takes_value: bool = True
    convert: Callable[[str], str | None] | None = None
    bare: str | None = None


def deprecation(old: str, new: str) -> None:
    """Print the one line that says an old spelling was used and what replaces it (on stderr)."""
    typer.echo(f"deprecated: {old} is now {new}; the old spelling will be removed in a future release", err=True)


def rewrite(args: list[str], aliases: tuple[Alias, ...]) -> list[str]:
    """``args`` with every old spelling replaced by its new one, saying so once per use.

    Arguments after ``--`` are left alone (they are values, never options).
    """
    by_name = {alias.old: alias for alias in aliases}
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        name, equals, attached = token.partition("=")
        alias = by_name.get(name)
        if alias is None:
            out.append(token)
            i += 1
            continue
        if not alias.takes_value:
            deprecation(alias.old, alias.new)
            out.append(alias.new)
            i += 1
            continue
        if equals:
            value: str | None = attached
            i += 1
        elif i + 1 < len(args) and (args[i + 1] == "-" or not args[i + 1].startswith("-")):
            value = args[i + 1]
            i += 2
        elif alias.bare is not None:
            value = alias.bare
            i += 1
            deprecation(f"{alias.old} without a value", f"{alias.new} {alias.bare}")
            out.extend([alias.new, value])
            continue
        else:  # no value: let the parser say that the new option needs one
            if alias.old != alias.new:
                deprecation(alias.old, alias.new)
            out.append(alias.new)
            i += 1
            continue
        if alias.old == alias.new:  # only the bare switch was deprecated; with a value it is the new spelling
            out.extend([alias.new, value])
            continue
        deprecation(alias.old, alias.new)
        if alias.convert is not None:
            value = alias.convert(value)
        if value is not None:
            out.extend([alias.new, value])
    return out


def with_aliases(*aliases: Alias) -> type[TyperCommand]:
    """A typer command class (``app.command(cls=...)``) that accepts ``aliases`` as hidden old spellings, and leaves
    hidden arguments out of its usage line."""

    class AliasedCommand(TyperCommand):
        old_spellings = aliases

        def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
            return super().parse_args(ctx, rewrite(list(args), aliases))

        def collect_usage_pieces(self, ctx):  # type: ignore[no-untyped-def]
            # A hidden argument is an old spelling too (cg-compress's PHOTOS): the usage line leaves it out.
            pieces = [self.options_metavar] if self.options_metavar else []
            for param in self.get_params(ctx):
                if not getattr(param, "hidden", False):
                    pieces.extend(param.get_usage_pieces(ctx))
            return pieces

    return AliasedCommand
