"""Runtimes behind one interface: ``with runner: output = runner(batch)``.

Each backend module imports its runtime lazily, so ``cg_export.backends`` is importable with none installed.
"""

from cg_export.backends.base import Runner, runner_for

__all__ = ["Runner", "runner_for"]
