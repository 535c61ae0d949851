"""Threads: one context manager sets and restores PyTorch's count, and every runtime waits passively on a shared
machine unless asked to spin (:mod:`cg_export.threads`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cg_export.backends.onnxruntime import OnnxRuntimeRunner
from cg_export.backends.torch import TorchRunner
from cg_export.export.onnx import OnnxExportOptions, export_onnx
from cg_export.models import save_generator
from cg_export.threads import SPIN_ENV, ThreadSettings, prefer_passive_waiting, threads
from tests.conftest import REPO, make_generator

ROOT = REPO


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("thread_policy")
    checkpoint = save_generator(make_generator("resnet", ngf=4, n_blocks=1), folder / "g.pt")
    return export_onnx(checkpoint, folder / "g.onnx", OnnxExportOptions(verify=False)).path


def test_threads_sets_and_restores_torch_threads():
    torch.set_num_threads(1)
    with threads(2) as settings:
        assert torch.get_num_threads() == 2 and settings.count == 2
    assert torch.get_num_threads() == 1


def test_the_torch_runner_gives_its_threads_back():
    """It used to set PyTorch's process-wide thread count on activate and never restore it."""
    torch.set_num_threads(1)
    with TorchRunner(make_generator("resnet", ngf=4, n_blocks=1), threads=2) as runner:
        assert torch.get_num_threads() == 2
        runner(np.zeros((1, 3, 16, 16), np.float32))
    assert torch.get_num_threads() == 1


def test_onnxruntime_threads_do_not_spin_unless_asked(onnx_model, monkeypatch):
    monkeypatch.delenv(SPIN_ENV, raising=False)
    with OnnxRuntimeRunner(onnx_model, providers=["CPUExecutionProvider"], threads=2) as runner:
        options = runner._options
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 2
    monkeypatch.setenv(SPIN_ENV, "1")
    with OnnxRuntimeRunner(onnx_model, providers=["CPUExecutionProvider"], threads=2) as runner:
        assert runner._options.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_openvino_threads_are_not_pinned_unless_asked(onnx_model, monkeypatch):
    pytest.importorskip("openvino")
    from cg_export.backends.openvino import OpenVinoRunner

    monkeypatch.delenv(SPIN_ENV, raising=False)
    with OpenVinoRunner(onnx_model, device="CPU", threads=1) as runner:
        assert runner._compiled.get_property("ENABLE_CPU_PINNING") is False
        assert runner._compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert ThreadSettings(2, spinning=True).openvino_config()["ENABLE_CPU_PINNING"] is True


def test_openmp_waits_passively_on_a_shared_machine_or_when_asked_and_never_against_the_users_choice():
    environ: dict[str, str] = {}
    assert prefer_passive_waiting(environ, shared=True) and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    environ = {}
    assert not prefer_passive_waiting(environ, shared=False) and environ == {}  # idle: libgomp's own short spin
    environ = {SPIN_ENV: "0"}
    assert prefer_passive_waiting(environ, shared=False) and environ["OMP_WAIT_POLICY"] == "PASSIVE"
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert not prefer_passive_waiting(environ, shared=True) and environ == {"OMP_WAIT_POLICY": "ACTIVE"}
    environ = {SPIN_ENV: "1"}
    assert not prefer_passive_waiting(environ, shared=True) and "OMP_WAIT_POLICY" not in environ


def test_default_threads_leave_out_the_cores_others_are_running_on(tmp_path, monkeypatch):
    from cg_export import threads as policy

    loadavg = tmp_path / "loadavg"
    monkeypatch.setattr(policy, "PROC_LOADAVG", loadavg)
    monkeypatch.setattr(policy, "available_cores", lambda: 4)
    monkeypatch.setattr(policy, "cgroup_cpu_limit", lambda: None)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for running, expected in ((1, 4), (2, 3), (4, 1), (9, 1)):  # "running" counts the thread that reads it
        loadavg.write_text(f"1.00 0.50 0.25 {running}/300 4242\n")
        policy.busy_cores.cache_clear()
        assert policy.busy_cores() == running - 1 and policy.default_threads() == expected
    loadavg.unlink()  # a platform that does not say: nothing is taken away
    policy.busy_cores.cache_clear()
    assert policy.default_threads() == 4
    policy.busy_cores.cache_clear()


PROBE = """
import os, sys
from cg_export.cli.common import new_app
from cg_export.cli.version import run_app
app = new_app("probe", no_args_is_help=False)
@app.command()
def probe() -> None:
    import torch  # what a command's torch sees: libgomp read the variable when this loaded
    print(os.environ.get("OMP_WAIT_POLICY"))
run_app(app, "probe", [])
"""


def test_console_scripts_set_passive_waiting_before_torch_loads():
    # CG_EXPORT_SPIN=0 asks for what a shared machine gets, so the test does not depend on this machine's load.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", SPIN_ENV)}
    env["PYTHONPATH"], env[SPIN_ENV] = str(ROOT), "0"
    run = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "PASSIVE", run.stderr
    trainer = subprocess.run([sys.executable, "-c", "import os, sys; assert 'torch' not in sys.modules; "
                              "import training.cli; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert trainer.stdout.strip() == "PASSIVE True", trainer.stderr
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    run = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "ACTIVE", run.stderr


def test_a_torch_runner_computes_with_its_own_threads_whatever_another_runner_set():
    """A benchmark's reference stays active beside every target: a target's thread count must not leak into the
    reference's runs (other count, other kernels: a reference compared with itself read 83 dB instead of inf)."""
    model = make_generator("resnet", ngf=4, n_blocks=1)
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    batch = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    torch.set_num_threads(1)
    with TorchRunner(model, threads=2) as reference:
        alone = reference(batch)
        with TorchRunner(make_generator("resnet", ngf=4, n_blocks=1), threads=1) as other:
            other(batch)
            beside = reference(batch)
        after = reference(batch)
    assert seen == [2, 2, 2]
    assert np.array_equal(alone, beside) and np.array_equal(alone, after)
    assert torch.get_num_threads() == 1
