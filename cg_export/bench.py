"""Latency and output parity of generator files on every backend, precision and size: what ``cg-bench`` reports.

A report has one row per model, input size and batch size: end-to-end latency percentiles over every timed sample
(host array in, host array out, copies included), device compute latency where the backend can separate it from
the copies, throughput, peak memory, and parity with the PyTorch fp32 reference on real photographs. It is written
as a terminal table, JSON (the shape is documented in the README and in :meth:`BenchReport.to_json`), Markdown and
a plot, and can be compared with an earlier JSON report to flag regressions.

Heavy modules (torch, onnxruntime, tensorrt, matplotlib) are imported only by the backends and writers that need
them, so benchmarking an ONNX file on a device without PyTorch works (without parity, which needs the reference).
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cg_export.backends import Runner, backend_for, is_checkpoint, runner_for
from cg_export.backends.registry import model_file, read_artifact_metadata
from cg_export.errors import CgExportError, MissingDependencyError, ParityError
from cg_export.files import atomic_output, sha256_of
from cg_export.images import fit_to_size, sample_photographs, to_model_input
from cg_export.metadata import ArtifactMetadata

DEFAULT_SIZES = ((256, 256),)
DEFAULT_BATCHES = (1,)
DEFAULT_WARMUP = 3
# trtexec's default measuring time; on a slow CPU a duration-based run still takes at least MIN_SAMPLES samples so
# that the percentiles mean something.
DEFAULT_DURATION_S = 3.0
MIN_SAMPLES = 5
DEFAULT_THRESHOLD_PCT = 10.0
LATENCY_KEYS = ("mean", "p50", "p90", "p99", "min", "max")
RESULT_KEYS = (
    "model", "backend", "precision", "device", "height", "width", "batch", "latency_ms", "throughput_ips",
    "peak_mem_mb", "psnr_db", "max_abs_err",
)
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
PLOT_HINT = 'pip install matplotlib (or "cg-export[plot]")'
REFERENCE_HINT = "pass --reference CHECKPOINT to measure parity"


# --------------------------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples in milliseconds.

    Percentiles interpolate linearly between the two nearest ranks (numpy's default), computed from every sample.
    """

    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        """Summarise a non-empty sequence of samples (milliseconds)."""
        if len(samples_ms) == 0:
            raise ValueError("no latency samples to summarise")
        values = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(values, [50, 90, 99], method="linear")
        return cls(float(values.mean()), float(p50), float(p90), float(p99), float(values.min()), float(values.max()))

    def to_json(self) -> dict[str, float]:
        """``{"mean", "p50", "p90", "p99", "min", "max"}`` rounded to 0.1 microsecond."""
        return {key: round(getattr(self, key), 4) for key in LATENCY_KEYS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyStats:
        """Inverse of :meth:`to_json`."""
        return cls(**{key: float(data[key]) for key in LATENCY_KEYS})


# ------------------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class TimingSettings:
    """How each row is timed.

    Attributes:
        warmup: Untimed runs before the timed ones (after the first run, which gives the parity output).
        iterations: Exactly this many timed runs; ``None`` times for ``duration_s`` instead.
        duration_s: Time runs for this long (at least ``MIN_SAMPLES`` runs); used when ``iterations`` is ``None``.
    """

    warmup: int = DEFAULT_WARMUP
    iterations: int | None = None
    duration_s: float = DEFAULT_DURATION_S

    @classmethod
    def create(cls, warmup: int | None = None, iterations: int | None = None,
               duration_s: float | None = None) -> TimingSettings:
        """Validate options (``None`` = default).

        Raises:
            CgExportError: negative warm-up, fewer than one iteration, a non-positive duration, or both
                ``iterations`` and ``duration_s``.
        """
        if iterations is not None and duration_s is not None:
            raise CgExportError("give --iterations or --duration, not both")
        if warmup is not None and warmup < 0:
            raise CgExportError(f"--warmup {warmup}: must be 0 or more")
        if iterations is not None and iterations < 1:
            raise CgExportError(f"--iterations {iterations}: must be 1 or more")
        if duration_s is not None and not duration_s > 0:
            raise CgExportError(f"--duration {duration_s}: must be more than 0 seconds")
        return cls(
            warmup=DEFAULT_WARMUP if warmup is None else warmup,
            iterations=iterations,
            duration_s=DEFAULT_DURATION_S if duration_s is None else duration_s,
        )

    def describe(self) -> str:
        """``warm-up 3, 20 iterations`` or ``warm-up 3, 3 s (at least 5 iterations)``."""
        if self.iterations is not None:
            return f"warm-up {self.warmup}, {self.iterations} iterations"
        return f"warm-up {self.warmup}, {self.duration_s:g} s (at least {MIN_SAMPLES} iterations)"


def time_calls(call: Callable[[], object], settings: TimingSettings) -> list[float]:
    """Wall-clock milliseconds of each timed ``call()``.

    The loop does nothing but read the clock around the call, so its figures agree with a bare timing loop
    (``benchmarks/cpu_matrix.py`` prints both). Backends that return host arrays have synchronised by the time the
    call returns, so the wall clock covers all of their work.
    """
    clock = time.perf_counter
    samples: list[float] = []
    if settings.iterations is not None:
        for _ in range(settings.iterations):
            started = clock()
            call()
            samples.append(clock() - started)
    else:
        deadline = clock() + settings.duration_s
        while True:
            started = clock()
            call()
            finished = clock()
            samples.append(finished - started)
            if finished >= deadline and len(samples) >= MIN_SAMPLES:
                break
    return [s * 1000.0 for s in samples]


def time_device_runs(run_once: Callable[[], float], count: int) -> list[float]:
    """Call a :meth:`Runner.compute_timer` function ``count`` times; it measures itself (milliseconds)."""
    return [run_once() for _ in range(count)]


# ------------------------------------------------------------------------------------------------------- memory


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


def _release_freed_memory() -> None:
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
        _release_freed_memory()
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


# ------------------------------------------------------------------------------------------------- results


@dataclass
class BenchResult:
    """One row of the report: one model at one input size and batch size.

    Latency, throughput, memory and parity are ``None`` where they could not be measured; ``notes`` says why.
    """

    model: str
    backend: str
    precision: str | None
    device: str | None
    height: int
    width: int
    batch: int
    latency: LatencyStats | None = None
    compute: LatencyStats | None = None
    throughput_ips: float | None = None
    peak_mem_mb: float | None = None
    psnr_db: float | None = None
    max_abs_err: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        """Whether the model ran at this size and batch."""
        return self.latency is not None

    @property
    def note(self) -> str | None:
        """The notes on one line, or ``None``."""
        return "; ".join(self.notes) if self.notes else None

    @property
    def key(self) -> tuple[str, str, str | None, str | None, int, int, int]:
        """What identifies a row across reports: the model's file name, backend, precision, device, size, batch."""
        return (Path(self.model).name, self.backend, self.precision, self.device, self.height, self.width, self.batch)

    def to_json(self) -> dict[str, Any]:
        """The row as in the README: the issue's keys, then ``compute_ms`` and ``note``."""
        psnr: float | str | None = self.psnr_db
        if psnr is not None and math.isinf(psnr):
            psnr = "inf"
        return {
            "model": self.model,
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "height": self.height,
            "width": self.width,
            "batch": self.batch,
            "latency_ms": self.latency.to_json() if self.latency else None,
            "throughput_ips": None if self.throughput_ips is None else round(self.throughput_ips, 3),
            "peak_mem_mb": None if self.peak_mem_mb is None else round(self.peak_mem_mb, 1),
            "psnr_db": psnr,
            "max_abs_err": self.max_abs_err,
            "compute_ms": self.compute.to_json() if self.compute else None,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchResult:
        """Inverse of :meth:`to_json`."""
        psnr = data.get("psnr_db")
        return cls(
            model=str(data["model"]),
            backend=str(data["backend"]),
            precision=data.get("precision"),
            device=data.get("device"),
            height=int(data["height"]),
            width=int(data["width"]),
            batch=int(data["batch"]),
            latency=LatencyStats.from_json(data["latency_ms"]) if data.get("latency_ms") else None,
            compute=LatencyStats.from_json(data["compute_ms"]) if data.get("compute_ms") else None,
            throughput_ips=data.get("throughput_ips"),
            peak_mem_mb=data.get("peak_mem_mb"),
            psnr_db=math.inf if psnr == "inf" else psnr,
            max_abs_err=data.get("max_abs_err"),
            notes=[data["note"]] if data.get("note") else [],
        )


@dataclass
class BenchReport:
    """Every row of one benchmark run, and the machine it ran on.

    Attributes:
        environment: ``{"cpu", "cores", "gpu", "python", "versions"}`` (see :func:`describe_environment`).
        results: The rows, in the order they ran.
        reference: Where parity came from (or why there is none); not part of the JSON.
        timing: How rows were timed (:meth:`TimingSettings.describe`); not part of the JSON.
    """

    environment: dict[str, Any]
    results: list[BenchResult]
    reference: str = ""
    timing: str = ""

    def to_json(self) -> dict[str, Any]:
        """``{"environment": {...}, "results": [{...}, ...]}``, the shape the README documents."""
        return {"environment": self.environment, "results": [r.to_json() for r in self.results]}

    @classmethod
    def from_json(cls, data: Any, source: str = "report") -> BenchReport:
        """Read a report written by :func:`write_json`.

        Raises:
            CgExportError: ``data`` is not a cg-bench report.
        """
        try:
            return cls(dict(data["environment"]), [BenchResult.from_json(row) for row in data["results"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise CgExportError(f"{source}: not a cg-bench JSON report ({type(exc).__name__}: {exc})") from None


def load_report(path: str | Path) -> BenchReport:
    """Read a JSON report (a ``--compare`` baseline).

    Raises:
        CgExportError: missing file, invalid JSON, or not a cg-bench report.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CgExportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CgExportError(f"{path}: not a readable JSON report ({exc})") from None
    return BenchReport.from_json(data, str(path))


# ----------------------------------------------------------------------------------------------- environment


def describe_environment() -> dict[str, Any]:
    """The machine a report was measured on: CPU model and cores, GPU name, Python and library versions.

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
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": _gpu_name(), "python": platform.python_version(),
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


# ------------------------------------------------------------------------------------------- targets, reference


@dataclass(frozen=True)
class BenchTarget:
    """Something to benchmark: a label for the report and how to make its (inactive) runner.

    Attributes:
        label: The ``model`` column (the file as given, or a description of a variant).
        open_runner: Builds the runner; may raise :class:`CgExportError` (missing runtime, unloadable file),
            which turns the target's rows into unavailable rows carrying the message.
        path: The model file, when there is one (used to check it against the reference).
    """

    label: str
    open_runner: Callable[[], Runner]
    path: Path | None = None


def targets_from_files(
    paths: Iterable[str | Path],
    *,
    device: str | None = None,
    half: bool | None = None,
    channels_last: bool | None = None,
    provider: str | None = None,
    backend: str | None = None,
) -> list[BenchTarget]:
    """One target per model file; the backend comes from the extension, or is the one named.

    Args:
        paths: ``.pt``/``.pth`` (PyTorch), ``.onnx`` (ONNX Runtime), ``.engine``/``.plan`` (TensorRT).
        device: PyTorch device (``cpu``, ``cuda``, ``cuda:1``); default ``cpu``.
        half: Run PyTorch checkpoints in fp16.
        channels_last: Run PyTorch checkpoints in the channels-last memory format.
        provider: ONNX Runtime execution provider (``CUDAExecutionProvider`` or ``cpu``/``cuda``/``tensorrt``);
            default: the fastest installed.
        backend: Run every file with this backend (``openvino`` runs ``.onnx`` files too); ``None``: by extension.

    Raises:
        CgExportError: a file is missing or has an extension no backend reads.
    """
    options = {"device": device, "half": half, "channels_last": channels_last,
               "providers": [PROVIDER_ALIASES.get(provider.lower(), provider)] if provider else None}
    targets = []
    for path in map(Path, paths):
        backend_for(path, backend)  # an unknown kind of file is refused before anything runs
        if not path.exists():
            raise CgExportError(f"{path}: no such file")
        path = model_file(path)  # an OpenVINO IR folder is its .xml
        targets.append(BenchTarget(str(path), lambda p=path: runner_for(p, backend, **options), path))
    return targets


@dataclass(frozen=True)
class Reference:
    """The PyTorch checkpoint parity is measured against, or why there is none.

    Attributes:
        path: The checkpoint, or ``None``.
        reason: Where it came from (``"given with --reference"`` ...) or why there is none.
    """

    path: Path | None
    reason: str

    def describe(self) -> str:
        """One line for the report."""
        return f"{self.path} ({self.reason})" if self.path else f"none: {self.reason}"


def find_reference(models: Iterable[str | Path], reference: str | Path | None = None) -> Reference:
    """Find the PyTorch fp32 reference for parity.

    In order: ``reference`` if given; else the first PyTorch checkpoint among ``models``; else the source
    checkpoint recorded in an ONNX model's metadata (``cg_export.source_checkpoint``), if that file still exists and
    its SHA-256 is the one recorded at export (``cg_export.source_sha256``); else none, with the reason.

    Raises:
        CgExportError: ``reference`` is given but missing or not a PyTorch checkpoint.
    """
    if reference is not None:
        reference = Path(reference)
        if not is_checkpoint(reference):
            raise CgExportError(f"--reference {reference}: expected a PyTorch checkpoint (.pt or .pth)")
        if not reference.is_file():
            raise CgExportError(f"--reference {reference}: no such file")
        return Reference(reference, "given with --reference")
    paths = [Path(m) for m in models]
    for path in paths:
        if is_checkpoint(path):
            return Reference(path, "the PyTorch checkpoint among the models")
    problems = []
    for path in paths:
        meta = _recorded_metadata(path)
        if meta is None:
            continue
        source = meta.source_checkpoint
        if not source:
            problems.append(f"{path} records no source checkpoint")
            continue
        source_path = Path(source)
        if not source_path.is_file():
            problems.append(f"{path} was exported from {source_path}, which does not exist here")
            continue
        recorded = meta.source_sha256
        if recorded and sha256_of(source_path) != recorded:
            problems.append(f"{source_path} has changed since {path} was exported from it (its SHA-256 differs)")
            continue
        return Reference(source_path, f"the source checkpoint recorded in {path}")
    if not problems:
        problems.append("no PyTorch checkpoint among the models and no ONNX model recording its source")
    return Reference(None, f"{'; '.join(problems)}; {REFERENCE_HINT}")


def _recorded_metadata(path: Path) -> ArtifactMetadata | None:
    """What an exported file records, or ``None`` (a checkpoint, a missing or unreadable file: its runner will say)."""
    if not path.is_file():
        return None
    try:
        return read_artifact_metadata(path)
    except CgExportError:
        return None


# ----------------------------------------------------------------------------------------------------- running


def photograph_batch(height: int, width: int, batch: int) -> tuple[str, np.ndarray]:
    """A model input of ``batch`` real photographs fitted to the size (repeated when there are fewer photos)."""
    photos = sample_photographs(batch)
    chosen = [photos[i % len(photos)] for i in range(batch)]
    names = "+".join(dict.fromkeys(name for name, _ in chosen))
    return f"{names} @ {height}x{width}", to_model_input([fit_to_size(image, height, width) for _, image in chosen])


class ReferenceOutputs:
    """Outputs of the PyTorch fp32 reference on the CPU, computed once per input and kept.

    The CPU is the reference device on purpose: CUDA convolutions in "fp32" use TF32 by default on recent GPUs.
    """

    def __init__(self, reference: Reference):
        self.reference = reference
        self.runner: Runner | None = None
        self.sha256: str | None = None
        self.unavailable = None if reference.path else f"no parity: {reference.reason}"
        self.cache: dict[tuple[int, int, int], np.ndarray] = {}

    def output(self, height: int, width: int, batch: int, inputs: np.ndarray) -> np.ndarray | None:
        """The reference output for ``inputs`` (identified by size and batch), or ``None`` if there is none."""
        key = (height, width, batch)
        if key in self.cache:
            return self.cache[key]
        if self.unavailable:
            return None
        try:
            if self.runner is None:
                assert self.reference.path is not None
                self.runner = runner_for(self.reference.path, device="cpu")
                self.runner.activate()
                self.sha256 = sha256_of(self.reference.path)
            self.cache[key] = self.runner(inputs)
        except CgExportError as exc:
            self.unavailable = f"no parity: the reference {self.reference.path} cannot run ({exc})"
            return None
        return self.cache[key]

    def close(self) -> None:
        """Release the reference model."""
        if self.runner is not None:
            self.runner.deactivate()
            self.runner = None


def run_benchmark(
    targets: Sequence[BenchTarget],
    *,
    sizes: Sequence[tuple[int, int]] | None = None,
    batches: Sequence[int] | None = None,
    warmup: int | None = None,
    iterations: int | None = None,
    duration_s: float | None = None,
    reference: Reference | None = None,
    environment: dict[str, Any] | None = None,
    progress: Callable[[BenchResult], None] | None = None,
) -> BenchReport:
    """Time every target at every size and batch size and compare its output with the reference.

    Each target's runner is activated once; for each size and batch the first run on the photograph batch gives the
    parity output, then come the warm-up runs, the timed end-to-end runs and, where the backend supports it
    (:meth:`Runner.compute_timer`), as many timed compute-only runs. A target that cannot be opened, or a size it
    cannot run, becomes an unavailable row with the reason; the other rows still run.

    Args:
        targets: What to benchmark (see :func:`targets_from_files`).
        sizes: ``(height, width)`` pairs; default 256x256.
        batches: Batch sizes; default 1.
        warmup: Untimed runs per row; default 3.
        iterations: Timed runs per row; default: as many as fit in ``duration_s``.
        duration_s: Seconds of timed runs per row (default 3 s) when ``iterations`` is not given.
        reference: The parity reference (see :func:`find_reference`); ``None``: no parity.
        environment: Machine description for the report; default :func:`describe_environment` after the run.
        progress: Called with each finished row.

    Raises:
        CgExportError: invalid sizes, batch sizes or timing options.
    """
    settings = TimingSettings.create(warmup, iterations, duration_s)
    sizes = list(DEFAULT_SIZES if sizes is None else sizes)
    batches = list(DEFAULT_BATCHES if batches is None else batches)
    if not sizes or any(h <= 0 or w <= 0 for h, w in sizes):
        raise CgExportError(f"sizes {sizes}: need at least one, each HEIGHTxWIDTH with positive sides")
    if not batches or any(b < 1 for b in batches):
        raise CgExportError(f"batch sizes {batches}: need at least one, each 1 or more")
    reference = reference or Reference(None, f"no reference given; {REFERENCE_HINT}")
    references = ReferenceOutputs(reference)
    results: list[BenchResult] = []
    try:
        for target in targets:
            for row in _benchmark_target(target, sizes, batches, settings, references):
                results.append(row)
                if progress:
                    progress(row)
    finally:
        references.close()
    return BenchReport(environment or describe_environment(), results, reference.describe(), settings.describe())


def _benchmark_target(
    target: BenchTarget, sizes: list[tuple[int, int]], batches: list[int], settings: TimingSettings,
    references: ReferenceOutputs,
) -> Iterable[BenchResult]:
    cases = [(h, w, b) for h, w in sizes for b in batches]
    inputs = {case: photograph_batch(*case) for case in cases}
    # Reference outputs first: the reference's memory and time must not fall inside a candidate's measurements.
    expected = {case: references.output(*case, inputs[case][1]) for case in cases}
    probe = MemoryProbe()
    runner: Runner | None = None
    try:
        runner = target.open_runner()
        probe.attach(runner)
        runner.activate()
        probe.after_activation(runner)
    except CgExportError as exc:
        # Precision and device are only known for sure once a runner is active; leave them empty.
        backend = runner.name if runner else backend_of_file(target.path)
        for h, w, b in cases:
            yield BenchResult(target.label, backend, None, None, h, w, b, notes=[str(exc)])
        return
    source_note = _source_mismatch(target, references)
    try:
        for case in cases:
            label, batch = inputs[case]
            yield _benchmark_row(target, runner, case, label, batch, expected[case], settings, probe, references,
                                 source_note)
    finally:
        runner.deactivate()
        del runner
        _release_freed_memory()


def _benchmark_row(
    target: BenchTarget, runner: Runner, case: tuple[int, int, int], label: str, batch: np.ndarray,
    expected: np.ndarray | None, settings: TimingSettings, probe: MemoryProbe, references: ReferenceOutputs,
    source_note: str | None,
) -> BenchResult:
    height, width, batch_size = case
    row = BenchResult(target.label, backend_label(runner), runner.precision, str(runner.device), height, width,
                      batch_size)
    try:
        output = runner(batch)
    except Exception as exc:  # a runtime's own error for this size (static shapes, out of memory): report, go on
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        row.notes.append(f"cannot run {height}x{width} batch {batch_size}: {message}")
        return row
    # After the first run: it may autotune (cuDNN benchmark tries algorithms with gigabytes of workspace), compile
    # or capture a graph, and that one-off transient is not what the model needs to run.
    probe.start_row()
    for _ in range(settings.warmup):
        runner(batch)
    samples = time_calls(lambda: runner(batch), settings)
    row.latency = LatencyStats.from_samples(samples)
    row.throughput_ips = batch_size * 1000.0 / row.latency.mean
    compute = runner.compute_timer(batch)
    if compute is not None:
        for _ in range(settings.warmup):
            compute()
        row.compute = LatencyStats.from_samples(time_device_runs(compute, len(samples)))
        del compute
    row.peak_mem_mb = probe.peak_mb()
    if row.peak_mem_mb is None and probe.why_not:
        row.notes.append(probe.why_not)
    if expected is None:
        row.notes.append(references.unavailable or "no parity")
    else:
        try:
            case_parity = _compare(label, expected, output)
        except ParityError as exc:
            row.notes.append(str(exc))
        else:
            row.psnr_db, row.max_abs_err = case_parity
    if source_note:
        row.notes.append(source_note)
    return row


def _compare(label: str, expected: np.ndarray, output: np.ndarray) -> tuple[float, float]:
    from cg_export.parity import compare_outputs

    case = compare_outputs(label, expected, output)
    return case.psnr_db, case.max_abs_err


def backend_of_file(path: Path | None) -> str:
    """The backend a model file's extension selects (``torch``, ``onnxruntime``, ``tensorrt``), for rows that could
    not even open a runner."""
    if path is None:
        return "unknown"
    try:
        return backend_for(path).name
    except CgExportError:
        return "unknown"


def backend_label(runner: Runner) -> str:
    """The backend column: the runner's name, plus the ONNX Runtime execution provider (``onnxruntime:CUDA``)."""
    provider = getattr(runner, "provider", None)
    if isinstance(provider, str) and provider.endswith("ExecutionProvider"):
        return f"{runner.name}:{provider.removesuffix('ExecutionProvider')}"
    return runner.name


def _source_mismatch(target: BenchTarget, references: ReferenceOutputs) -> str | None:
    """A note when an ONNX model records a source checkpoint other than the reference (parity would mislead)."""
    if target.path is None or references.reference.path is None:
        return None
    meta = _recorded_metadata(target.path)
    recorded = meta.source_sha256 if meta else None
    if recorded is None:
        return None
    if references.sha256 is None:
        references.sha256 = sha256_of(references.reference.path)
    if recorded != references.sha256:
        return (f"exported from a different checkpoint than the reference {references.reference.path} "
                "(SHA-256 differs), so parity compares two different generators")
    return None


# ------------------------------------------------------------------------------------------------------ writers


def format_value(value: float | None, digits: int = 1) -> str:
    """A number for tables: ``-`` when missing, ``inf`` for identical outputs."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def format_ms(value: float | None) -> str:
    """Milliseconds with about four significant digits, ``-`` when missing."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


TABLE_HEADER = ("model", "backend", "precision", "device", "size", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ms",
                "compute p50 ms", "img/s", "peak MB", "PSNR dB", "max abs err", "note")


def _table_rows(report: BenchReport) -> tuple[list[list[str]], list[str]]:
    """Cells of every row, with notes replaced by ``[n]`` footnote marks; and the footnotes."""
    notes: list[str] = []
    rows = []
    for r in report.results:
        mark = ""
        if r.note:
            if r.note not in notes:
                notes.append(r.note)
            mark = f"[{notes.index(r.note) + 1}]"
        lat = r.latency
        rows.append([
            r.model, r.backend, r.precision or "-", r.device or "-", f"{r.height}x{r.width}", str(r.batch),
            *(format_ms(getattr(lat, key) if lat else None) for key in ("p50", "p90", "p99", "mean")),
            format_ms(r.compute.p50 if r.compute else None),
            format_value(r.throughput_ips, 2), format_value(r.peak_mem_mb, 0), format_value(r.psnr_db, 1),
            "-" if r.max_abs_err is None else f"{r.max_abs_err:.2e}", mark,
        ])
    return rows, notes


def format_table(report: BenchReport) -> str:
    """The report as an aligned plain-text table with numbered notes, for the terminal."""
    rows, notes = _table_rows(report)
    widths = [max(len(str(cell)) for cell in column) for column in zip(TABLE_HEADER, *rows, strict=True)]
    numeric = set(range(5, 15))

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in pairs).rstrip()

    lines = [line(TABLE_HEADER), line(["-" * w for w in widths])] + [line(row) for row in rows]
    lines += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines)


def to_markdown(report: BenchReport) -> str:
    """The report as Markdown: what ran where, the table, and the notes."""
    env = report.environment
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    lines = [
        "# cg-bench report",
        "",
        (f"- Machine: {env.get('cpu')} ({env.get('cores')} cores), GPU: {env.get('gpu') or 'none'}; "
         f"Python {env.get('python')}; {versions}"),
    ]
    if report.timing:
        lines.append(f"- Timing: {report.timing}; latency is end to end (host array in, host array out); "
                     "compute is device time without copies where the backend separates it")
    if report.reference:
        lines.append(f"- Parity reference (PyTorch fp32 on the CPU, real photographs): {report.reference}")
    rows, notes = _table_rows(report)
    lines += ["", "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    if notes:
        lines += ["", *[f"{i}. {note}" for i, note in enumerate(notes, 1)]]
    return "\n".join(lines) + "\n"


def write_json(report: BenchReport, path: str | Path) -> Path:
    """Write the report as JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return Path(path)


def write_markdown(report: BenchReport, path: str | Path) -> Path:
    """Write the report as Markdown, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(to_markdown(report))
    return Path(path)


def import_pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend, or a one-line :class:`MissingDependencyError`."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "for --plot", PLOT_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plot(report: BenchReport, path: str | Path) -> Path:
    """Plot p50 latency by input size, one bar per model/backend/precision/batch, whiskers to p99; atomically.

    The format follows the extension (``.png``, ``.svg``, ``.pdf``).

    Raises:
        MissingDependencyError: matplotlib is not installed.
        CgExportError: no row has a latency to plot.
    """
    plt = import_pyplot()
    rows = [r for r in report.results if r.latency is not None]
    if not rows:
        raise CgExportError("nothing to plot: no model ran")
    sizes = sorted({(r.height, r.width) for r in rows}, key=lambda s: (s[0] * s[1], s))
    series = list(dict.fromkeys(
        (r.model, r.backend, r.precision, r.device, r.batch) for r in rows))
    by_key = {((r.model, r.backend, r.precision, r.device, r.batch), (r.height, r.width)): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.45 * len(series) * len(sizes)), 4.8))
    width = 0.8 / len(series)
    for i, key in enumerate(series):
        xs, p50, whisker = [], [], []
        for j, size in enumerate(sizes):
            r = by_key.get((key, size))
            if r is not None and r.latency is not None:
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                p50.append(r.latency.p50)
                whisker.append(r.latency.p99 - r.latency.p50)
        model, backend, precision, device, batch = key
        label = f"{Path(model).name} | {backend} {precision} {device}" + (f" | batch {batch}" if batch != 1 else "")
        ax.bar(xs, p50, width, yerr=[[0] * len(whisker), whisker], capsize=2, label=label)
    ax.set_xticks(range(len(sizes)), [f"{h}x{w}" for h, w in sizes])
    ax.set_yscale("log")
    ax.set_xlabel("input size (height x width)")
    ax.set_ylabel("latency, ms (bar p50, whisker p99)")
    gpu = report.environment.get("gpu")
    ax.set_title(f"cg-bench on {gpu or report.environment.get('cpu', 'this machine')}", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.grid(axis="y", which="both", alpha=0.3)
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
    except ValueError as exc:  # an extension matplotlib cannot write
        raise CgExportError(f"--plot {path}: {exc}") from None
    finally:
        plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class ComparedRow:
    """One row present in both reports.

    Attributes:
        label: ``model backend precision device HxW batch N``.
        baseline_p50: Baseline p50 latency (ms), ``None`` if it was unavailable there.
        current_p50: Current p50 latency (ms), ``None`` if unavailable now.
        change_pct: ``(current - baseline) / baseline`` in percent, ``None`` when either is missing.
        regressed: Slower by more than the threshold, or unavailable now where the baseline ran.
    """

    label: str
    baseline_p50: float | None
    current_p50: float | None
    change_pct: float | None
    regressed: bool


@dataclass
class Comparison:
    """The current report against a baseline, row by row (rows match on :attr:`BenchResult.key`)."""

    threshold_pct: float
    rows: list[ComparedRow]
    only_current: list[str]
    only_baseline: list[str]

    @property
    def regressions(self) -> list[ComparedRow]:
        """The rows that regressed."""
        return [r for r in self.rows if r.regressed]


def _row_label(key: tuple[str, str, str | None, str | None, int, int, int]) -> str:
    model, backend, precision, device, h, w, batch = key
    return f"{model} {backend} {precision or '-'} {device or '-'} {h}x{w} batch {batch}"


def resolve_threshold(threshold_pct: float | None) -> float:
    """The regression threshold in percent: the default (10) for ``None``.

    Raises:
        CgExportError: a negative threshold.
    """
    threshold = DEFAULT_THRESHOLD_PCT if threshold_pct is None else threshold_pct
    if not threshold >= 0:
        raise CgExportError(f"--threshold {threshold}: must be 0 or more (percent)")
    return threshold


def compare_reports(baseline: BenchReport, current: BenchReport, threshold_pct: float | None = None) -> Comparison:
    """Compare p50 latencies of the rows both reports have.

    Args:
        baseline: The earlier report.
        current: This run.
        threshold_pct: A row regresses when its p50 grew by more than this percentage (default 10), or when it
            ran in the baseline and does not run now.

    Raises:
        CgExportError: a negative threshold.
    """
    threshold = resolve_threshold(threshold_pct)
    base = {r.key: r for r in baseline.results}
    now = {r.key: r for r in current.results}
    rows = []
    for key, cur in now.items():
        if key not in base:
            continue
        old = base[key]
        old_p50 = old.latency.p50 if old.latency else None
        new_p50 = cur.latency.p50 if cur.latency else None
        change = None if old_p50 is None or new_p50 is None or old_p50 <= 0 else (new_p50 - old_p50) / old_p50 * 100
        regressed = (change is not None and change > threshold) or (old_p50 is not None and new_p50 is None)
        rows.append(ComparedRow(_row_label(key), old_p50, new_p50, change, regressed))
    return Comparison(
        threshold,
        rows,
        [_row_label(k) for k in now if k not in base],
        [_row_label(k) for k in base if k not in now],
    )


def format_comparison(comparison: Comparison) -> str:
    """The comparison as lines for the terminal: one per matched row, then what only one report has."""
    lines = [f"compared with the baseline (regression: p50 more than {comparison.threshold_pct:g}% slower)"]
    for r in comparison.rows:
        if r.change_pct is not None:
            verdict = "REGRESSION" if r.regressed else "ok"
            lines.append(f"  {verdict:<10} {r.label}: p50 {format_ms(r.baseline_p50)} -> {format_ms(r.current_p50)} ms "
                         f"({r.change_pct:+.1f}%)")
        elif r.regressed:
            lines.append(f"  {'REGRESSION':<10} {r.label}: ran in the baseline, unavailable now")
        else:
            lines.append(f"  {'new':<10} {r.label}: unavailable in the baseline, p50 {format_ms(r.current_p50)} ms now")
    if not comparison.rows:
        lines.append("  no row of this run matches a row of the baseline (model file, backend, precision, device, "
                     "size, batch)")
    lines += [f"  {'not in baseline':<10} {label}" for label in comparison.only_current]
    lines += [f"  {'baseline only':<10} {label}" for label in comparison.only_baseline]
    return "\n".join(lines)
