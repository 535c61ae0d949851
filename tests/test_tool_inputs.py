"""cg-stylize and cg-bench with unlucky, broken and hostile inputs: every one a single line, no file ever lost.

Also the threads a model runs with (:mod:`cg_export.threads`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cg_export.threads import available_cores, cgroup_cpu_limit, default_threads


def _cgroup_tree(root: Path, v2: str | None = None, v1: tuple[str, str] | None = None, own: str = "/") -> Path:
    """A fake cgroup mount: ``cpu.max`` (v2) or ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` (v1) in ``own``."""
    proc = root / "proc_cgroup"
    if v2 is not None:
        folder = root / own.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.max").write_text(v2 + "\n")
        proc.write_text(f"0::{own}\n")
    if v1 is not None:
        folder = root / "cpu,cpuacct" / own.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (folder / "cpu.cfs_period_us").write_text(v1[1] + "\n")
        proc.write_text(f"4:cpu,cpuacct:{own}\n")
    return proc


@pytest.mark.parametrize(("v2", "v1", "expected"), [
    ("150000 100000", None, 1.5),
    ("max 100000", None, None),
    (None, ("200000", "100000"), 2.0),
    (None, ("-1", "100000"), None),
    ("garbage", None, None),
])
def test_cgroup_quota_in_both_hierarchies(tmp_path, v2, v1, expected):
    proc = _cgroup_tree(tmp_path, v2=v2, v1=v1, own="/docker/abc")
    assert cgroup_cpu_limit(tmp_path, proc) == expected


def test_a_parent_cgroups_quota_counts(tmp_path):
    (tmp_path / "kubepods" / "pod1").mkdir(parents=True)
    (tmp_path / "kubepods" / "cpu.max").write_text("50000 100000\n")
    (tmp_path / "kubepods" / "pod1" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "proc").write_text("0::/kubepods/pod1\n")
    assert cgroup_cpu_limit(tmp_path, tmp_path / "proc") == 0.5


def test_default_threads_is_the_usable_cores_and_at_least_one(monkeypatch):
    assert 1 <= default_threads() <= available_cores() <= (os.cpu_count() or 1)
    monkeypatch.setattr("cg_export.threads.cgroup_cpu_limit", lambda: 0.5)
    assert default_threads() == 1
    monkeypatch.setattr("cg_export.threads.cgroup_cpu_limit", lambda: 1.5)
    assert default_threads() == min(2, available_cores())
    monkeypatch.setattr("cg_export.threads.cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {3})
    assert default_threads() == 1
