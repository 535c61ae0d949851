"""How many CPU threads a model should run with: the cores this process may actually use.

``os.cpu_count()`` counts the machine's cores, not the ones a container, a CPU affinity mask (``taskset``) or a
cgroup CPU quota (Docker ``--cpus``, Kubernetes CPU limits) leaves to this process. Runtimes that start one thread
per machine core on a machine where the process may use two ran the demo's small generator 9-45x slower than one
thread did. Every command that runs a model takes its default from :func:`default_threads`.

And the cores other processes are busy on right now: a thread that waits for a sibling the OS has parked, because
a neighbour holds its core, holds up every parallel step. On this project's 2-core machine, 16 steps of cg-train
with 2 threads took 13.1 s beside one busy process with spinning threads, 9.8 s with passive waiting, and 7.1 s with
one thread (``benchmarks/results/busy_neighbour_passive_policy.json``). So :func:`default_threads` leaves out the
cores other processes are running on when the command starts (:func:`busy_cores`), and waiting is chosen by what it
costs (``benchmarks/results/busy_neighbour.json``, ``busy_neighbour_stylize.json``):

- ONNX Runtime and OpenVINO sessions never spin (:class:`ThreadSettings`): it cost nothing measurable idle.
- PyTorch's OpenMP waits passively only where the machine is shared at start (:func:`prefer_passive_waiting`):
  on an idle machine passive waiting made those 16 steps 31 % slower (8.5 s against 6.5 s).

:data:`SPIN_ENV` overrides both: ``1`` spins everywhere, ``0`` waits passively everywhere.

A leaf module (the standard library and :mod:`cg_export.errors` only), so every layer can use it.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cg_export.errors import OptionError

#: ``1``: runtime threads spin-wait (ONNX Runtime's ``session.intra_op.allow_spinning``, OpenVINO's CPU pinning,
#: OpenMP's own waiting); ``0``: they wait passively everywhere (``OMP_WAIT_POLICY=PASSIVE`` too); unset: the
#: toolkit's choice (see the module docstring). An ``OMP_WAIT_POLICY`` the user set is always left alone.
SPIN_ENV = "CG_EXPORT_SPIN"
#: Where the kernel says how many threads are runnable right now (4th field: ``running/total``).
PROC_LOADAVG = Path("/proc/loadavg")

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def default_threads() -> int:
    """The number of threads to run a model with: the cores this process may use and nobody else is busy on, at
    least 1.

    The smaller of the CPUs in this process's affinity mask and the cgroup CPU quota (cgroup v2 ``cpu.max`` or
    v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded up; under torchrun, shared among the processes it
    started on this machine (``LOCAL_WORLD_SIZE``), since each of them would otherwise take every core; less the
    cores other processes were running on when this process first asked (:func:`busy_cores`).
    """
    cores = available_cores()
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    local_processes = os.environ.get("LOCAL_WORLD_SIZE", "")
    if local_processes.isdigit() and int(local_processes) > 1:
        cores //= int(local_processes)
    return max(1, cores - busy_cores())


@functools.cache
def busy_cores() -> int:
    """How many threads of other processes were running when this process first asked: the kernel's count of
    runnable threads (``/proc/loadavg``) less this one, the smallest of a few samples 5 ms apart so a passing
    spike does not count; 0 where the platform does not say.

    Decided once per process, so every model a command runs gets the same thread count (a benchmark's rows
    compare, a training's steps are reproducible within the run); a long job does not follow later changes.
    """
    counts = []
    for _ in range(5):
        try:
            counts.append(int(PROC_LOADAVG.read_text().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return 0
        time.sleep(0.005)
    return max(0, min(counts) - 1)


def spinning_allowed(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether the user asked runtime threads to spin-wait (``CG_EXPORT_SPIN=1``)."""
    return (os.environ if environ is None else environ).get(SPIN_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def passive_asked(environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether the user asked every runtime to wait passively (``CG_EXPORT_SPIN=0``)."""
    return (os.environ if environ is None else environ).get(SPIN_ENV, "").strip().lower() in ("0", "false", "no", "off")


def prefer_passive_waiting(environ: MutableMapping[str, str] | None = None, shared: bool | None = None) -> bool:
    """Make OpenMP's idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``) where the machine is
    shared when the command starts, or where :data:`SPIN_ENV` is ``0``.

    libgomp reads the variable once, when it loads (with torch), so each command-line entry point calls this
    before anything imports torch. A policy the user set themselves, or ``CG_EXPORT_SPIN=1``, is left alone.

    Args:
        environ: The environment to change; ``None`` is this process's.
        shared: Whether other processes are busy on this machine; ``None``: :func:`busy_cores` says.

    Returns:
        Whether the variable was set.
    """
    environ = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in environ or spinning_allowed(environ):
        return False
    if not passive_asked(environ) and not (busy_cores() > 0 if shared is None else shared):
        return False  # an idle machine: libgomp's own short spin is what keeps small steps fast
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


@dataclass(frozen=True)
class ThreadSettings:
    """The threads a model runs with, as every runtime is told: the count and whether idle threads may spin.

    Attributes:
        count: Intra-op threads, 1 or more.
        spinning: Let idle threads spin-wait (see :data:`SPIN_ENV`).
    """

    count: int
    spinning: bool = False

    @classmethod
    def resolve(cls, count: int | None = None) -> ThreadSettings:
        """``count`` (``None``: :func:`default_threads`) with the spinning the environment asks for."""
        return cls(default_threads() if count is None else count, spinning_allowed())

    def apply_to_onnxruntime(self, options: object) -> None:
        """Set an ``onnxruntime.SessionOptions``: its intra-op thread count and spinning."""
        options.intra_op_num_threads = self.count  # type: ignore[attr-defined]
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")  # type: ignore[attr-defined]

    def openvino_config(self) -> dict[str, object]:
        """OpenVINO CPU compile properties: the thread count, and no pinning of threads to cores (OpenVINO has no
        spin setting; pinned threads on a shared machine wait for their own core instead of any free one)."""
        return {"INFERENCE_NUM_THREADS": self.count, "ENABLE_CPU_PINNING": self.spinning}


@contextmanager
def threads(count: int | None = None) -> Iterator[ThreadSettings]:
    """PyTorch's intra-op thread count set to ``count`` while inside, restored on the way out; the one place the
    toolkit changes it. Yields the settings the ONNX Runtime and OpenVINO sessions made inside use.

    Args:
        count: Threads; ``None`` is :func:`default_threads`.
    """
    check_threads(count)
    settings = ThreadSettings.resolve(count)
    torch = _loaded_torch()
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None and previous != settings.count:
        torch.set_num_threads(settings.count)
    try:
        yield settings
    finally:
        if torch is not None and previous is not None and torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _loaded_torch():  # noqa: ANN202
    # Only a torch already imported is set: whoever runs PyTorch imported it first, and an ONNX-only command should
    # not pay seconds to import it.
    import sys

    return sys.modules.get("torch")


def check_threads(threads: int | None, option: str = "--threads") -> int | None:
    """``threads`` itself when it is ``None`` (the default) or 1 or more.

    Args:
        threads: The thread count asked for.
        option: Unused; the error carries the field ``threads`` and the command line names its own flag. Kept so
            callers written before that keep working.

    Raises:
        OptionError: (field ``threads``) 0 or negative.
    """
    if threads is not None and threads < 1:
        raise OptionError("threads", threads, "must be 1 or more")
    return threads


@contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """:func:`threads` for code that runs PyTorch itself (training, distillation): imports torch first so the count
    is set even where nothing imported it yet, and yields the count in force.

    Raises:
        OptionError: (field ``threads``) 0 or negative.
    """
    import torch  # noqa: F401  (here, not at the top: this module stays importable without torch)

    with threads(count) as settings:
        yield settings.count


def available_cores() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the platform has no affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPU quota of this process's cgroups in cores (``1.5`` = 150 ms per 100 ms), or ``None`` when unlimited.

    Looks at the process's own cgroup and every parent up to the mount's root (inside a container the root is the
    container's cgroup), in both hierarchies, and returns the smallest quota found.

    Args:
        root: Where the cgroup file systems are mounted.
        proc_cgroup: The ``/proc/<pid>/cgroup`` file naming this process's cgroups.
    """
    limits = [limit for folder, kind in _cgroup_folders(root, proc_cgroup) if (limit := _read_quota(folder, kind))]
    return min(limits) if limits else None


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[tuple[Path, str]]:
    """``(folder, "v1" or "v2")`` for the process's cgroups and their parents, deepest first."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    folders: list[tuple[Path, str]] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, relative = parts
        if controllers == "":
            mounts = [(root, "v2"), (root / "unified", "v2")]
        elif "cpu" in controllers.split(","):
            mounts = [(root / name, "v1") for name in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu")]
        else:
            continue
        for mount, kind in mounts:
            folder = mount / relative.lstrip("/")
            while True:
                folders.append((folder, kind))
                if folder == mount:
                    break
                folder = folder.parent
    # No /proc/self/cgroup (or nothing in it matched): the mounts' roots still carry a container's own quota.
    folders += [(root, "v2"), (root / "cpu", "v1"), (root / "cpu,cpuacct", "v1")]
    return folders


def _read_quota(folder: Path, kind: str) -> float | None:
    try:
        if kind == "v2":
            quota, _, period = (folder / "cpu.max").read_text().strip().partition(" ")
        else:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1"):
            return None
        cores = int(quota) / int(period or 100000)
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return cores if cores > 0 else None


__all__ = ["SPIN_ENV", "ThreadSettings", "available_cores", "busy_cores", "cgroup_cpu_limit", "check_threads",
           "default_threads", "passive_asked", "prefer_passive_waiting", "spinning_allowed", "threads", "torch_threads"]
