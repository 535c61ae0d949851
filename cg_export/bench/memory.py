"""Peak memory of a model's rows: the process's RSS high-water mark, or PyTorch's CUDA allocator.

Linux reports and resets the RSS high-water mark through ``/proc``; elsewhere the probe says why it measures nothing.
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys

from cg_export.backends import Runner


def _proc_status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            match = re.search(rf"^{field_name}:\s+(\d+)\s+kB", handle.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux 4.0+); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS, so the next model's baseline RSS holds nothing of the last one."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl, ...): nothing to trim
            pass


class MemoryProbe:
    """Peak memory of one model's rows.

    Measured over a row's warm-up and timed runs, after its first run (which may autotune, compile or capture a
    graph, a one-off transient). Host backends: the process's peak RSS (the kernel's high-water mark, reset at the
    start) minus the RSS before the model was loaded, so it covers weights, session and activations. PyTorch on
    CUDA: ``torch.cuda.max_memory_allocated`` minus what was allocated before the model was loaded.
    Other device backends allocate outside PyTorch and are not measured (``None`` with a note).
    """

    def __init__(self) -> None:
        release_freed_memory()
        self.host_baseline_kib = _proc_status_kib("VmRSS")
        self.cuda_baseline: int | None = None
        self.kind = "host"
        self.why_not = ""

    def attach(self, runner: Runner) -> None:
        """Choose what to measure for ``runner``; call before ``runner.activate()``."""
        device = str(runner.device)
        if device.startswith("cuda") and runner.name == "torch":
            import torch

            if not torch.cuda.is_available():
                return  # activate() will say so
            self.kind = "torch-cuda"
            self.cuda_device = torch.device(device)
            torch.cuda.synchronize(self.cuda_device)
            self.cuda_baseline = torch.cuda.memory_allocated(self.cuda_device)
        elif self.host_baseline_kib is None:
            self.kind = "none"
            self.why_not = "peak memory: this system does not report RSS (/proc/self/status)"

    def after_activation(self, runner: Runner) -> None:
        """Backends that learn their device only when activated (ONNX Runtime, TensorRT) are placed here."""
        if self.kind == "host" and str(runner.device) != "cpu":
            self.kind = "none"
            self.why_not = f"peak memory: device memory of {runner.name} is not measured"

    def start_row(self) -> None:
        """Reset the high-water mark."""
        if self.kind == "torch-cuda":
            import torch

            torch.cuda.synchronize(self.cuda_device)
            torch.cuda.reset_peak_memory_stats(self.cuda_device)
        elif self.kind == "host" and not _reset_peak_rss():
            self.kind = "none"
            self.why_not = "peak memory: this system cannot reset the peak RSS (/proc/self/clear_refs)"

    def peak_mb(self) -> float | None:
        """Peak memory of the row in MB (1e6 bytes), or ``None`` (see :attr:`why_not`)."""
        if self.kind == "torch-cuda":
            import torch

            torch.cuda.synchronize(self.cuda_device)
            return (torch.cuda.max_memory_allocated(self.cuda_device) - (self.cuda_baseline or 0)) / 1e6
        if self.kind == "host":
            peak = _proc_status_kib("VmHWM")
            if peak is None or self.host_baseline_kib is None:
                return None
            return max(0, peak - self.host_baseline_kib) * 1024 / 1e6
        return None
