"""The machine a report was measured on: CPU, cores, GPU, Python and library versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

from cg_export.threads import available_cores, default_threads


def describe_environment(threads: int | None = None) -> dict[str, Any]:
    """The machine a report was measured on: CPU model and cores, the cores this process may use and the CPU
    threads models ran with, GPU name, Python and library versions.

    Args:
        threads: The ``--threads`` the models ran with; ``None``: :func:`cg_export.threads.default_threads`.

    PyTorch is asked for the GPU only when it is already imported (a PyTorch model or the reference ran); otherwise
    ``nvidia-smi`` is, so an ONNX-only run on a device without PyTorch still names its GPU.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "numpy", "cg-export"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": available_cores(),
            "threads": threads or default_threads(), "gpu": _gpu_name(), "python": platform.python_version(),
            "versions": versions}


def _gpu_name() -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return listed.splitlines()[0] if listed else None
