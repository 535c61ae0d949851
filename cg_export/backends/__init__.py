"""Runtimes behind one interface: ``with runner: output = runner(batch)``.

Which runner opens which file is the formats table's (:mod:`cg_export.formats`); :func:`runner_for` reads it. Each
runner module imports its runtime lazily, so ``cg_export.backends`` is importable with none installed.
"""

from cg_export.backends.base import ModelInfo, Runner
from cg_export.backends.registry import backend_for, deployment_artifact, model_file, runner_for
from cg_export.formats import is_checkpoint

__all__ = ["ModelInfo", "Runner", "backend_for", "deployment_artifact", "is_checkpoint", "model_file", "runner_for"]
