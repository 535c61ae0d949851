"""How ``cg-export deploy --compress`` gets a student without ``cg_export`` importing the trainer.

Training sits above the toolkit (it imports :mod:`cg_export.models`; nothing in ``cg_export`` imports it). A
distiller registers itself as a Python entry point of the group :data:`DISTILLER_GROUP` (``training`` does, in
``pyproject.toml``: ``cg-compress``), and deploy finds it by that group, so an installation without training has
deploy without ``--compress``, and another distiller can take its place.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from cg_export.deploy.photos import DeployError

DISTILLER_GROUP = "cg_export.distillers"


class Distiller(Protocol):
    """Distils a student from ``teacher`` on the photographs in ``photos`` with 1/``ratio`` of its MACs, writes it
    to ``output`` and returns the checkpoint written; ``say`` receives ``(label, text)`` progress lines."""

    def __call__(self, teacher: Path, photos: Path, output: Path, ratio: float,
                 say: Callable[[str, str], None]) -> Path: ...


def find_distiller() -> Distiller:
    """The distiller registered under :data:`DISTILLER_GROUP` (the first, by name).

    Raises:
        DeployError: none is installed.
    """
    found = sorted(entry_points(group=DISTILLER_GROUP), key=lambda point: point.name)
    if not found:
        raise DeployError("--compress needs cg-compress (the training package of cg-export), which this installation "
                          "does not have; distil a student with it and pass --student PATH")
    return found[0].load()


__all__ = ["DISTILLER_GROUP", "Distiller", "find_distiller"]
