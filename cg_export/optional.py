"""Optional packages, imported where they are used, with one way to say how to install a missing one.

The package, ``--help`` and the CPU test suite work without tensorrt, the CUDA bindings, openvino, matplotlib or
PyAV; a command that needs one of them fails with a one-line :class:`~cg_export.errors.MissingDependencyError`
naming the pip extra (or the install step) that brings it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cg_export.errors import MissingDependencyError
from cg_export.formats import extra_hint


def import_optional(module: str, purpose: str, hint: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise a one-line :class:`MissingDependencyError`.

    Only a missing ``module`` itself (or its top-level package) becomes the one-line error; an ImportError from
    inside an installed package (a broken install, a missing shared library) is re-raised, since hiding it would
    send the user to install what they already have.

    Args:
        module: The import name, e.g. ``"openvino"`` or ``"matplotlib.pyplot"``.
        purpose: What it is needed for, completing "X is needed ..." (e.g. ``"to run OpenVINO models"``).
        hint: How to install it, usually :func:`extra_hint`.
        package: The name to show the user (default: the top-level module name).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        raise MissingDependencyError(package or top, purpose, hint) from None


__all__ = ["extra_hint", "import_optional"]
