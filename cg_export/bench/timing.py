"""Latency statistics and the timing loops: how each row of a report is measured.

Timing is a bare clock read around each call (so cg-bench agrees with a hand-written loop), and device backends
time their compute alone through :meth:`~cg_export.backends.Runner.compute_timer`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cg_export.errors import OptionError

DEFAULT_WARMUP = 3
# trtexec's default measuring time; on a slow CPU a duration-based run still takes at least MIN_SAMPLES samples so
# that the percentiles mean something.
DEFAULT_DURATION_S = 3.0
MIN_SAMPLES = 5
LATENCY_KEYS = ("mean", "p50", "p90", "p99", "min", "max")


def speedup(reference_ms: float, latency_ms: float) -> float:
    """How many times faster than the reference a latency is (``2.0``: half the reference's time)."""
    return reference_ms / latency_ms if latency_ms > 0 else math.inf


def format_speedup(factor: float | None) -> str:
    """``"4.40x"``, ``-`` when there is nothing to compare with."""
    return "-" if factor is None else f"{factor:.2f}x"


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
            OptionError: negative warm-up, fewer than one iteration, a non-positive duration, or both
                ``iterations`` and ``duration_s``.
        """
        if iterations is not None and duration_s is not None:
            raise OptionError("iterations", None, "give {iterations} or {duration_s}, not both")
        if warmup is not None and warmup < 0:
            raise OptionError("warmup", warmup, "must be 0 or more")
        if iterations is not None and iterations < 1:
            raise OptionError("iterations", iterations, "must be 1 or more")
        if duration_s is not None and not duration_s > 0:
            raise OptionError("duration_s", duration_s, "must be more than 0 seconds")
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
