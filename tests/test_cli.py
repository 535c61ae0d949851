"""The command line as a user calls it: real processes, real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CG_EXPORT = [sys.executable, "-m", "cg_export.cli.export"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CG_EXPORT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "onnx" in result.stdout and "init" in result.stdout


def test_init_then_export_with_no_flags(tmp_path):
    assert run("init", "resnet_tiny", "-o", str(tmp_path / "G_AB.pt")).returncode == 0
    result = run("onnx", str(tmp_path / "G_AB.pt"))
    assert result.returncode == 0, result.stderr
    assert "detected  resnet_2blocks" in result.stdout
    assert "verified  fp32 vs PyTorch: PSNR" in result.stdout
    assert (tmp_path / "G_AB.onnx").is_file()


def test_peer_checkpoint_fp16(checkpoints, tmp_path):
    out = tmp_path / "g16.onnx"
    result = run("onnx", str(checkpoints["legacy_net_G_A.pth"]), "--fp16", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "pytorch-CycleGAN-and-pix2pix" in result.stdout and "running-statistics" in result.stdout
    assert "verified  fp16" in result.stdout and out.is_file()


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda d: d / "nothing.pth", "no such file"),
        (lambda d: (d / "notes.pth").write_text("not weights") and d / "notes.pth", "not a PyTorch checkpoint"),
        (lambda d: (d / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n") and d / "pic.png", "not a PyTorch checkpoint"),
    ],
    ids=["missing", "text", "image"],
)
def test_bad_checkpoints_fail_in_one_line_without_output(tmp_path, setup, expected):
    result = run("onnx", str(setup(tmp_path)), "-o", str(tmp_path / "out.onnx"))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out.onnx").exists()


def test_failed_parity_exits_non_zero_and_leaves_no_file(checkpoints, tmp_path):
    result = run("onnx", str(checkpoints["ours.pt"]), "--fp16", "--min-psnr", "500", "-o", str(tmp_path / "g.onnx"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: fp16 parity check failed: PSNR")
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_reported(checkpoints, tmp_path):
    result = run("onnx", str(checkpoints["ours.pt"]), "--static", "big", "-o", str(tmp_path / "g.onnx"))
    assert result.returncode == 1 and "expected HEIGHTxWIDTH" in result.stderr
    result = run("onnx", str(checkpoints["ours.pt"]), "--arch", "vgg16", "-o", str(tmp_path / "g.onnx"))
    assert result.returncode == 1 and "unknown architecture 'vgg16'" in result.stderr
