"""``cg-export deploy``: the choice, the photograph split, the folder (atomic, hashed, opened by every tool), bad input.

Real tiny generators (ngf 4, one block) at 32x32 on a handful of real photographs; two timing iterations. No
timing is asserted: only which row the rule picks from given numbers, and what the folder holds.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cg_export.bench import LatencyStats, targets_from_files
from cg_export.deploy import CandidateRow, DeployError, choose, deploy, split_photos
from cg_export.deploy.choice import FAILED, UNAVAILABLE, accepting_min_psnr
from cg_export.deploy.report import decision_table
from cg_export.files import sha256_of
from cg_export.images import sample_photographs
from cg_export.models import create_generator, save_generator
from cg_export.models.init import init_weights

SIZE = (32, 32)
FAST = {"warmup": 0, "iterations": 2}


# ------------------------------------------------------------------------------------------------------ the choice


def row(name: str, precision: str, p50: float | None, psnr: float | None, floor: float = 30.0,
        status: str = "ok") -> CandidateRow:
    made = CandidateRow(name, "onnxruntime", "ONNX Runtime", precision, floor, status=status)
    if p50 is not None:
        made.latency = LatencyStats(p50, p50, p50, p50, p50, p50)
    if psnr is not None:
        made.psnr_per_photo = {"a.png": psnr + 5, "b.png": psnr}
    return made


def test_the_fastest_candidate_that_passes_is_chosen():
    rows = [row("torch-fp32", "fp32", 10.0, math.inf, 50), row("onnx-fp32", "fp32", 5.0, 80.0, 50),
            row("onnx-int8", "int8", 2.0, 33.0)]
    decision = choose(rows)
    assert decision.chosen is rows[2]
    assert decision.why.startswith("chose onnx-int8") and "5.00x the speed of PyTorch fp32" in decision.why


def test_when_the_fastest_fails_its_floor_the_next_fastest_passing_is_chosen():
    rows = [row("onnx-fp32", "fp32", 5.0, 80.0, 50), row("onnx-fp16", "fp16", 4.0, 45.0, 40),
            row("onnx-int8", "int8", 2.0, 29.9, 30)]
    decision = choose(rows)
    assert decision.chosen is rows[1]
    assert ("faster but below their floor: onnx-int8 was 2.00x the speed of onnx-fp16 but 29.9 dB < 30 dB (its int8 "
            "floor): rerun with --min-psnr 29.9 to accept it") in decision.why


def test_a_faster_candidate_below_its_floor_is_named_with_the_min_psnr_that_chooses_it():
    rows = [row("torch-fp32", "fp32", 44.0, math.inf, 50), row("onnx-fp32", "fp32", 20.0, 80.0, 50),
            row("onnx-int8", "int8", 10.0, 27.14)]
    decision = choose(rows)
    assert decision.chosen is rows[1]
    assert ("onnx-int8 was 4.40x the speed of PyTorch fp32 but 27.1 dB < 30 dB (its int8 floor): rerun with "
            "--min-psnr 27.1 to accept it") in decision.why
    # --min-psnr sets every floor: the value it names must choose exactly that candidate when rerun.
    rerun = [replace(r, floor_db=27.1) for r in rows]
    assert choose(rerun).chosen.name == "onnx-int8"
    table = decision_table(rows, decision.chosen.name)
    assert table[3][3] == "below floor" and table[3][-1] == "rerun with --min-psnr 27.1 to accept it"
    assert table[1][-1] == ""  # slower rows below no floor get no advice


def test_no_min_psnr_is_suggested_when_a_still_faster_candidate_would_take_it():
    rows = [row("onnx-fp32", "fp32", 20.0, 80.0, 50), row("onnx-fp16", "fp16", 10.0, 39.0, 40),
            row("trt-fp32", "fp32", 5.0, 45.0, 50)]
    # --min-psnr 39 would accept both; the faster trt-fp32 would be chosen, never onnx-fp16.
    assert accepting_min_psnr(rows, rows[1]) is None
    assert accepting_min_psnr(rows, rows[2]) == 45.0
    why = choose(rows).why
    assert "onnx-fp16 was 2.00x the speed of onnx-fp32 but 39.0 dB < 40 dB (its fp16 floor), " in why
    assert "(its fp32 floor): rerun with --min-psnr 45 to accept it" in why


def test_the_worst_photograph_decides_not_the_average():
    rows = [row("onnx-int8", "int8", 2.0, 29.0), row("onnx-fp32", "fp32", 5.0, 80.0, 50)]
    rows[0].psnr_per_photo = {"a.png": 45.0, "b.png": 44.0, "c.png": 29.0}
    assert choose(rows).chosen is rows[1]


def test_every_candidate_failing_gives_no_choice_and_says_why_for_each():
    rows = [row("onnx-int8", "int8", 2.0, 20.0), row("onnx-fp16", "fp16", None, None, status=FAILED),
            row("trt-fp16", "fp16", None, None, status=UNAVAILABLE)]
    rows[1].reason, rows[2].reason = "export failed: boom", "not available here (TensorRT not installed)"
    decision = choose(rows)
    assert decision.chosen is None
    assert decision.why == ("no candidate passed: onnx-int8: PSNR 20.0 dB < 30 dB: rerun with --min-psnr 20 to "
                            "accept it; onnx-fp16: failed (export failed: "
                            "boom); trt-fp16: not available (not available here (TensorRT not installed))")
    assert choose([]).chosen is None


def test_a_tie_in_latency_goes_to_the_higher_precision():
    rows = [row("onnx-int8", "int8", 10.0, 35.0), row("onnx-fp16", "fp16", 10.2, 50.0, 40),
            row("onnx-fp32", "fp32", 12.0, 90.0, 50)]
    decision = choose(rows)
    assert decision.chosen is rows[1] and "higher precision wins the tie" in decision.why
    assert choose(rows, tie_tolerance=0.0).chosen is rows[0]


def test_failed_rows_are_never_chosen_even_with_numbers():
    fast = row("onnx-int8", "int8", 1.0, 40.0)
    fast.fail("cannot be timed: out of memory")
    slow = row("onnx-fp32", "fp32", 9.0, 90.0, 50)
    assert choose([fast, slow]).chosen is slow


# ------------------------------------------------------------------------------------------------------ fixtures


def write_photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for name, image in sample_photographs(count):
        Image.fromarray(image).resize((48, 40)).save(folder / f"{name}.png")
    return folder


def tiny_generator(path: Path, seed: int, ngf: int = 4) -> Path:
    torch.manual_seed(seed)
    return save_generator(init_weights(create_generator("resnet", ngf=ngf, n_blocks=1)), path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deploy_inputs")
    return {"teacher": tiny_generator(root / "g.pt", 0), "student": tiny_generator(root / "s.pt", 1),
            "photos": write_photos(root / "photos", 6), "root": root}


@pytest.fixture(scope="module")
def deployed(inputs) -> dict:
    """One real deployment, with int8 calibration watched: which files did the calibrator read?"""
    from cg_export.export import quantize

    seen: list[set[Path]] = []
    real = quantize.calibration_batches

    def watched(folder, *args, **kwargs):
        seen.append({p.resolve() for p in quantize.find_calibration_images(folder)})
        return real(folder, *args, **kwargs)

    out = inputs["root"] / "deploy"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quantize, "calibration_batches", watched)
        result = deploy(inputs["teacher"], inputs["photos"], out, size=SIZE, student=inputs["student"],
                        candidates=["torch-fp32", "onnx-fp32", "onnx-int8"], threads=1, say=lambda *_: None,
                        **FAST)
    return {"result": result, "out": out, "calibrated_on": seen}


# ------------------------------------------------------------------------------------------------------ photographs


def test_held_out_photographs_are_never_calibrated_on(deployed):
    result, seen = deployed["result"], deployed["calibrated_on"]
    held_out = {path.resolve() for path, _ in result.split.verification}
    calibration = {path.resolve() for path in result.split.calibration}
    assert len(seen) == 2  # teacher and student int8
    assert all(files == calibration for files in seen)
    assert held_out and calibration and not held_out & calibration
    manifest = json.loads((deployed["out"] / "deploy.json").read_text())
    assert not set(manifest["photos"]["calibration"]) & set(manifest["photos"]["verification"])
    for candidate in manifest["candidates"]:
        if candidate["psnr_per_photo_db"]:
            assert set(candidate["psnr_per_photo_db"]) == set(manifest["photos"]["verification"])


def test_split_alternates_and_counts_what_it_needs(tmp_path):
    photos = write_photos(tmp_path / "p", 5)
    split = split_photos(photos, calibrate=True)
    assert [split.label(p) for p, _ in split.verification] == ["chelsea.png", "motorcycle_left.png"]  # 2nd, 4th
    assert len(split.calibration) == 3
    assert len(split_photos(photos, calibrate=False).verification) == 5
    few = write_photos(tmp_path / "few", 3)
    with pytest.raises(DeployError, match=r"3 readable photograph\(s\); deploy needs at least 4: 2 to calibrate"):
        split_photos(few, calibrate=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeployError, match="no photographs found"):
        split_photos(tmp_path / "empty", calibrate=True)


# ------------------------------------------------------------------------------------------------------ the folder


def test_folder_holds_the_chosen_artifact_its_hashes_and_every_row(deployed):
    out, result = deployed["out"], deployed["result"]
    manifest = json.loads((out / "deploy.json").read_text())
    chosen = result.decision.chosen
    assert manifest["artifact"] == chosen.artifact and (out / manifest["artifact"]).is_file()
    assert manifest["candidate"] == chosen.name and manifest["precision"] == chosen.precision
    assert manifest["size"] == {"height": 32, "width": 32} and set(manifest["latency_ms"]) >= {"p50", "p90", "p99"}
    names = [c["name"] for c in manifest["candidates"]]
    assert names == ["torch-fp32", "onnx-fp32", "onnx-int8", "student-torch-fp32", "student-onnx-fp32",
                     "student-onnx-int8"]
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"deploy.json"}
    assert set(manifest["files"]) == files
    assert all(sha256_of(out / name) == digest for name, digest in manifest["files"].items())
    assert {"report.md", "report.html", "before_after.png", "latency_vs_psnr.png", "calibration.txt"} <= files
    # Only the chosen artifact is kept without --keep-all; nothing of the work folder is left.
    assert not (out / "candidates").exists() and not (out / ".work").exists()
    report = (out / "report.md").read_text()
    assert "**chosen**" in report and "cg-export onnx" in report and "--int8 --calib calib/" in report
    assert "<table>" in (out / "report.html").read_text()
    student = {c["name"]: c for c in manifest["candidates"]}["student-torch-fp32"]
    assert student["source"] == "student" and student["psnr_db"] != "inf"  # judged against the teacher
    assert manifest["machine"]["cores"] and "cg-export" in manifest["machine"]["versions"]
    assert manifest["timing"] == "warm-up 0, 2 iterations, 1 thread(s) per runtime"
    assert torch.get_num_threads() != 1 or (os.cpu_count() or 1) == 1  # the run's thread count was restored


def test_the_tools_take_the_deployment_folder(deployed, tmp_path):
    from cg_export.backends import runner_for
    from cg_export.cli.stylize import app as stylize_app

    out, chosen = deployed["out"], deployed["result"].decision.chosen
    with runner_for(out) as runner:
        assert runner.info.precision == chosen.precision
        assert runner(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 3, 32, 32)
    photo = next(deployed["result"].split.folder.glob("*.png"))
    result = CliRunner().invoke(stylize_app, [str(out), str(photo), "-o", str(tmp_path / "styled.png"),
                                              "--no-progress"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "styled.png").size == Image.open(photo).size
    [target] = targets_from_files([out])
    assert target.label == str(out) and target.path == out / chosen.artifact
    from cg_export.cli.export import app as export_app

    info = CliRunner().invoke(export_app, ["info", str(out)])
    assert info.exit_code == 0, info.output
    assert f"its model is {chosen.artifact}" in info.stdout and "sha256" in info.stdout
    mistyped = CliRunner().invoke(export_app, ["info", str(out) + "-typo"])
    assert mistyped.exit_code == 1 and mistyped.stderr == f"error: {out}-typo: no such file or folder\n"


def test_a_failed_run_leaves_the_earlier_deployment_untouched(deployed, inputs, tmp_path, monkeypatch):
    import shutil

    from cg_export.deploy import report

    out = tmp_path / "deploy"
    shutil.copytree(deployed["out"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_deployment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deploy(inputs["teacher"], inputs["photos"], out, size=(64, 64), candidates=["torch-fp32"],
               say=lambda *_: None, **FAST)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["deploy"]  # no half-built folder left beside it
    monkeypatch.undo()
    replaced = deploy(inputs["teacher"], inputs["photos"], out, size=(64, 64), candidates=["torch-fp32"],
                      say=lambda *_: None, **FAST)
    assert json.loads((out / "deploy.json").read_text())["size"] == {"height": 64, "width": 64}
    assert not (out / "onnx-fp32.onnx").exists() and replaced.decision.chosen.name == "torch-fp32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy"]


def test_keep_all_keeps_every_candidate_and_jetson_gets_device_commands(inputs, tmp_path):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed: the TensorRT rows are built here instead")
    out = tmp_path / "jetson"
    result = deploy(inputs["teacher"], inputs["photos"], out, size=SIZE, target="jetson",
                    candidates=["onnx-fp16", "trt-fp16"], keep_all=True, say=lambda *_: None, **FAST)
    rows = {r.name: r for r in result.rows}
    assert set(rows) == {"onnx-fp32", "onnx-fp16", "trt-fp16"}  # trt-fp16 is built from onnx-fp32
    assert rows["trt-fp16"].status == UNAVAILABLE and "TensorRT not installed" in rows["trt-fp16"].reason
    assert result.finish_on_device[0] == "cg-export trt onnx-fp32.onnx --fp16 --size 32x32 -o trt-fp16.engine"
    # The file the device command converts travels with the folder, at its top, under the name the command uses.
    assert (out / "onnx-fp32.onnx").is_file() or result.decision.chosen.name == "onnx-fp32"
    manifest = json.loads((out / "deploy.json").read_text())
    assert manifest["finish_on_device"] == result.finish_on_device and manifest["target"] == "jetson"
    assert "Finish on the device" in (out / "report.md").read_text()
    for name in manifest["kept"]:
        artifact = next(c["artifact"] for c in manifest["candidates"] if c["name"] == name)
        assert (out / artifact).is_file()


# ------------------------------------------------------------------------------------------------------ bad input


def test_no_candidate_passing_writes_nothing(inputs, tmp_path):
    out = tmp_path / "deploy"
    with pytest.raises(DeployError, match=r"^no candidate passed: onnx-int8: PSNR .* < 99 dB: rerun with --min-psnr [0-9.]+ to accept it$"):
        deploy(inputs["teacher"], inputs["photos"], out, size=SIZE, min_psnr_db=99, candidates=["onnx-int8"],
               say=lambda *_: None, **FAST)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--photos", "{empty}"], "no photographs found"),
    (["--photos", "{few}"], "3 readable photograph(s); deploy needs at least 4"),
    (["--photos", "{photos}", "--size", "30x30"], "--size 30x30: resnet_1blocks"),
    (["--photos", "{photos}", "--target", "mars"], "--target 'mars': unknown; choose one of local, jetson"),
    (["--photos", "{photos}", "--candidate", "onnx-int4"], "--candidate onnx-int4: not a candidate"),
    (["--photos", "{photos}", "--compress", "4"], "--compress needs cg-compress"),
    (["--photos", "{photos}", "--threads", "0"], "--threads 0: must be 1 or more"),
    (["--photos", "{photos}", "--size", "32x32", "--size-range", "64x64:128x128"],
     "--size-range 64x64:128x128: must be positive and take --size 32x32"),
    (["--photos", "{photos}", "--size-range", "128x128"], "--size-range '128x128': expected MINHxMINW:MAXHxMAXW"),
])
def test_bad_input_is_one_line_and_writes_nothing(inputs, tmp_path, monkeypatch, args, message):
    from cg_export.cli.export import app

    if "--compress" in args:
        # No distiller registered under this group: what an installation without the training package sees.
        monkeypatch.setattr("cg_export.deploy.distil.DISTILLER_GROUP", "cg_export.tests.no_distillers")
    (tmp_path / "empty").mkdir()
    write_photos(tmp_path / "few", 3)
    paths = {"empty": tmp_path / "empty", "few": tmp_path / "few", "photos": inputs["photos"]}
    args = [a.format(**paths) for a in args]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["deploy", str(inputs["teacher"]), "-o", str(out), *args])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_a_folder_that_is_not_a_deployment_is_refused(inputs, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DeployError, match="not an earlier deployment"):
        deploy(inputs["teacher"], inputs["photos"], tmp_path / "mine", size=SIZE, say=lambda *_: None)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_json_prints_the_decision(deployed, inputs, tmp_path):
    from cg_export.cli.export import app

    result = CliRunner().invoke(app, ["deploy", str(inputs["teacher"]), "--photos", str(inputs["photos"]), "-o",
                                      str(tmp_path / "d"), "--size", "32x32", "--candidate", "torch-fp32",
                                      "--iterations", "2", "--warmup", "0", "--json", "-"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["candidate"] == "torch-fp32" and decision["artifact"] == "torch-fp32.pt"
    assert "photos" in result.stderr  # progress went to stderr


def test_a_manifest_can_only_name_a_file_inside_its_folder(tmp_path):
    from cg_export.backends import deployment_artifact
    from cg_export.errors import BackendError

    (tmp_path / "elsewhere.onnx").write_bytes(b"")
    folder = tmp_path / "deploy"
    folder.mkdir()
    assert deployment_artifact(folder) == folder  # no manifest: an ordinary folder, left to the caller
    for artifact in ("../elsewhere.onnx", str(tmp_path / "elsewhere.onnx"), "missing.onnx", None):
        (folder / "deploy.json").write_text(json.dumps({"artifact": artifact}))
        with pytest.raises(BackendError, match="is not a file in"):
            deployment_artifact(folder)
    (folder / "deploy.json").write_text("{broken")
    with pytest.raises(BackendError, match="not a readable deployment manifest"):
        deployment_artifact(folder)


# ------------------------------------------------------------------------------------------------------ --compress


def test_the_installed_distiller_is_cg_compress():
    """deploy finds cg-compress through its entry point, never by importing the training package itself."""
    from cg_export.deploy.distil import find_distiller
    from training.distiller import distil_for_deploy

    assert find_distiller() is distil_for_deploy


def test_compress_deploys_what_the_distiller_wrote_from_the_calibration_photos(inputs, tmp_path, monkeypatch):
    import shutil

    from cg_export.deploy import pipeline

    calls = []

    def distiller(teacher, photos, output, ratio, say):
        calls.append((Path(teacher), sorted(p.name for p in Path(photos).iterdir()), ratio))
        shutil.copy(inputs["student"], output)  # a real (tiny) student, as cg-compress would write
        return output

    monkeypatch.setattr(pipeline, "find_distiller", lambda: distiller)
    result = deploy(inputs["teacher"], inputs["photos"], tmp_path / "out", size=SIZE, compress=4,
                    candidates=["torch-fp32", "onnx-int8"], threads=1, say=lambda *_: None, **FAST)
    (teacher, calibration_files, ratio), = calls
    assert teacher == inputs["teacher"] and ratio == 4
    held_out = {result.split.label(path) for path, _ in result.split.verification}
    assert calibration_files and not held_out & set(calibration_files)
    assert {"student-torch-fp32", "student-onnx-int8"} <= {row.name for row in result.rows}
    with pytest.raises(DeployError, match="give R above 1"):
        deploy(inputs["teacher"], inputs["photos"], tmp_path / "out2", size=SIZE, compress=1)
