"""Describe the machine a benchmark ran on, so recorded figures say where they come from."""

from __future__ import annotations

from typing import Any

from cg_export.bench import describe_environment


def describe_machine() -> dict[str, Any]:
    """CPU model and cores, GPU name, Python and library versions: the same record cg-bench writes."""
    return describe_environment()
