"""Running a benchmark: every target at every size and batch size, timed, measured and compared with the reference.

A target that cannot open, or a size it cannot run, becomes an unavailable row with the reason; the others still
run. Nothing here knows which runtime a target uses: runners are opened through the formats table and describe
their own model (:attr:`~cg_export.backends.Runner.info`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cg_export.backends import Runner, backend_for, is_checkpoint, runner_for
from cg_export.bench.environment import describe_environment
from cg_export.bench.memory import MemoryProbe, release_freed_memory
from cg_export.bench.report import BenchReport, BenchResult
from cg_export.bench.targets import REFERENCE_HINT, BenchTarget, Reference
from cg_export.bench.timing import LatencyStats, TimingSettings, time_calls, time_device_runs
from cg_export.errors import CgExportError, ParityError
from cg_export.files import sha256_of
from cg_export.images import fit_to_size, sample_photographs, to_model_input
from cg_export.sizes import round_up
from cg_export.threads import check_threads

DEFAULT_SIZES = ((256, 256),)
DEFAULT_BATCHES = (1,)


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

    def __init__(self, reference: Reference, threads: int | None = None):
        self.reference = reference
        self.threads = threads
        self.runner: Runner | None = None
        self._sha256: str | None = None
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
                runner = runner_for(self.reference.path, device="cpu", threads=self.threads)
                runner.activate()
                self.runner = runner  # only an active runner: source_sha256() asks it for its description
        except CgExportError as exc:
            self.unavailable = f"no parity: the reference {self.reference.path} cannot run ({exc})"
            return None
        multiple = self.runner.info.size_multiple
        if height % multiple or width % multiple:
            return None  # the candidate's row says why the size is wrong; the reference has nothing to add
        try:
            self.cache[key] = self.runner(inputs)
        except Exception:  # a size the reference cannot run (too small for its padding ...): no parity there
            return None
        return self.cache[key]

    def source_sha256(self) -> str | None:
        """The reference checkpoint's weights digest: as its runner read it, or computed here when it never ran."""
        if self.runner is not None:
            return self.runner.info.source_sha256
        if self._sha256 is None and self.reference.path is not None:
            from cg_export.bench.targets import _weights_sha256

            # What exports record as their source: the weights' digest (the file's, if it cannot be loaded).
            self._sha256 = _weights_sha256(self.reference.path) or sha256_of(self.reference.path)
        return self._sha256

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
    threads: int | None = None,
) -> BenchReport:
    """Time every target at every size and batch size and compare its output with the reference.

    Sizes that are not multiples of a model's size multiple, or not a static model's size, become rows saying so;
    with ``sizes`` not given, a static model runs at its own size.

    Each target's runner is activated once; for each size and batch the first run on the photograph batch gives the
    parity output, then come the warm-up runs, the timed end-to-end runs and, where the backend supports it
    (:meth:`Runner.compute_timer`), as many timed compute-only runs. A target that cannot be opened, or a size it
    cannot run, becomes an unavailable row with the reason; the other rows still run.

    Args:
        targets: What to benchmark (see :func:`targets_from_files`).
        sizes: ``(height, width)`` pairs; default 256x256 (a static model: its size).
        batches: Batch sizes; default 1.
        warmup: Untimed runs per row; default 3.
        iterations: Timed runs per row; default: as many as fit in ``duration_s``.
        duration_s: Seconds of timed runs per row (default 3 s) when ``iterations`` is not given.
        reference: The parity reference (see :func:`find_reference`); ``None``: no parity.
        environment: Machine description for the report; default :func:`describe_environment` after the run.
        progress: Called with each finished row.
        threads: CPU threads of the reference (the targets' runners take theirs from :func:`targets_from_files`),
            recorded in the environment; default :func:`cg_export.threads.default_threads`.

    Raises:
        CgExportError: invalid sizes, batch sizes or timing options.
    """
    settings = TimingSettings.create(warmup, iterations, duration_s)
    sizes_given = sizes is not None
    sizes = list(DEFAULT_SIZES if sizes is None else sizes)
    batches = list(DEFAULT_BATCHES if batches is None else batches)
    if not sizes or any(h <= 0 or w <= 0 for h, w in sizes):
        raise CgExportError(f"sizes {sizes}: need at least one, each HEIGHTxWIDTH with positive sides")
    if not batches or any(b < 1 for b in batches):
        raise CgExportError(f"batch sizes {batches}: need at least one, each 1 or more")
    reference = reference or Reference(None, f"no reference given; {REFERENCE_HINT}")
    check_threads(threads)
    references = ReferenceOutputs(reference, threads)
    results: list[BenchResult] = []
    try:
        for target in targets:
            for row in _benchmark_target(target, sizes, batches, settings, references, sizes_given):
                results.append(row)
                if progress:
                    progress(row)
    finally:
        references.close()
    return BenchReport(environment or describe_environment(threads), results, reference.describe(),
                       settings.describe())


def _benchmark_target(
    target: BenchTarget, sizes: list[tuple[int, int]], batches: list[int], settings: TimingSettings,
    references: ReferenceOutputs, sizes_given: bool = True,
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
    static = runner.info.static_size
    if static is not None and not sizes_given and static not in sizes:
        # A static model runs only its own size: that is what to time when no size was asked for. Its reference
        # outputs come after its activation, so the probe starts again from here.
        cases = [(*static, b) for b in batches]
        for case in cases:
            inputs[case] = photograph_batch(*case)
            expected[case] = references.output(*case, inputs[case][1])
        probe = MemoryProbe()
        probe.attach(runner)
        probe.after_activation(runner)
    source_note = _source_mismatch(target, runner, references)
    try:
        for case in cases:
            label, batch = inputs[case]
            refused = size_refusal(runner, case[0], case[1])
            if refused:
                yield BenchResult(target.label, backend_label(runner), runner.precision, str(runner.device),
                                  *case, notes=[refused])
                continue
            yield _benchmark_row(target, runner, case, label, batch, expected[case], settings, probe, references,
                                 source_note)
    finally:
        runner.deactivate()
        del runner
        release_freed_memory()


def size_refusal(runner: Runner, height: int, width: int) -> str | None:
    """Why an active runner's model cannot run ``height`` x ``width`` (not its size multiple, not its static
    size), or ``None`` when it can."""
    info = runner.info
    if info.static_size is not None and (height, width) != tuple(info.static_size):
        sh, sw = info.static_size
        return f"{height}x{width}: the model is static {sh}x{sw} and runs only that size (--size {sh}x{sw})"
    multiple = info.size_multiple
    if height % multiple or width % multiple:
        return (f"{height}x{width}: not a multiple of {multiple}, the model's size multiple "
                f"(e.g. --size {round_up(height, multiple)}x{round_up(width, multiple)})")
    return None


def _benchmark_row(
    target: BenchTarget, runner: Runner, case: tuple[int, int, int], label: str, batch: np.ndarray,
    expected: np.ndarray | None, settings: TimingSettings, probe: MemoryProbe, references: ReferenceOutputs,
    source_note: str | None,
) -> BenchResult:
    height, width, batch_size = case
    row = BenchResult(target.label, backend_label(runner), runner.precision, str(runner.device), height, width,
                      batch_size)
    cost = _model_cost(runner, height, width)
    row.macs, row.params = (cost.macs, cost.params) if cost else (None, None)
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
    """The runtime the formats table picks for a model file (``torch``, ``onnxruntime``, ``tensorrt``), for rows
    that could not even open a runner."""
    if path is None:
        return "unknown"
    try:
        return backend_for(path).backend
    except CgExportError:
        return "unknown"


def backend_label(runner: Runner) -> str:
    """The backend column: the runner's name, plus the ONNX Runtime execution provider (``onnxruntime:CUDA``)."""
    provider = getattr(runner, "provider", None)
    if isinstance(provider, str) and provider.endswith("ExecutionProvider"):
        return f"{runner.name}:{provider.removesuffix('ExecutionProvider')}"
    return runner.name


def _source_mismatch(target: BenchTarget, runner: Runner, references: ReferenceOutputs) -> str | None:
    """A note when an exported model records a source checkpoint other than the reference (parity would mislead).

    The record is what the active runner says of its model (:attr:`Runner.info`); a checkpoint is a source itself,
    not an export, so it is never flagged.
    """
    if target.path is None or is_checkpoint(target.path) or references.reference.path is None:
        return None
    recorded = runner.info.source_sha256
    if recorded is None:
        return None
    # Exports record the weights' digest; those written before it was introduced, the file's SHA-256.
    if recorded != references.source_sha256() and recorded != sha256_of(references.reference.path):
        return (f"exported from a different checkpoint than the reference {references.reference.path} "
                "(SHA-256 differs), so parity compares two different generators")
    return None


def _model_cost(runner: Runner, height: int, width: int) -> Any:
    """MACs and parameters per image of what the runner's file records (ptflops on the rebuilt architecture).

    Counting rebuilds the architecture in PyTorch, so on a device that runs ONNX or TensorRT files without torch the
    columns stay empty instead of the benchmark failing.
    """
    try:
        from cg_export.macs import cost_of_runner
    except ImportError:
        return None
    return cost_of_runner(runner, height, width)

