"""cg-compress as ``cg-export deploy --compress``'s distiller: registered in ``pyproject.toml`` under the entry point
group ``cg_export.distillers`` (:mod:`cg_export.deploy.distil`), so the toolkit finds it without importing training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def distil_for_deploy(teacher: Path, photos: Path, output: Path, ratio: float,
                      say: Callable[[str, str], None]) -> Path:
    """Distil a student of ``teacher`` with 1/``ratio`` of its MACs on ``photos``; returns the checkpoint written
    (``output``). Every default is cg-compress's."""
    from training.compress import compress

    return Path(compress(teacher, photos, output=output, ratio=ratio, report=say).student)


__all__ = ["distil_for_deploy"]
