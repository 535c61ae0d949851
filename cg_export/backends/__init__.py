"""Runtimes behind one interface: ``with runner: output = runner(batch)``.

:mod:`~cg_export.backends.registry` holds the one table of backends and :func:`runner_for`; each backend module
imports its runtime lazily, so ``cg_export.backends`` is importable with none installed.
"""

from cg_export.backends.base import ModelInfo, Runner
from cg_export.backends.registry import (
    BACKENDS,
    MODEL_SUFFIXES,
    backend_for,
    deployment_artifact,
    is_checkpoint,
    model_file,
    runner_for,
)

__all__ = ["BACKENDS", "MODEL_SUFFIXES", "ModelInfo", "Runner", "backend_for", "deployment_artifact", "is_checkpoint",
           "model_file", "runner_for"]
