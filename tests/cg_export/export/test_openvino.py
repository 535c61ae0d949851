"""OpenVINO: the backends-table rows, IR export and round trip, parity, kernel report, tiles, uint8 I/O, and the
one-line message when the package is missing. Tiny generators (ngf 8, 2 blocks); skipped without openvino, except
the tests that need no runtime (the table, the metadata reader, the missing-package message)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cg_export.backends import backend_for, runner_for
from cg_export.backends.openvino import ExecutionReport, read_ir_metadata
from cg_export.backends.registry import model_file, read_artifact_metadata
from cg_export.errors import BackendError, CgExportError, MissingDependencyError, ParityError
from cg_export.images import fit_to_size, sample_photographs, to_model_input, to_uint8
from cg_export.parity import psnr_uint8

HAVE_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(not HAVE_OPENVINO, reason='needs openvino (pip install "cg-export[openvino]")')


def _export_ir(source, output=None, **options):
    from cg_export.export.openvino import OpenVinoExportOptions, export_openvino

    return export_openvino(source, output, OpenVinoExportOptions(**options))


@pytest.fixture(scope="module")
def ir(checkpoints, tmp_path_factory) -> Path:
    """An fp32 IR of the tiny generator, in a folder of its own, exported through the verified ONNX path."""
    if not HAVE_OPENVINO:
        pytest.skip("needs openvino")
    return _export_ir(checkpoints["ours.pt"], tmp_path_factory.mktemp("ir") / "g_ov").path


@pytest.fixture(scope="module")
def onnx_fp32(checkpoints, tmp_path_factory) -> Path:
    from cg_export.export.onnx import OnnxExportOptions, export_onnx

    return export_onnx(checkpoints["ours.pt"], tmp_path_factory.mktemp("onnx") / "g.onnx",
                       OnnxExportOptions(verify=False)).path


@pytest.fixture(scope="module")
def onnx_int8(checkpoints, tmp_path_factory) -> Path:
    """Our int8 QDQ file, calibrated on photographs other than the ones parity uses."""
    from cg_export.export.onnx import OnnxExportOptions, export_onnx

    folder = tmp_path_factory.mktemp("calib")
    for name, image in sample_photographs()[2:5]:
        Image.fromarray(image).save(folder / f"{name}.png")
    return export_onnx(checkpoints["ours.pt"], folder.parent / "g_int8.onnx",
                       OnnxExportOptions(int8=True, calib=folder, min_psnr_db=0)).path


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return dict(sample_photographs())["rocket"]


# ------------------------------------------------------------------------------------------ the table, no runtime


def test_xml_and_ir_folders_open_with_openvino_and_onnx_only_when_asked(tmp_path):
    (tmp_path / "g.xml").write_text("<net/>")
    assert backend_for(tmp_path / "g.xml").backend == "openvino"
    assert backend_for(tmp_path).backend == "openvino"
    assert model_file(tmp_path) == tmp_path / "g.xml"
    assert backend_for("g.onnx").backend == "onnxruntime"
    assert backend_for("g.onnx", backend="openvino").backend == "openvino"
    with pytest.raises(BackendError, match="opens .xml, .onnx files, not '.engine'"):
        backend_for("g.engine", backend="openvino")
    (tmp_path / "other.xml").write_text("<net/>")
    with pytest.raises(BackendError, match="exactly one .xml model; it holds 2"):
        backend_for(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="it holds no"):
        backend_for(tmp_path / "empty")


def test_metadata_reader_refuses_what_is_not_an_ir(tmp_path):
    (tmp_path / "bad.xml").write_text("<net><unclosed></net>")
    with pytest.raises(BackendError, match="not a readable OpenVINO IR"):
        read_ir_metadata(tmp_path / "bad.xml")
    (tmp_path / "svg.xml").write_text("<svg/>")
    with pytest.raises(BackendError, match="its root element is <svg>"):
        read_ir_metadata(tmp_path / "svg.xml")
    (tmp_path / "hostile.xml").write_text('<net><rt_info><cg_export><size_multiple value="99999999"/>'
                                          "</cg_export></rt_info></net>")
    with pytest.raises(BackendError, match="size_multiple metadata is 99999999"):
        read_ir_metadata(tmp_path / "hostile.xml")


def test_missing_openvino_is_one_line_naming_the_extra(tmp_path, monkeypatch, checkpoints):
    (tmp_path / "g.xml").write_text("<net/>")
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an interpreter without the package does
    with pytest.raises(MissingDependencyError, match=r'openvino is needed .* pip install "cg-export\[openvino\]"'):
        runner_for(tmp_path / "g.xml").activate()
    from cg_export.cli.export import app

    result = CliRunner().invoke(app, ["openvino", str(checkpoints["ours.pt"]), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        'error: openvino is needed to run and export OpenVINO models but is not installed: '
        'pip install "cg-export[openvino]"']


def test_kernel_report_says_when_an_int8_model_runs_float_kernels():
    floating = ExecutionReport(["CPU"], "f32", {"Convolution": {("brgconv_avx2_f32", "f32"): 21},
                                                "Deconvolution": {("jit_avx2_f32", "f32"): 2}})
    assert "none of its 23 conv layers runs an integer kernel" in floating.mismatch("int8")
    assert floating.mismatch("fp32") is None
    integer = ExecutionReport(["CPU"], "f32", {"Convolution": {("jit_avx2_I8", "u8"): 19, ("brgconv_avx2_f32", "f32"): 2}})
    assert integer.mismatch("int8") is None
    assert integer.integer_heavy_layers == 19 and integer.heavy_layers == 21
    assert "19 of 21 conv layers on integer kernels" in integer.summary()
    assert "runs its float layers in bf16" in ExecutionReport(["CPU"], "bf16").mismatch("fp32")


# ---------------------------------------------------------------------------------------------- with openvino


@needs_openvino
def test_ir_round_trip_keeps_metadata_and_matches_pytorch(ir, checkpoints, photo):
    from cg_export.backends.torch import TorchRunner
    from cg_export.models import load_generator

    assert ir.parent.name == "g_ov" and ir.with_suffix(".bin").is_file()
    assert sorted(p.name for p in ir.parent.iterdir()) == ["ours.bin", "ours.xml"]  # no temporary left behind
    recorded = read_artifact_metadata(ir.parent)  # from the .xml alone, no runtime
    assert recorded.precision == "fp32" and recorded.size_multiple == 4
    assert recorded.source_sha256 == load_generator(checkpoints["ours.pt"]).weights_sha256  # the weights' digest
    assert recorded.architecture["ngf"] == load_generator(checkpoints["ours.pt"]).config["ngf"]
    assert recorded.extra["openvino_version"]
    batch = to_model_input([fit_to_size(photo, 64, 96)])
    with runner_for(ir.parent, threads=1) as runner, TorchRunner(load_generator(checkpoints["ours.pt"]).model) as ref:
        assert runner.info.metadata == recorded and runner.info.backend == "openvino"
        assert runner.device == "cpu" and runner.precision == "fp32"
        assert runner.execution.inference_precision == "f32"  # never the bf16 the CPU plugin picks on AMX CPUs
        assert runner.execution.heavy_layers == 10 and runner.execution.integer_heavy_layers == 0
        np.testing.assert_allclose(runner(batch), ref(batch), atol=1e-4)


@needs_openvino
def test_unknown_device_and_precision_are_one_line_errors(ir):
    from cg_export.backends.openvino import OpenVinoRunner

    with pytest.raises(BackendError, match=r"OpenVINO device 'NPU7' is not available here \(available: .*CPU"):
        OpenVinoRunner(ir, device="npu7").activate()
    with pytest.raises(BackendError, match="inference precision 'f64': choose one of f32, bf16, f16"):
        OpenVinoRunner(ir, inference_precision="f64")


@needs_openvino
def test_fp16_weights_halve_the_file_and_pass_the_fp16_floor(onnx_fp32, ir, tmp_path):
    result = _export_ir(onnx_fp32, tmp_path / "g16.xml", fp16=True)
    assert result.precision == "fp16" and result.reference == "ONNX Runtime"
    assert result.parity.psnr_db >= 40
    assert result.weights_path.stat().st_size < 0.6 * ir.with_suffix(".bin").stat().st_size
    assert read_ir_metadata(result.path).extra["weight_compression"] == "fp16"


@needs_openvino
def test_qdq_file_runs_integer_kernels_and_is_verified_against_onnxruntime(onnx_int8, tmp_path):
    result = _export_ir(onnx_int8, tmp_path / "int8")
    assert result.precision == "int8" and result.reference == "ONNX Runtime"
    assert result.parity.psnr_db >= 30
    assert result.execution.integer_heavy_layers > 0 and result.notes == []
    recorded = read_ir_metadata(result.path)
    assert recorded.precision == "int8" and recorded.extra["converted_from"] == str(onnx_int8.resolve())
    assert recorded.source_sha256 == read_artifact_metadata(onnx_int8).source_sha256  # bench finds the reference


@needs_openvino
def test_an_ir_made_from_a_scratch_onnx_records_the_checkpoint_not_the_scratch_path(onnx_fp32, checkpoints, tmp_path):
    # deploy converts its own ONNX candidate inside the deployment being built (.NAME.*.part/.work/...), which is
    # renamed or removed afterwards: the IR must name only what lasts, the checkpoint the ONNX file records.
    scratch = tmp_path / ".deploy.x1y2.part" / ".work" / "onnx-fp32"
    scratch.mkdir(parents=True)
    onnx_path = scratch / "onnx-fp32.onnx"
    onnx_path.write_bytes(onnx_fp32.read_bytes())
    recorded = read_ir_metadata(_export_ir(onnx_path, tmp_path / "out" / "g.xml", verify=False).path)
    assert recorded.source_checkpoint == str(checkpoints["ours.pt"].resolve())
    assert recorded.source_sha256 == read_artifact_metadata(onnx_fp32).source_sha256
    assert "converted_from" not in recorded.extra and "converted_from_sha256" not in recorded.extra
    assert not any(".part" in value for value in recorded.to_props().values())
    # A lasting ONNX file is still recorded as what the IR was converted from.
    lasting = read_ir_metadata(_export_ir(onnx_fp32, tmp_path / "kept" / "g.xml", verify=False).path)
    assert lasting.extra["converted_from"] == str(onnx_fp32.resolve())


@needs_openvino
def test_onnx_files_run_through_openvino_like_onnxruntime(onnx_fp32, photo):
    batch = to_model_input([fit_to_size(photo, 64, 64)] * 2)
    with runner_for(onnx_fp32, backend="openvino") as ov, runner_for(onnx_fp32) as ort:
        assert ov.name == "openvino" and ov.info.metadata == ort.info.metadata  # metadata_props via rt_info
        np.testing.assert_allclose(ov(batch), ort(batch), atol=1e-4)


@needs_openvino
def test_failed_verification_writes_nothing_and_keeps_the_old_ir(checkpoints, onnx_fp32, tmp_path):
    target = tmp_path / "g.xml"
    target.write_text("old")
    with pytest.raises(ParityError, match="fp32 parity check failed"):
        _export_ir(onnx_fp32, target, min_psnr_db=500)
    assert target.read_text() == "old" and not target.with_suffix(".bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.xml"]  # no staging folder left behind
    checkpoint_named_bin = tmp_path / "weights" / "g.bin"  # g.xml's weights would land on it
    checkpoint_named_bin.parent.mkdir()
    checkpoint_named_bin.write_bytes(checkpoints["ours.pt"].read_bytes())
    with pytest.raises(CgExportError, match="overwrite the source"):
        _export_ir(checkpoint_named_bin, checkpoint_named_bin.with_suffix(".xml"), verify=False)
    assert checkpoint_named_bin.read_bytes() == checkpoints["ours.pt"].read_bytes()
    with pytest.raises(CgExportError, match="is a .xml file"):
        _export_ir(checkpoints["ours.pt"], tmp_path / "g.bin")


@needs_openvino
def test_tiles_with_whole_image_statistics_match_onnxruntime(ir, onnx_fp32, photo):
    from cg_export.tiling import stylize_array

    image = fit_to_size(photo, 256, 256)
    batch = to_model_input([image])
    with runner_for(ir) as ov, runner_for(onnx_fp32) as ort:
        np.testing.assert_allclose(ov.norm_stats(batch), ort.norm_stats(batch), rtol=1e-4, atol=1e-5)
        stats = ort.norm_stats(batch)
        tile = batch[:, :, :128, :96]
        np.testing.assert_allclose(ov.infer_with_norm_stats(tile, stats), ort.infer_with_norm_stats(tile, stats),
                                   atol=1e-4)
        whole = stylize_array(ov, image, 4)
        tiled = stylize_array(ov, image, 4, tile=128, overlap=16, stats_size=256)
        assert psnr_uint8(stylize_array(ort, image, 4, tile=128, overlap=16, stats_size=256), tiled) >= 50
    assert psnr_uint8(whole, tiled) >= 35


@needs_openvino
def test_uint8_io_ir_takes_camera_bytes(checkpoints, tmp_path, photo):
    from cg_export.backends.torch import TorchRunner
    from cg_export.models import load_generator

    result = _export_ir(checkpoints["ours.pt"], tmp_path / "u8", uint8_io=True)
    image = fit_to_size(photo, 64, 96)
    with runner_for(result.path.parent) as runner, TorchRunner(load_generator(checkpoints["ours.pt"]).model) as ref:
        assert runner.info.uint8_io and runner.info.layout == "NHWC uint8 RGB"
        expected = to_uint8(ref(to_model_input([image])))
        got = runner.infer_bytes(image[None])
        assert got.dtype == np.uint8 and got.shape == (1, 64, 96, 3)
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        # The float interface every tool uses works on the byte graph too, tiles included.
        assert np.abs(to_uint8(runner(to_model_input([image]))).astype(int) - expected.astype(int)).max() <= 1
        assert runner.norm_stats(to_model_input([image])).shape[:2] == (1, 2)
    (tmp_path / "x.onnx").write_bytes(b"")
    with pytest.raises(CgExportError, match="keeps the I/O it was exported with"):
        _export_ir(tmp_path / "x.onnx", uint8_io=True)


@needs_openvino
def test_cli_exports_benches_and_stylizes_an_ir_folder(checkpoints, onnx_int8, onnx_fp32, tmp_path, photo):
    from cg_export.cli.bench import app as bench_app
    from cg_export.cli.export import app as export_app
    from cg_export.cli.stylize import app as stylize_app

    runner = CliRunner()
    out = tmp_path / "g_ov"
    result = runner.invoke(export_app, ["openvino", str(onnx_int8), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "verified  int8 vs ONNX Runtime" in result.output
    assert "conv layers on integer kernels" in result.output and "wrote     " in result.output
    bench = runner.invoke(bench_app, [str(onnx_fp32), "--backend", "openvino", "--size", "64x64",
                                      "--iterations", "2", "--warmup", "1", "--wide"])
    assert bench.exit_code == 0, bench.output
    row = next(line for line in bench.output.splitlines() if line.split()[:1] == [str(onnx_fp32)])
    assert row.split()[1:3] == ["openvino", "fp32"]
    refused = runner.invoke(bench_app, [str(checkpoints["ours.pt"]), "--backend", "openvino"])
    assert refused.exit_code == 1 and "the openvino backend opens .xml, .onnx files, not '.pt'" in refused.output
    Image.fromarray(fit_to_size(photo, 96, 128)).save(tmp_path / "p.png")
    styled = runner.invoke(stylize_app, [str(out), str(tmp_path / "p.png"), "-o", str(tmp_path / "s.png"),
                                         "--no-progress"])
    assert styled.exit_code == 0, styled.output
    assert Image.open(tmp_path / "s.png").size == (128, 96)
