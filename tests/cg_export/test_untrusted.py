"""Hostile, broken and unlucky files: each is refused in one line, before it can commit memory or pass as correct.

Every file here is built in a fixture, a few hundred bytes to a few kilobytes each.
"""

from __future__ import annotations

import math
import resource
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cg_export.errors import ArchitectureError, CheckpointError, ParityError
from cg_export.export.onnx import OnnxExportOptions, export_onnx
from cg_export.models import create_generator, load_generator, save_generator
from cg_export.models.safety import MAX_PARAMETERS
from cg_export.parity import ParityReport, check_parity, compare_outputs
from tests.conftest import REPO, TINY, make_generator


def _cli(*args: str):
    from cg_export.cli.export import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- Garbage verified as correct: NaN and Inf ---------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_checkpoint_with_a_non_finite_weight_is_refused_at_load(tmp_path, value):
    state = make_generator("resnet", **TINY).state_dict()
    state["model.1.weight"][0, 0, 0, 0] = value
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(CheckpointError, match=r"weight model\.1\.weight holds 1 NaN or infinite"):
        load_generator(tmp_path / "g.pth")


def test_non_finite_weights_in_our_own_format_are_refused_too(tmp_path):
    model = make_generator("resnet_tiny")
    with torch.no_grad():
        next(model.parameters()).fill_(math.nan)
    save_generator(model, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_generator(tmp_path / "g.pt")


def test_non_finite_outputs_never_pass_parity():
    ref = np.zeros((1, 3, 8, 8), np.float32)
    out = ref.copy()
    out[0, 0, 0, 0] = np.nan
    case = compare_outputs("x", ref, out)
    assert math.isnan(case.psnr_db) and math.isnan(case.max_abs_err) and case.non_finite == (1, 0)
    # Both sides NaN used to round to identical black images: "inf dB (identical)".
    both = compare_outputs("y", out, out)
    for report in (ParityReport([case]), ParityReport([both])):
        for precision in ("fp32", "fp16", "int8"):
            with pytest.raises(ParityError, match="not finite numbers"):
                check_parity(report, precision, min_psnr_db=-1e9, max_abs_err=math.inf)


def test_export_of_a_generator_that_outputs_nan_fails_and_writes_nothing(checkpoints, tmp_path):
    generator = load_generator(checkpoints["latest_net_G_A.pth"])
    with torch.no_grad():
        generator.model.state_dict()["model.1.weight"].fill_(math.nan)  # as if the load check were bypassed
    with pytest.raises(ParityError, match="not finite numbers"):
        export_onnx(generator, tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


# --- Tiny files that exhaust memory ----------------------------------------------------------------------------


def test_zero_stride_tensor_claiming_a_huge_shape_is_refused_without_allocating(tmp_path):
    state = make_generator("resnet", **TINY).state_dict()
    # 4 bytes of data posing as a (100000, 3, 7, 7) weight: 5.9 GB once anything copies it.
    state["model.1.weight"] = torch.zeros(1).expand(100_000, 3, 7, 7)
    torch.save(state, tmp_path / "g.pth")
    assert (tmp_path / "g.pth").stat().st_size < 100_000
    before = _peak_rss_mb()
    with pytest.raises(CheckpointError, match=r"refused: tensor model\.1\.weight claims shape \(100000, 3, 7, 7\)"):
        load_generator(tmp_path / "g.pth")
    assert _peak_rss_mb() - before < 500


def test_zip_bomb_is_refused_from_its_directory_before_loading(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(make_generator("resnet", **TINY).state_dict(), good)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bomb, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
        # 200 MB of zeros deflate to about 200 kB.
        target.writestr("good/data/999", b"\0" * 200_000_000, compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(CheckpointError, match="refused: its archive entries would inflate to 200 MB"):
        load_generator(bomb)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_checkpoints_give_the_readme_message(tmp_path, cut):
    good = tmp_path / "good.pth"
    torch.save(make_generator("resnet", **TINY).state_dict(), good)
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="truncated or corrupt checkpoint"):
        load_generator(tmp_path / "cut.pth")


def test_shapes_are_checked_against_the_architecture_before_it_is_built(tmp_path):
    # Consistent but huge first conv (real storage, 2.4 MB): inferring ngf 4096 from it would build a network of
    # ~5e9 parameters; the mismatch with the other layers is found on the meta device instead.
    state = make_generator("resnet", **TINY).state_dict()
    state["model.1.weight"] = torch.zeros(50_000, 3, 2, 2)
    state["model.1.bias"] = torch.zeros(50_000)
    torch.save(state, tmp_path / "g.pth")
    before = _peak_rss_mb()
    with pytest.raises(ArchitectureError, match="parameters"):
        load_generator(tmp_path / "g.pth")
    assert _peak_rss_mb() - before < 500


def test_shape_mismatch_is_reported_from_the_planned_network(tmp_path):
    state = make_generator("resnet", **TINY).state_dict()
    state["model.4.weight"] = torch.zeros(9, 4, 3, 3)  # ngf 4: the second conv must be (8, 4, 3, 3)
    torch.save(state, tmp_path / "g.pth")
    with pytest.raises(ArchitectureError, match=r"shape mismatch model\.4\.weight \(9, 4, 3, 3\) vs \(8, 4, 3, 3\)"):
        load_generator(tmp_path / "g.pth")


def test_huge_ngf_in_a_config_is_refused_with_the_limit_and_estimate(tmp_path):
    model = make_generator("resnet_tiny")
    payload = torch.load(save_generator(model, tmp_path / "g.pt"), weights_only=True)
    payload["config"]["ngf"] = 65536
    torch.save(payload, tmp_path / "huge.pt")
    before = _peak_rss_mb()
    with pytest.raises(ArchitectureError, match=rf"ngf 65536.* M parameters .*the limit is {MAX_PARAMETERS // 10**6:,} M"):
        load_generator(tmp_path / "huge.pt")
    assert _peak_rss_mb() - before < 500


def test_create_generator_refuses_absurd_sizes_but_builds_real_ones():
    with pytest.raises(ArchitectureError, match="would have"):
        create_generator("resnet_9blocks", ngf=65536)
    assert create_generator("unet_256") is not None  # the largest default architecture is within the limit


def test_init_with_absurd_ngf_is_one_line(tmp_path):
    result = _cli("init", "resnet_9blocks", "-o", tmp_path / "g.pt", "--ngf", "65536")
    assert result.exit_code == 1
    assert result.output.startswith("error: resnet_9blocks (ngf 65536) would have") and "limit" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "g.pt").exists()


# --- ONNX external data: only from inside the model's own folder -------------------------------------------------


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory) -> Path:
    """A tiny self-contained fp32 export (verification off: the export itself is covered elsewhere)."""
    path = tmp_path_factory.mktemp("exported") / "g.onnx"
    return export_onnx(checkpoints["latest_net_G_A.pth"], path, OnnxExportOptions(verify=False)).path


def _with_external_data(exported: Path, folder: Path) -> Path:
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(exported))
    onnx.save_model(model, str(folder / "g.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="g.onnx.data")  # small constants stay inline, as onnx does by default
    return folder / "g.onnx"


def _relocated(legit: Path, location: str, name: str = "hostile.onnx") -> Path:
    """``legit``'s graph with every external location replaced by ``location`` (the bytes are left alone)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    model = onnx.load(str(legit), load_external_data=False)
    for tensor in _get_all_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path = legit.parent / name
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def external_models(exported, tmp_path) -> dict[str, Path]:
    legit = _with_external_data(exported, tmp_path / "model")
    outside = tmp_path / "outside.bin"
    outside.write_bytes((legit.parent / "g.onnx.data").read_bytes())
    (legit.parent / "link.bin").symlink_to(outside)
    return {
        "legit": legit,
        "dotdot": _relocated(legit, "../outside.bin", "dotdot.onnx"),
        "absolute": _relocated(legit, str(outside), "absolute.onnx"),
        "symlink": _relocated(legit, "link.bin", "symlink.onnx"),
        "missing": _relocated(legit, "nowhere.bin", "missing.onnx"),
    }


def _open_every_way(path: Path) -> None:
    """What each command does with an ONNX file: read its metadata (info, bench), run it, check it."""
    from cg_export.backends.registry import read_artifact_metadata, runner_for
    from cg_export.tensorrt.check import check_file

    read_artifact_metadata(path)
    check_file(path, "trt=10.3")
    with runner_for(path, providers=["CPUExecutionProvider"]) as runner:
        runner(np.zeros((1, 3, 16, 16), np.float32))


@pytest.mark.parametrize("kind, message", [
    ("dotdot", "outside the model's folder"),
    ("absolute", "an absolute path"),
    ("symlink", "outside the model's folder"),
    ("missing", "does not exist beside the model"),
])
def test_external_data_outside_the_model_folder_is_refused_everywhere(external_models, kind, message):
    from cg_export.backends.registry import read_artifact_metadata, runner_for
    from cg_export.errors import CgExportError
    from cg_export.tensorrt.check import check_file

    path = external_models[kind]
    for step in (lambda: read_artifact_metadata(path), lambda: check_file(path, "trt=10.3"),
                 lambda: runner_for(path).activate()):
        with pytest.raises(CgExportError, match=f"refused: tensor .* keeps its data in .*{message}"):
            step()


def test_external_data_refusal_is_one_line_in_the_cli(external_models):
    result = _cli("check", external_models["dotdot"])
    assert result.exit_code != 0 and result.output.count("\n") == 1
    assert result.output.startswith("error: ") and "outside the model's folder" in result.output


def test_legitimate_external_data_works_from_any_working_directory(external_models, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _open_every_way(external_models["legit"])
    assert _cli("check", external_models["legit"], "--target", "trt=10.3").exit_code == 0


# --- Silently wrong options: refused before anything is loaded -----------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "--batch 0: a fixed batch is 1 to"),
    (["--batch", "-3"], "--batch -3: a fixed batch is 1 to"),
    (["--opset", "99"], "--opset 99: choose 17"),
    (["--opset", "16"], "--opset 16: choose 17"),
    (["--int8"], "--int8 needs --calib DIR"),
    (["--int8", "--calib", "no-such-folder"], "--calib no-such-folder: no such folder"),
    (["--verify-photos", "no-such-folder"], "--verify-photos no-such-folder: no such folder"),
    (["--threads", "0"], "--threads 0: expected 1 or more"),
])
def test_bad_export_options_are_refused_before_the_checkpoint_is_read(tmp_path, args, message):
    # The checkpoint does not even exist: an option error must come first.
    result = _cli("onnx", tmp_path / "missing.pt", *args)
    assert result.exit_code == 1 and result.output == f"error: {result.output[7:]}"
    assert message in result.output and "no such file" not in result.output


def test_opsets_in_range_are_written_as_asked(checkpoints, tmp_path):
    import onnx

    result = export_onnx(checkpoints["latest_net_G_A.pth"], tmp_path / "g.onnx",
                         OnnxExportOptions(opset=19, verify=False))
    written = [o.version for o in onnx.load(str(result.path)).opset_import if o.domain in ("", "ai.onnx")]
    assert result.opset == 19 and written == [19]


def test_corrupt_training_state_is_one_line_on_resume(tmp_path):
    from training.cli import app
    from training.trainer import STATE_FILE, STATE_FORMAT, read_state

    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    torch.save({"format": STATE_FORMAT, "version": 1, "options": {}}, run / STATE_FILE)
    result = CliRunner().invoke(app, [str(tmp_path), "--name", "r", "-o", str(tmp_path / "runs"), "--resume"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the training state lacks dataset" in result.output and result.output.count("\n") == 1
    state = {"format": STATE_FORMAT, "version": 1, "options": {}, "dataset": {}, "epoch": 1, "step_in_epoch": 0,
             "global_step": 1, "elapsed_seconds": 1.0, "last_losses": {}, "loss_sums": {}, "log_bytes": 0,
             "rng": {}, "model": {"G_AB": {"w": torch.tensor([math.nan])}, "G_BA": {}, "D_A": {}, "D_B": {}}}
    torch.save(state, run / STATE_FILE)
    from training.errors import TrainingError

    with pytest.raises(TrainingError, match=r"G_AB\.w holds NaN"):
        read_state(run / STATE_FILE)
    state["epoch"] = "one"
    torch.save(state, run / STATE_FILE)
    with pytest.raises(TrainingError, match="has a malformed epoch"):
        read_state(run / STATE_FILE)


# --- Misleading output ------------------------------------------------------------------------------------------


def test_init_refuses_to_replace_a_file_unless_forced(tmp_path):
    target = tmp_path / "g.pt"
    target.write_bytes(b"precious")
    result = _cli("init", "resnet", "--ngf", "4", "--n-blocks", "1", "-o", target)
    assert result.exit_code == 1 and "already exists; pass --force" in result.output
    assert target.read_bytes() == b"precious"
    assert _cli("init", "resnet", "--ngf", "4", "--n-blocks", "1", "-o", target, "--force").exit_code == 0
    assert load_generator(target).config["ngf"] == 4


def test_same_weights_saved_twice_have_the_same_weights_digest(tmp_path):
    model = make_generator("resnet", **TINY)
    torch.save(model.state_dict(), tmp_path / "a.pth")
    save_generator(model, tmp_path / "b.pt", meta={"other": "meta"})
    a, b = load_generator(tmp_path / "a.pth"), load_generator(tmp_path / "b.pt")
    assert a.sha256 != b.sha256  # the files differ
    assert a.weights_sha256 == b.weights_sha256 and len(a.weights_sha256) == 64
    assert load_generator(tmp_path / "a.pth").weights_sha256 == a.weights_sha256
    assert make_generator("resnet", seed=1, **TINY) is not None
    torch.save(make_generator("resnet", seed=1, **TINY).state_dict(), tmp_path / "c.pth")
    assert load_generator(tmp_path / "c.pth").weights_sha256 != a.weights_sha256


def test_export_records_the_weights_digest_and_info_reports_it(checkpoints, exported):
    from cg_export.backends.registry import read_artifact_metadata

    generator = load_generator(checkpoints["latest_net_G_A.pth"])
    assert read_artifact_metadata(exported).source_sha256 == generator.weights_sha256
    result = _cli("info", exported)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.splitlines())
    assert lines["precision"] == "fp32" and "float32 NCHW in [-1, 1], 3 -> 3 channels" in lines["I/O"]
    assert lines["shapes"] == "input float32[batch, 3, height, width] -> output float32[batch, 3, height, width]"
    assert generator.weights_sha256 in lines["source"] and lines["graph"].startswith("opset 17")
    ckpt = _cli("info", checkpoints["latest_net_G_A.pth"])
    assert ckpt.exit_code == 0 and f"sha256 {generator.weights_sha256}" in ckpt.output
    assert "pytorch-CycleGAN-and-pix2pix" in ckpt.output and "resnet_2blocks" in ckpt.output


@pytest.mark.parametrize("key, value, message", [
    ("size_multiple", "100000", "size_multiple metadata is 100000, outside"),
    ("size_multiple", "abc", "size_multiple metadata is 'abc', not a whole number"),
    ("size_multiple", "0", "size_multiple metadata is 0, outside"),
    ("architecture", "{not json", "architecture metadata is not valid JSON"),
    ("architecture", '{"ngf": 1000000}', "has ngf 1000000, outside"),
    ("precision", "fp64", "precision metadata is 'fp64'"),
])
def test_bad_metadata_is_one_line_in_info_and_every_tool(tmp_path, exported, key, value, message):
    import onnx

    from cg_export.backends.registry import runner_for
    from cg_export.errors import BackendError

    model = onnx.load(str(exported))
    for prop in model.metadata_props:
        if prop.key == f"cg_export.{key}":
            prop.value = value
    onnx.save(model, str(tmp_path / "bad.onnx"))
    result = _cli("info", tmp_path / "bad.onnx")
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1
    with pytest.raises(BackendError, match=message):
        runner_for(tmp_path / "bad.onnx").activate()


def test_info_on_missing_and_junk_files_is_one_line(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for path, message in ((tmp_path / "junk.pt", "not a PyTorch checkpoint"),
                          (tmp_path / "none.onnx", "no such file"),
                          (tmp_path / "model.txt", "unknown model type")):
        path.touch() if path.suffix == ".txt" else None
        result = _cli("info", path)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_uint8_io_export_says_so(checkpoints, tmp_path):
    result = _cli("onnx", checkpoints["latest_net_G_A.pth"], "-o", tmp_path / "u.onnx", "--uint8-io", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "exported  fp32, uint8 I/O, opset 17" in result.output
    assert "precision fp32, uint8 I/O" in " ".join(_cli("info", tmp_path / "u.onnx").output.split())


def test_verify_photos_verifies_on_the_users_photographs(checkpoints, tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(photos / f"mine{i}.png")
    (photos / "broken.jpg").write_bytes(b"not an image")
    result = export_onnx(checkpoints["latest_net_G_A.pth"], tmp_path / "g.onnx",
                         OnnxExportOptions(verify_photos=photos))
    labels = [case.label for case in result.parity.cases]
    assert len(labels) == 4 and labels[2].startswith("mine0.png+mine1.png @ ") and labels[3].startswith("mine2.png+mine0.png")


# --- Conventions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module, name", [
    ("cg_export.cli.export", "cg-export"), ("cg_export.cli.bench", "cg-bench"),
    ("cg_export.cli.stylize", "cg-stylize"), ("training.cli", "cg-train"), ("cg_demo.cli", "cg-demo"),
])
def test_every_command_has_version(module, name, capsys):
    import importlib

    from cg_export import __version__
    from cg_export.cli.version import run_app

    run_app(importlib.import_module(module).app, name, ["--version"])
    assert capsys.readouterr().out == f"{name} {__version__}\n"


def test_python_dash_m_cg_export_is_cg_export():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cg_export", "--version"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("cg-export ")
    listed = subprocess.run([sys.executable, "-m", "cg_export", "list"], capture_output=True, text=True, timeout=120)
    rows = dict(line.split(None, 1) for line in listed.stdout.splitlines() if len(line.split(None, 1)) == 2)
    assert "resnet_9blocks" in rows and "M parameters" in rows["resnet_9blocks"] and "ngf 64" in rows["resnet_9blocks"]
    assert "onnx" in rows and ".onnx" in rows["onnx"] and "ONNX Runtime" in rows["onnx"]


def test_readme_library_snippet_runs_as_written(checkpoints, tmp_path, monkeypatch):
    import re
    import shutil

    from PIL import Image

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Using it as a library", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shutil.copy(checkpoints["latest_net_G_A.pth"], tmp_path / "latest_net_G_A.pth")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 280, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})
    with Image.open(tmp_path / "photo_stylized.png") as out:
        assert out.size == (256, 256) and out.mode == "RGB"


def test_trt_threads_are_checked_before_anything_is_loaded(tmp_path):
    result = _cli("trt", tmp_path / "missing.onnx", "--threads", "0")
    assert result.exit_code == 1 and result.output == "error: --threads 0: expected 1 or more\n"
