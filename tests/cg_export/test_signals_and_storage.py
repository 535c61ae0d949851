"""Signals at every stage of a command, and storage that cannot take an output: one line, an exit status that says
which, and never a half-written file.

Each stage is made interruptible deterministically: the function that runs it is wrapped so that it sends the
signal to its own process (in-process through typer's CliRunner, whose command runs in the main thread), or, for
what happens after a command returns, a real process.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from cg_export.cli.export import app as cg_export_app
from cg_export.cli.stylize import app as cg_stylize_app
from cg_export.images import fit_to_size, sample_photographs
from cg_export.models import save_generator
from tests.conftest import REPO, make_generator

ROOT = REPO


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("signal_inputs")
    photos = folder / "photos"
    photos.mkdir()
    for name, photo in sample_photographs(6):
        Image.fromarray(fit_to_size(photo, 40, 48)).save(photos / f"{name}.png")
    # A seed no other test uses: the trace stage must really trace, not find the graph in a cache.
    checkpoint = save_generator(make_generator("resnet", seed=4242, ngf=4, n_blocks=1), folder / "g.pt")
    return {"checkpoint": checkpoint, "photos": photos, "photo": next(photos.iterdir())}


def signalling(real, signal_number: int, after: bool = False, only=None):  # noqa: ANN001, ANN201
    """``real``, sending ``signal_number`` to this process just before (or just after) it runs (where ``only`` is
    given, only for the calls whose arguments it accepts)."""

    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if only is not None and not only(*args):
            return real(*args, **kwargs)
        if not after:
            os.kill(os.getpid(), signal_number)
        result = real(*args, **kwargs)
        if after:
            os.kill(os.getpid(), signal_number)
        return result

    return wrapper


def interrupted_line(result: Result, signal_number: int) -> str:
    assert result.exit_code == 128 + signal_number, (result.exit_code, result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"stopped by {signal.Signals(signal_number).name}"), lines[0]
    return lines[0]


# (stage, where its function lives, its name, signal after it returns)
EXPORT_STAGES = [
    ("trace", "cg_export.export.onnx", "_trace", False),
    ("fp16", "cg_export.export.precision", "convert_to_fp16", False),
    ("calibration", "cg_export.export.quantize", "quantize_int8", False),
    ("verification", "cg_export.export.onnx", "verify_against_torch", False),
    ("write", "onnx", "save", False),
    ("rename", "os", "replace", False),
]


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize(("stage", "module", "name", "after"), EXPORT_STAGES, ids=[s[0] for s in EXPORT_STAGES])
def test_a_signal_at_each_stage_of_export_keeps_the_earlier_file(inputs, tmp_path, monkeypatch, stage, module, name,
                                                                  after, signal_number):
    import importlib

    target = tmp_path / "g.onnx"
    target.write_bytes(b"an earlier export")
    where = importlib.import_module(module)
    monkeypatch.setattr(where, name, signalling(getattr(where, name), signal_number, after))
    extra = {"fp16": ["--fp16"], "calibration": ["--int8", "--calib", str(inputs["photos"])]}.get(stage, [])
    result = CliRunner().invoke(cg_export_app, ["onnx", str(inputs["checkpoint"]), "-o", str(target), "--threads",
                                                "1", *extra])
    monkeypatch.undo()
    line = interrupted_line(result, signal_number)
    assert f"{target} not written, the earlier one kept" in line and "no output was left half-written" in line
    assert target.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx"]  # no .part left


def test_a_signal_after_the_rename_says_the_new_file_was_written(inputs, tmp_path, monkeypatch):
    target = tmp_path / "g.onnx"
    target.write_bytes(b"an earlier export")
    monkeypatch.setattr(os, "replace", signalling(os.replace, signal.SIGINT, after=True))
    result = CliRunner().invoke(cg_export_app, ["onnx", str(inputs["checkpoint"]), "-o", str(target), "--threads",
                                                "1", "--no-verify"])
    monkeypatch.undo()
    line = interrupted_line(result, signal.SIGINT)
    assert f"wrote {target}" in line and "not written" not in line
    onnx.checker.check_model(str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx"]


DEPLOY_STAGES = [
    ("export", "cg_export.export.onnx", "_trace"),
    ("verification", "cg_export.deploy.pipeline", "_outputs"),
    ("timing", "cg_export.bench", "run_benchmark"),
    ("write", "cg_export.deploy.report", "write_deployment"),
    ("swap", "os", "replace"),
    ("between-renames", "os", "replace"),  # the earlier folder moved aside, the new one not yet in place
]


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize(("stage", "module", "name"), DEPLOY_STAGES, ids=[s[0] for s in DEPLOY_STAGES])
def test_a_signal_at_each_stage_of_deploy_keeps_the_earlier_folder(inputs, tmp_path, monkeypatch, stage, module, name,
                                                                   signal_number):
    import importlib

    out = tmp_path / "deploy"
    out.mkdir()
    (out / "deploy.json").write_text("{}")  # an earlier deployment (the folder check only looks for the manifest)
    # A fresh generator per run: the export stage must trace, not find the graph cached.
    checkpoint = save_generator(make_generator("resnet", seed=4243, ngf=4, n_blocks=1), tmp_path / "g.pt")
    where = importlib.import_module(module)
    only = None
    if stage == "swap":
        only = lambda source, target: Path(source).is_dir()  # noqa: E731  (the folders' renames, not a file's)
    elif stage == "between-renames":
        only = lambda source, target: Path(source) == out  # noqa: E731  (after the earlier one is moved aside)
    monkeypatch.setattr(where, name, signalling(getattr(where, name), signal_number, after=stage == "between-renames",
                                                only=only))
    result = CliRunner().invoke(cg_export_app, [
        "deploy", str(checkpoint), "--photos", str(inputs["photos"]), "-o", str(out), "--size", "32x32",
        "--candidate", "onnx-fp32", "--threads", "1", "--warmup", "0", "--iterations", "2"])
    monkeypatch.undo()
    line = interrupted_line(result, signal_number)
    assert f"{out} not written, the earlier one kept" in line
    assert sorted(p.name for p in out.iterdir()) == ["deploy.json"] and (out / "deploy.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy", "g.pt"]  # no build folder left beside it


# --- after the command returned: a real process ---------------------------------------------------------------

LATE_DRIVER = """
import atexit, os, signal, sys
from pathlib import Path
import typer
from cg_export.cli.common import new_app, reports_errors
from cg_export.cli.version import run_app

app = new_app("test")

@app.command()
@reports_errors
def write(path: Path, when: str) -> None:
    from cg_export.files import atomic_output
    with atomic_output(path) as tmp:
        tmp.write_text("new")
    typer.echo("written")
    if when == "exit":  # registered after the command's policy: runs among the exit hooks, before its check
        atexit.register(os.kill, os.getpid(), {signal})
    if when == "exit-late":  # registered first: runs after the policy's check, while Python tears down
        pass

if sys.argv[2] == "exit-late":
    atexit.register(os.kill, os.getpid(), {signal})
runs = app
if sys.argv[2] == "after":
    # The command returned; the signal comes while the framework finishes (outside reports_errors).
    def runs(**kwargs):
        try:
            app(**kwargs)
        finally:
            os.kill(os.getpid(), {signal})
run_app(runs, "late", sys.argv[1:])
"""


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("when", ["after", "exit"])
def test_a_signal_after_the_command_finished_is_one_line_and_its_status(tmp_path, when, signal_number):
    """Python resets its handlers to the default while it exits: a late Ctrl-C used to kill the process silently."""
    target = tmp_path / "out.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run([sys.executable, "-c", LATE_DRIVER.replace("{signal}", str(int(signal_number))),
                              str(target), when], env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == 128 + signal_number, (process.returncode, process.stderr)
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {signal.Signals(signal_number).name}"), lines
    assert "outputs were written" in lines[0]
    assert target.read_text() == "new" and process.stdout == "written\n"


def test_a_signal_while_python_tears_down_does_not_kill_it_by_the_signal(tmp_path):
    """After the last check nothing can report it any more: the command's own status stands, not death by signal."""
    target = tmp_path / "out.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run([sys.executable, "-c", LATE_DRIVER.replace("{signal}", str(int(signal.SIGINT))),
                              str(target), "exit-late"], env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, (process.returncode, process.stderr)
    assert "Traceback" not in process.stderr and target.read_text() == "new"


# --- storage that cannot take the output ------------------------------------------------------------------------

def failing_write(real, code: int):  # noqa: ANN001, ANN201
    """``real`` (a writer taking a path) that fails as a full (or read-only) disk does, after a partial write."""

    def wrapper(obj, path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        Path(path).write_bytes(b"half")
        raise OSError(code, os.strerror(code), str(path))

    return wrapper


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_a_full_disk_during_export_is_one_line_with_the_free_space(inputs, tmp_path, monkeypatch, code):
    target = tmp_path / "g.onnx"
    target.write_bytes(b"an earlier export")
    monkeypatch.setattr(onnx, "save", failing_write(onnx.save, code))
    result = CliRunner().invoke(cg_export_app, ["onnx", str(inputs["checkpoint"]), "-o", str(target), "--no-verify"])
    monkeypatch.undo()
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: {target}: {os.strerror(code)}") and " free on " in line, line
    assert target.read_bytes() == b"an earlier export" and sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx"]


def test_a_full_disk_during_stylize_is_one_line_with_the_free_space(inputs, tmp_path, monkeypatch):
    model = tmp_path / "g.onnx"
    assert CliRunner().invoke(cg_export_app, ["onnx", str(inputs["checkpoint"]), "-o", str(model),
                                              "--no-verify"]).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    target = out / "styled.png"
    target.write_bytes(b"an earlier result")
    monkeypatch.setattr(Image.Image, "save", failing_write(Image.Image.save, errno.ENOSPC))
    result = CliRunner().invoke(cg_stylize_app, [str(model), str(inputs["photo"]), "-o", str(target),
                                                 "--no-progress"])
    monkeypatch.undo()
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: {target}: No space left on device") and " free on " in line, line
    assert target.read_bytes() == b"an earlier result" and [p.name for p in out.iterdir()] == ["styled.png"]


def test_a_sigterm_to_a_real_deploy_exits_143(inputs, tmp_path):
    """The deploy command used to install its own SIGTERM handler raising KeyboardInterrupt: a kill exited 130."""
    driver = textwrap.dedent("""
        import os, signal, sys
        import cg_export.deploy.report as report
        def stop(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
        report.write_deployment = stop
        from cg_export.cli.export import main
        sys.argv = ["cg-export", *sys.argv[1:]]
        main()
    """)
    out = tmp_path / "deploy"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.run([sys.executable, "-c", driver, "deploy", str(inputs["checkpoint"]), "--photos",
                              str(inputs["photos"]), "-o", str(out), "--size", "32x32", "--candidate", "torch-fp32",
                              "--threads", "1", "--warmup", "0", "--iterations", "2"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 143, process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith(f"stopped by SIGTERM: {out} not written")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- a truncated video that declares no frame count ----------------------------------------------------------

def test_a_truncated_mkv_says_how_many_frames_its_duration_implied(inputs, tmp_path):
    """Matroska declares no frame count: a cut file was stylized to its first frames with exit 0 and no warning."""
    av = pytest.importorskip("av")
    import numpy as np

    clip = tmp_path / "clip.mkv"
    rng = np.random.default_rng(0)
    with av.open(str(clip), "w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for _ in range(12):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8),
                                                             format="rgb24")))
        out.mux(stream.encode())
    model = tmp_path / "g.onnx"
    assert CliRunner().invoke(cg_export_app, ["onnx", str(inputs["checkpoint"]), "-o", str(model),
                                              "--no-verify"]).exit_code == 0
    whole = CliRunner().invoke(cg_stylize_app, [str(model), str(clip), "-o", str(tmp_path / "whole.mkv"),
                                                "--no-progress"])
    assert whole.exit_code == 0 and "warning" not in whole.stderr, whole.stderr
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    target = tmp_path / "styled.mkv"
    result = CliRunner().invoke(cg_stylize_app, [str(model), str(cut), "-o", str(target), "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    with av.open(str(target)) as container:
        kept = sum(1 for _ in container.decode(video=0))
    assert f"decoded {kept} of the about 12 frames its duration (1.50 s at 8 frames/s) implies" in warning, warning
    assert 0 < kept < 12


# --- the training commands ------------------------------------------------------------------------------------

@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_cg_train_and_cg_compress_with_its_own_exit_status(inputs, tmp_path, monkeypatch,
                                                                          signal_number):
    """They caught KeyboardInterrupt (which SIGTERM raises too) and exited 130 for both."""
    import training.compress as compress_module
    import training.trainer as trainer_module
    from training.cli import app as train_app
    from training.compress_cli import app as compress_app

    def stopped(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        # Each run's folder exists before its first save: only the state file may say a save is intact.
        (tmp_path / "runs" / "run").mkdir(parents=True, exist_ok=True)
        (tmp_path / "student_compress").mkdir(exist_ok=True)
        os.kill(os.getpid(), signal_number)

    monkeypatch.setattr(trainer_module, "train", stopped)
    monkeypatch.setattr(compress_module, "compress", stopped)
    data = tmp_path / "data"
    for domain in ("trainA", "trainB"):
        (data / domain).mkdir(parents=True)
    trained = CliRunner().invoke(train_app, [str(data), "--name", "run", "--output", str(tmp_path / "runs")])
    distilled = CliRunner().invoke(compress_app, [str(inputs["checkpoint"]), str(inputs["photos"]), "-o",
                                                  str(tmp_path / "student.pt")])
    monkeypatch.undo()
    for result in (trained, distilled):
        assert result.exit_code == 128 + signal_number, (result.exit_code, result.stderr)
        assert "interrupted; nothing was saved yet" in result.stderr and "Traceback" not in result.stderr
