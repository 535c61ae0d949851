"""Describe the machine a benchmark ran on, so recorded figures say where they come from."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from cg_export.bench import describe_environment

# The instruction-set extensions that decide which int8 / bf16 kernels a CPU runtime can use.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_fp16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as handle:
            return set(next(line for line in handle if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return set()


def describe_machine() -> dict[str, Any]:
    """CPU model, cores and the ISA extensions that matter for int8/bf16, GPU name, Python and library versions."""
    machine = describe_environment()
    machine["cpu_isa"] = [flag for flag in ISA_FLAGS if flag in cpu_flags()]
    try:
        machine["versions"]["openvino"] = metadata.version("openvino")
    except metadata.PackageNotFoundError:
        pass
    return machine
