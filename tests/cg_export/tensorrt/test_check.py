"""``cg-export check``: the TensorRT pre-flight on good and bad graphs, with no GPU and no TensorRT."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cg_export.errors import CgExportError
from cg_export.tensorrt.check import check_file, check_model, parse_target
from tests.trt_models import generator_onnx, generator_onnx_fp16, generator_onnx_int8, generator_onnx_uint8_asymmetric

pytestmark = pytest.mark.timeout(120)


def _graph(nodes, initializers=(), opset=17, input_shape=("N", 3, "H", "W"), input_type=TensorProto.FLOAT):
    """A one-input, one-output image graph (input ``x``, output ``y``)."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", input_type, list(input_shape))],
        [helper.make_tensor_value_info("y", input_type, None)],
        initializer=list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _errors(report):
    return [str(f) for f in report.findings if f.severity == "error"]


def _warnings(report):
    return [str(f) for f in report.findings if f.severity == "warning"]


def _pad(mode, opset=17):
    pads = _const("pads", [0, 0, 3, 3, 0, 0, 3, 3], np.int64)
    return _graph([helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode, name="pad")], [pads], opset)


def _resize(**attrs):
    scales = _const("scales", [1, 1, 2, 2])
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", **attrs)
    return _graph([node], [scales])


def _qdq(zero_point, zp_dtype, scale=0.02, with_zero_point=True):
    inputs = ["x", "s", "zp"] if with_zero_point else ["x", "s"]
    inits = [_const("s", scale)] + ([_const("zp", zero_point, zp_dtype)] if with_zero_point else [])
    nodes = [helper.make_node("QuantizeLinear", inputs, ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", *inputs[1:]], ["y"], name="dq")]
    return _graph(nodes, inits)


@pytest.mark.parametrize("version", [(8, 5), (8, 6), (10, 3), (11, 4)])
def test_exported_generators_pass_every_release(version):
    for path in (generator_onnx(), generator_onnx_fp16(), generator_onnx_int8()):
        report = check_model(onnx.load(str(path)), version)
        assert report.ok, (path.name, _errors(report))
        assert _warnings(report) == [], (path.name, _warnings(report))
        assert report.opset == 17 and report.nodes > 10


def test_instance_norm_notes_follow_the_release():
    model = onnx.load(str(generator_onnx()))
    notes85 = [f.message for f in check_model(model, (8, 5)).findings if f.severity == "note"]
    notes86 = [f.message for f in check_model(model, (8, 6)).findings if f.severity == "note"]
    assert len(notes85) == 1 and "InstanceNormalization_TRT plugin" in notes85[0]  # one line for all nine nodes
    assert len(notes86) == 1 and "NATIVE_INSTANCENORM" in notes86[0]
    assert [f for f in check_model(model, (10, 3)).findings if f.severity == "note"] == []


def test_fp16_instance_norm_is_flagged():
    scale, bias = _const("scale", np.ones(3), np.float16), _const("bias", np.zeros(3), np.float16)
    model = _graph([helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], name="norm")],
                   [scale, bias], input_type=TensorProto.FLOAT16)
    assert any("fp16 loses accuracy" in w for w in _warnings(check_model(model, (10, 3))))


def test_opset_limits():
    model = _pad("reflect", opset=18)
    assert any("opset 18 is too new" in e and "up to 17" in e for e in _errors(check_model(model, (8, 6))))
    assert check_model(model, (10, 0)).ok
    newer = _pad("reflect", opset=21)
    report = check_model(newer, (10, 3))  # between the 10.0 and 10.15 matrices: a warning, not a refusal
    assert report.ok and any("opset 21" in w for w in _warnings(report))
    assert check_model(newer, (11, 4)).ok and not _warnings(check_model(newer, (11, 4)))


def test_reflect_pad_needs_8_2():
    old = _pad("reflect", opset=13)
    assert any("reflect padding needs TensorRT 8.2+" in e for e in _errors(check_model(old, (8, 0))))
    assert check_model(old, (8, 2)).ok
    assert check_model(_pad("constant", opset=13), (8, 0)).ok
    assert any("needs TensorRT 8.5+ (opset 17)" in e for e in _errors(check_model(_pad("constant"), (8, 2))))


def test_unsupported_operators_by_release():
    def single(op):
        return _graph([helper.make_node(op, ["x"], ["y"], name="n")])

    assert any("has no NonZero" in e for e in _errors(check_model(single("NonZero"), (8, 0))))
    assert check_model(single("NonZero"), (8, 6)).ok
    assert any("has no LayerNormalization" in e for e in _errors(check_model(single("LayerNormalization"), (8, 5))))
    assert check_model(single("LayerNormalization"), (8, 6)).ok
    custom = _graph([helper.make_node("FancyOp", ["x"], ["y"], domain="com.example", name="fancy")])
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    assert any("needs a TensorRT plugin" in e for e in _errors(check_model(custom, (10, 3))))


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"mode": "cubic"}, "mode 'cubic'"),
        ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, "tf_crop_and_resize"),
        ({"mode": "nearest", "nearest_mode": "banana"}, "nearest_mode 'banana'"),
        ({"mode": "linear", "antialias": 1}, "antialiased"),
    ],
)
def test_resize_modes_tensorrt_refuses(attrs, message):
    report = check_model(_resize(**attrs), (10, 3))
    assert any(message in e for e in _errors(report)), report.findings


def test_supported_resize_passes():
    assert check_model(_resize(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                       (8, 5)).ok
    assert check_model(_resize(mode="linear", coordinate_transformation_mode="half_pixel"), (8, 5)).ok


def test_quantization_must_be_symmetric_signed_int8():
    assert check_model(_qdq(0, np.int8), (8, 6)).ok
    assert any("zero point is not 0" in e for e in _errors(check_model(_qdq(3, np.int8), (10, 3))))
    assert any("uint8 quantization" in e for e in _errors(check_model(_qdq(128, np.uint8), (10, 3))))
    assert any("scales must be positive" in e for e in _errors(check_model(_qdq(0, np.int8, scale=-1.0), (10, 3))))
    assert any("no zero point" in w for w in _warnings(check_model(_qdq(0, np.int8, with_zero_point=False), (10, 3))))
    dynamic_scale = _qdq(0, np.int8)
    dynamic_scale.graph.initializer.remove(dynamic_scale.graph.initializer[0])
    dynamic_scale.graph.input.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, []))
    assert any("scale must be a constant" in e for e in _errors(check_model(dynamic_scale, (10, 3))))


def test_onnx_runtime_default_quantization_is_refused():
    report = check_model(onnx.load(str(generator_onnx_uint8_asymmetric())), (10, 3))
    errors = _errors(report)
    assert any("uint8 quantization" in e for e in errors) and any("zero point is not 0" in e for e in errors)


def test_dla_reports_dynamic_shapes_and_gpu_fallback():
    model = onnx.load(str(generator_onnx()))
    report = check_model(model, (8, 6), dla=True)
    assert report.target == "TensorRT 8.6 with DLA" and report.ok
    warnings = _warnings(report)
    assert any("dynamic dimensions [0, 2, 3]" in w for w in warnings)
    fallback = next(w for w in warnings if "fall back to the GPU" in w)
    assert "Pad x" in fallback and "InstanceNormalization x" in fallback
    assert not any("fall back" in w for w in _warnings(check_model(model, (8, 6))))  # only with --dla


def test_dla_limits_and_resize():
    huge = _graph([helper.make_node("Relu", ["x"], ["y"], name="r")], input_shape=(1, 3, 9000, 64))
    assert any("up to 8192" in e for e in _errors(check_model(huge, (10, 3), dla=True)))
    static_nearest = _resize(mode="nearest")
    static_nearest.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    assert not any("fall back" in w for w in _warnings(check_model(static_nearest, (10, 3), dla=True)))
    assert any("Resize (not nearest" in w for w in _warnings(check_model(_resize(mode="linear"), (10, 3), dla=True)))
    qdq = check_model(onnx.load(str(generator_onnx_int8())), (8, 6), dla=True)
    assert any("explicit (Q/DQ) quantization" in w for w in _warnings(qdq))
    assert not any("explicit (Q/DQ)" in w for w in _warnings(check_model(onnx.load(str(generator_onnx_int8())),
                                                                         (10, 3), dla=True)))


def test_parse_target():
    assert parse_target("trt") is None and parse_target(None) is None
    assert parse_target("trt=8.6") == (8, 6) and parse_target("TRT=10.3.0") == (10, 3, 0)
    assert parse_target("trt=10") == (10, 0)
    for bad in ("onnxruntime", "trt=abc", "trt=7.1", "trt="):
        if bad == "trt=":
            assert parse_target(bad) is None
            continue
        with pytest.raises(CgExportError, match="trt_version"):
            parse_target(bad)


def test_check_file_errors(tmp_path):
    with pytest.raises(CgExportError, match="no such file"):
        check_file(tmp_path / "missing.onnx", "trt=8.6")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(CgExportError, match="not a readable ONNX model"):
        check_file(tmp_path / "text.onnx", "trt=8.6")


CHECK = [sys.executable, "-c", "import sys; from cg_export.cli.common import new_app; from cg_export.cli.trt import "
         "register; app = new_app('cg-export'); register(app); sys.argv[0] = 'cg-export'; app()"]


def _cli(*args):
    return subprocess.run([*CHECK, *args], capture_output=True, text=True, timeout=120)


def test_cli_check_good_and_bad(tmp_path):
    good = _cli("check", str(generator_onnx()), "--trt-version", "8.6", "--dla")
    assert good.returncode == 0, good.stderr
    assert "target    TensorRT 8.6 with DLA" in good.stdout and "fall back to the GPU" in good.stdout
    assert "ok        0 error(s)" in good.stdout
    onnx.save(_pad("reflect", opset=18), str(tmp_path / "new.onnx"))
    bad = _cli("check", str(tmp_path / "new.onnx"), "--trt-version", "8.5")
    assert bad.returncode == 1 and "error     opset 18 is too new" in bad.stdout and "refused" in bad.stdout
    missing = _cli("check", str(tmp_path / "nothing.onnx"))
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_check_default_target_says_which_it_is():
    result = _cli("check", str(generator_onnx()))
    assert result.returncode == 0, result.stderr
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert "TensorRT 8.5 (no TensorRT here" in result.stdout
    else:
        assert "(the installed TensorRT)" in result.stdout


def test_quantized_instance_norm_is_refused_before_8_6():
    nodes = [helper.make_node("DequantizeLinear", ["qs", "s", "zp"], ["scale"], name="dq"),
             helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], name="norm")]
    inits = [_const("qs", [50, 50, 50], np.int8), _const("s", 0.02), _const("zp", 0, np.int8),
             _const("bias", np.zeros(3))]
    model = _graph(nodes, inits)
    assert any("leave InstanceNorm out of quantization" in e for e in _errors(check_model(model, (8, 5))))
    assert check_model(model, (8, 6)).ok
