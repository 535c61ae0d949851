"""How many CPU threads a model should run with: the cores this process may actually use.

``os.cpu_count()`` counts the machine's cores, not the ones a container, a CPU affinity mask (``taskset``) or a
cgroup CPU quota (Docker ``--cpus``, Kubernetes CPU limits) leaves to this process. Runtimes that start one thread
per machine core on a machine where the process may use two ran the demo's small generator 9-45x slower than one
thread did. Every command that runs a model takes its default from :func:`default_threads`.

A leaf module (the standard library and :mod:`cg_export.errors` only), so every layer can use it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cg_export.errors import OptionError

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def default_threads() -> int:
    """The number of threads to run a model with: the cores this process may use, at least 1.

    The smaller of the CPUs in this process's affinity mask and the cgroup CPU quota (cgroup v2 ``cpu.max`` or
    v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded up; under torchrun, shared among the processes it
    started on this machine (``LOCAL_WORLD_SIZE``), since each of them would otherwise take every core.
    """
    cores = available_cores()
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    local_processes = os.environ.get("LOCAL_WORLD_SIZE", "")
    if local_processes.isdigit() and int(local_processes) > 1:
        cores //= int(local_processes)
    return max(1, cores)


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
def torch_threads(threads: int | None) -> Iterator[int]:
    """PyTorch computes with ``threads`` inside (``None``: :func:`default_threads`); its previous count comes back
    on the way out, so the process-wide setting is taken and given back in one place.

    Yields:
        The thread count in force.

    Raises:
        OptionError: (field ``threads``) 0 or negative.
    """
    import torch  # here, not at the top: this module stays importable without torch

    check_threads(threads)
    previous = torch.get_num_threads()
    count = default_threads() if threads is None else threads
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)


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


__all__ = ["available_cores", "cgroup_cpu_limit", "check_threads", "default_threads"]
