"""Describe the machine a benchmark ran on, so recorded figures say where they come from."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any


def describe_machine() -> dict[str, Any]:
    """CPU model and core count, GPU name if torch sees one, and the versions of the libraries that matter."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "cg-export"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version(), "versions": versions}
