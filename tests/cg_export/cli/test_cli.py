"""The command line as a user calls it, on real files: in-process through typer's test runner, plus one real
process per console script to check that the installed entry point starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from cg_export.cli.export import app as cg_export
from cg_export.cli.options import model_files, psnr_floors
from cg_export.parity import DEFAULT_MIN_PSNR


def run(*args: str):
    return CliRunner().invoke(cg_export, [str(a) for a in args])


@pytest.mark.parametrize(
    "script, expected",
    [("cg-export", "onnx"), ("cg-train", "--decay-epoch"), ("cg-bench", "--warmup"), ("cg-stylize", "--stats-size")],
)
def test_installed_console_scripts_start(script, expected):
    """pyproject's [project.scripts] points at a real ``main``: the one check that needs a real process."""
    path = Path(sys.executable).with_name(script)
    if not path.exists():
        pytest.skip(f"{script} is not installed beside {sys.executable} (pip install -e .)")
    result = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    assert "onnx" in result.stdout and "init" in result.stdout


def test_help_quotes_the_library_defaults():
    from cg_export.export.defaults import DEFAULT_OPSET

    helps = {p.name: p.help for p in typer.main.get_command(cg_export).commands["onnx"].params}
    assert f"default: {DEFAULT_OPSET}," in helps["opset"]
    assert f"default: {psnr_floors()}" in helps["min_psnr_db"] and f"{DEFAULT_MIN_PSNR['fp16']:g} fp16" in psnr_floors()
    assert psnr_floors().startswith(f"{DEFAULT_MIN_PSNR['fp32']:g} fp32, ")
    assert ".pt/.pth (PyTorch), .onnx (ONNX Runtime)" in model_files()


def test_init_then_export_with_no_flags(tmp_path):
    assert run("init", "resnet_tiny", "-o", tmp_path / "G_AB.pt").exit_code == 0
    result = run("onnx", tmp_path / "G_AB.pt")
    assert result.exit_code == 0, result.output
    assert "detected  resnet_2blocks" in result.stdout
    assert "verified  fp32 vs PyTorch: PSNR" in result.stdout and "threshold 50 dB" in result.stdout
    assert (tmp_path / "G_AB.onnx").is_file()


def test_peer_checkpoint_fp16(checkpoints, tmp_path):
    out = tmp_path / "g16.onnx"
    result = run("onnx", checkpoints["legacy_net_G_A.pth"], "--fp16", "-o", out)
    assert result.exit_code == 0, result.output
    assert "pytorch-CycleGAN-and-pix2pix" in result.stdout and "running-statistics" in result.stdout
    assert "verified  fp16" in result.stdout and "threshold 40 dB" in result.stdout and out.is_file()


def test_no_verify_says_so(checkpoints, tmp_path):
    result = run("onnx", checkpoints["ours.pt"], "--no-verify", "--size", "64x96", "--batch", "1",
                 "-o", tmp_path / "g.onnx")
    assert result.exit_code == 0, result.output
    assert "static 64x96 size, batch 1" in result.stdout
    assert "verify    skipped (--no-verify)" in result.stdout and "parity" not in result.stdout


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
    result = run("onnx", setup(tmp_path), "-o", tmp_path / "out.onnx")
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # reported, not raised
    assert result.stderr.strip().count("\n") == 0 and expected in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.onnx").exists()


def test_failed_parity_exits_non_zero_and_leaves_no_file(checkpoints, tmp_path):
    result = run("onnx", checkpoints["ours.pt"], "--fp16", "--min-psnr", "500", "-o", tmp_path / "g.onnx")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: fp16 parity check failed: PSNR")
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_reported(checkpoints, tmp_path):
    result = run("onnx", checkpoints["ours.pt"], "--size", "big", "-o", tmp_path / "g.onnx")
    assert result.exit_code == 1 and "expected HEIGHTxWIDTH" in result.stderr
    result = run("onnx", checkpoints["ours.pt"], "--arch", "vgg16", "-o", tmp_path / "g.onnx")
    assert result.exit_code == 1 and "unknown architecture 'vgg16'" in result.stderr
    result = run("onnx", checkpoints["ours.pt"], "--fp16", "--int8", "-o", tmp_path / "g.onnx")
    assert result.exit_code == 1 and result.stderr == "error: choose one of --fp16 and --int8\n"
    assert list(tmp_path.iterdir()) == []
