"""INT8: QDQ structure TensorRT accepts, calibration from photographs only, the verification gate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from cg_export.errors import CgExportError, ParityError
from cg_export.export.defaults import CALIBRATION_METHODS
from cg_export.export.onnx import OnnxExportOptions, export_onnx, to_onnx_graph
from cg_export.export.quantize import (
    DEFAULT_RECIPE,
    Int8Recipe,
    calibration_batches,
    image_facing_convs,
    int8_next_step,
    quantize_int8,
)
from cg_export.images import sample_photographs
from cg_export.models import load_generator


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Calibration photographs in a folder, with a sub-folder and one broken file, as users have them."""
    folder = tmp_path_factory.mktemp("calib")
    (folder / "nested").mkdir()
    for index, (name, image) in enumerate(sample_photographs()[2:5]):
        target = folder / ("nested" if index == 0 else ".") / f"{name}.jpg"
        Image.fromarray(image).save(target, quality=92)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "notes.txt").write_text("not an image, ignored by extension")
    return folder


@pytest.fixture(scope="module")
def quantized(checkpoints, photo_folder) -> onnx.ModelProto:
    graph = to_onnx_graph(load_generator(checkpoints["latest_net_G_A.pth"]).model)
    return quantize_int8(graph, list(calibration_batches(photo_folder, size=64)))


def test_qdq_is_symmetric_int8_per_channel(quantized):
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in quantized.graph.initializer}
    quant_nodes = [n for n in quantized.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert quant_nodes
    for node in quant_nodes:
        zero_point = inits[node.input[2]]
        assert not zero_point.any(), node.name
        # int8 everywhere, except the int32 biases (input scale x weight scale) ORT's integer kernels take.
        is_bias = node.op_type == "DequantizeLinear" and inits.get(node.input[0], zero_point).dtype == np.int32
        assert zero_point.dtype == (np.int32 if is_bias else np.int8), node.name
    per_channel = [n for n in quant_nodes if inits[n.input[1]].size > 1]
    assert per_channel, "weights must be quantized per output channel"


def test_image_facing_convs_and_norms_stay_float(quantized):
    producers = {out: n for n in quantized.graph.node for out in n.output}
    convs = [n for n in quantized.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    first, last = convs[0], convs[-1]
    # The first and last convolutions read a float tensor and a float weight (no DequantizeLinear before them).
    for node in (first, last):
        assert node.input[1] in {i.name for i in quantized.graph.initializer}
        assert producers.get(node.input[0]) is None or producers[node.input[0]].op_type != "DequantizeLinear"
    # Every other Conv is quantized (input and weight come out of DequantizeLinear); ConvTranspose stays float.
    for node in convs[1:-1]:
        quantized_input = producers[node.input[0]].op_type == "DequantizeLinear"
        assert quantized_input == (node.op_type == "Conv"), node.name
        assert (producers.get(node.input[1]) is not None) == (node.op_type == "Conv"), node.name
    assert quantized.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_image_facing_convs_are_first_and_last(checkpoints):
    graph = to_onnx_graph(load_generator(checkpoints["ours.pt"]).model)
    convs = [n.name for n in graph.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert image_facing_convs(graph) == [convs[0], convs[-1]]


def test_calibration_reads_nested_folders_and_skips_bad_files(photo_folder):
    batches = list(calibration_batches(photo_folder, size=64))
    assert len(batches) == 3
    assert all(b.shape == (1, 3, 64, 64) and b.dtype == np.float32 for b in batches)


@pytest.mark.parametrize("setup, message", [
    (lambda d: d / "absent", "no such folder"),
    (lambda d: d, "no images found"),
])
def test_calibration_folder_errors(tmp_path, setup, message):
    (tmp_path / "readme.md").write_text("no pictures here")
    with pytest.raises(CgExportError, match=message):
        list(calibration_batches(setup(tmp_path)))


def test_all_unreadable_calibration_folder(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(CgExportError, match="none of the 1 images could be read"):
        list(calibration_batches(tmp_path))


def test_int8_advice_never_suggests_the_method_just_used():
    for method in CALIBRATION_METHODS:
        advice = int8_next_step(method, 12)
        assert f"--calib-method {method}" not in advice and f"(this was {method})" in advice
        assert all(f"--calib-method {other}" in advice for other in CALIBRATION_METHODS if other != method)
        assert "than the 12 it was calibrated on" in advice and "fp16" in advice and "mixed" not in advice


def test_int8_needs_photographs(checkpoints, tmp_path):
    # The library names its fields; the command line turns them into flags (tests/cg_export/cli/test_vocabulary.py).
    with pytest.raises(CgExportError, match="int8 needs calib DIR"):
        export_onnx(checkpoints["ours.pt"], tmp_path / "g.onnx", OnnxExportOptions(int8=True))
    with pytest.raises(CgExportError, match="one of fp16 and int8"):
        export_onnx(checkpoints["ours.pt"], tmp_path / "g.onnx", OnnxExportOptions(int8=True, fp16=True, calib=tmp_path))
    with pytest.raises(CgExportError, match="calib only applies with int8"):
        export_onnx(checkpoints["ours.pt"], tmp_path / "g.onnx", OnnxExportOptions(calib=tmp_path))
    with pytest.raises(CgExportError, match="calibration method 'bogus'"):
        quantize_int8(onnx.ModelProto(), [np.zeros((1, 3, 8, 8), np.float32)], Int8Recipe(calibration_method="bogus"))


def test_int8_end_to_end_is_gated_and_recorded(checkpoints, photo_folder, tmp_path):
    target = tmp_path / "g_int8.onnx"
    with pytest.raises(ParityError, match="int8 parity check failed") as failed:
        export_onnx(checkpoints["ours.pt"], target, OnnxExportOptions(int8=True, calib=photo_folder, min_psnr_db=99,
                                                                      calib_method="entropy"))
    assert not target.exists()
    # The advice names what was not tried: the other methods, more photographs than those used, fp16.
    advice = str(failed.value).split("; ", 1)[1]
    assert "more (and more typical) photographs of your own than the 3 it was calibrated on (--calib)" in advice
    assert "--calib-method minmax or --calib-method percentile (this was entropy)" in advice
    assert "--calib-method entropy" not in advice and advice.endswith("or ship fp16 (--fp16)")
    result = export_onnx(checkpoints["ours.pt"], target, OnnxExportOptions(int8=True, calib=photo_folder, min_psnr_db=0))
    model = onnx.load(str(target))
    assert {p.key: p.value for p in model.metadata_props}["cg_export.precision"] == "int8"
    assert Counter(n.op_type for n in model.graph.node)["QuantizeLinear"] > 0
    assert result.precision == "int8" and result.parity.psnr_db > 0


def test_default_recipe_is_the_measured_one():
    """benchmarks/int8_experiments.md: equalized, percentile 99.99, ConvTranspose and image-facing convs float."""
    assert DEFAULT_RECIPE.op_types == ("Conv",)
    assert (DEFAULT_RECIPE.calibration_method, DEFAULT_RECIPE.percentile) == ("percentile", 99.99)
    assert DEFAULT_RECIPE.keep_first_and_last_conv and DEFAULT_RECIPE.equalize_pre_norm


def test_biases_are_int32_for_ort_and_folded_to_float_for_tensorrt(quantized):
    from cg_export.export.quantize import fold_bias_dequantization
    from cg_export.tensorrt.check import check_model

    inits = {i.name: onnx.numpy_helper.to_array(i) for i in quantized.graph.initializer}
    int32_dq = [n for n in quantized.graph.node
                if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int32]
    assert int32_dq, "ONNX Runtime fuses integer convolutions only with int32 biases"
    folded = fold_bias_dequantization(quantized)
    folded_inits = {i.name: onnx.numpy_helper.to_array(i) for i in folded.graph.initializer}
    for node in int32_dq:
        bias = folded_inits[node.output[0]]
        expected = inits[node.input[0]].astype(np.float64) * inits[node.input[1]]
        assert bias.dtype == np.float32 and np.allclose(bias, expected, rtol=1e-6)
    assert not [n for n in folded.graph.node if n.op_type == "DequantizeLinear"
                and folded_inits.get(n.input[0], np.zeros(1, np.int8)).dtype == np.int32]
    onnx.checker.check_model(folded, full_check=True)
    before = [f for f in check_model(quantized, (8, 6)).findings if "int32" in f.message]
    assert before and all(f.severity == "warning" for f in before)
    assert not [f for f in check_model(folded, (8, 6)).findings if f.severity == "error"]


def test_equalization_keeps_the_float_output(checkpoints, photo_folder):
    import onnxruntime as ort

    from cg_export.export.quantize import equalize_pre_norm_convs

    graph = to_onnx_graph(load_generator(checkpoints["latest_net_G_A.pth"]).model)
    batches = list(calibration_batches(photo_folder, size=64))
    equalized = equalize_pre_norm_convs(graph, batches)
    x = batches[0]
    before = ort.InferenceSession(graph.SerializeToString()).run(None, {"input": x})[0]
    after = ort.InferenceSession(equalized.SerializeToString()).run(None, {"input": x})[0]
    assert np.abs(before - after).max() < 1e-2  # only the norms' epsilon weighs differently
    changed = [i.name for i in equalized.graph.initializer if i.name.endswith("_equalized_bias")]
    assert len(changed) == sum(1 for n in graph.graph.node if n.op_type == "InstanceNormalization")


def test_unreadable_calibration_files_are_reported_not_dropped_silently(photo_folder):
    skipped: list[str] = []
    batches = list(calibration_batches(photo_folder, size=64, skipped=skipped))
    assert len(batches) == 3 and len(skipped) >= 1
    assert len(skipped) == 1 and skipped[0].startswith("broken.png (") and skipped[0].endswith(")")


@pytest.mark.parametrize("method", ["percentile", "minmax"])
def test_calibration_keeps_only_a_chunk_of_activations_at_a_time(checkpoints, photo_folder, monkeypatch, method):
    from dataclasses import replace

    from onnxruntime.quantization import calibrate

    from cg_export.export.quantize import CALIBRATION_CHUNK, DEFAULT_RECIPE, calibration_chunk

    held: list[int] = []
    for calibrator in (calibrate.HistogramCalibrater, calibrate.MinMaxCalibrater):
        original = calibrator.clear_collected_data

        def spy(self, original=original):
            held.append(len(self.intermediate_outputs))  # activations of how many batches were held at once
            original(self)

        monkeypatch.setattr(calibrator, "clear_collected_data", spy)
    batches = list(calibration_batches(photo_folder, size=32)) * 8  # 24 batches
    graph = to_onnx_graph(load_generator(checkpoints["latest_net_G_A.pth"]).model)
    quantize_int8(graph, batches, replace(DEFAULT_RECIPE, calibration_method=method, equalize_pre_norm=False))
    assert held and max(held) <= CALIBRATION_CHUNK and sum(held) == len(batches)
    assert (calibration_chunk(500), calibration_chunk(13), calibration_chunk(16), calibration_chunk(3)) == (5, 1, 8, 3)


def test_quantization_adds_no_root_logger_filter_and_logs_no_preprocessing_advice(checkpoints, photo_folder,
                                                                                 monkeypatch, caplog):
    """Quantization used to hide ONNX Runtime's pre-processing advice with a filter on the root logger."""
    import logging

    import onnxruntime.quantization as ort_quantization

    seen_filters = []
    real = ort_quantization.quantize_static

    def watched(*args, **kwargs):
        seen_filters.append(list(logging.getLogger().filters))
        return real(*args, **kwargs)

    monkeypatch.setattr(ort_quantization, "quantize_static", watched)
    graph = to_onnx_graph(load_generator(checkpoints["latest_net_G_A.pth"]).model)
    with caplog.at_level(logging.WARNING):
        result = quantize_int8(graph, list(calibration_batches(photo_folder, size=64)))
    assert seen_filters == [[]]
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    assert "onnx.quant.pre_process" not in {p.key for p in result.metadata_props}
