"""Hostile or absurd ONNX files: sizes a file claims are checked before a runtime or numpy believes them, and what
still runs out of memory is one line naming the model and the size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from typer.testing import CliRunner, Result

from cg_export.cli.export import app as cg_export_app
from cg_export.cli.stylize import app as cg_stylize_app
from cg_export.errors import BackendError
from cg_export.images import DEFAULT_MAX_PIXELS, fit_to_size, sample_photographs
from cg_export.model_limits import DEFAULT_MAX_PIXELS as LIMITS_MAX_PIXELS
from cg_export.model_limits import check_model_limits, out_of_memory_error


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def one_line(result: Result, *fragments: str) -> str:
    assert result.exit_code != 0, result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile_photo") / "photo.png"
    Image.fromarray(fit_to_size(sample_photographs(1)[0][1], 32, 32)).save(path)
    return path


def lying_tensor(dims: list[int], **data: object) -> onnx.TensorProto:
    """A float tensor named ``weight`` claiming ``dims`` over whatever ``data`` holds (onnx's helper refuses this)."""
    tensor = TensorProto(name="weight", data_type=TensorProto.FLOAT, **data)
    tensor.dims.extend(dims)
    return tensor


def _float(name: str, dims: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def test_a_static_input_of_a_million_by_a_million_pixels_is_refused(tmp_path, photo):
    """cg-stylize used to size its buffers from it: a 2.73 TiB allocation and a traceback."""
    model = save(helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "huge",
                                   [_float("input", [1, 3, 1_000_000, 1_000_000])],
                                   [_float("output", [1, 3, 1_000_000, 1_000_000])]), tmp_path / "huge.onnx")
    result = CliRunner().invoke(cg_stylize_app, [str(model), str(photo), "-o", str(tmp_path / "out.png"),
                                                 "--no-progress"])
    one_line(result, str(model), "1000000x1000000", "pixel limit")
    assert not (tmp_path / "out.png").exists()


def test_an_initializer_whose_shape_its_data_does_not_fill_is_one_line_in_check(tmp_path):
    """65536 x 65536 claimed, four values held: numpy's reshape used to end cg-export check with a traceback."""
    weight = lying_tensor([65536, 65536], raw_data=np.ones(4, np.float32).tobytes())
    model = save(helper.make_graph([helper.make_node("Add", ["input", "weight"], ["output"])], "liar",
                                   [_float("input", [65536, 65536])], [_float("output", [65536, 65536])], [weight]),
                 tmp_path / "liar.onnx")
    result = CliRunner().invoke(cg_export_app, ["check", str(model)])
    assert "Traceback" not in result.output and result.exit_code != 0, result.output
    assert "claims shape 65536 x 65536" in result.output and "holds 16 B" in result.output, result.output
    typed = lying_tensor([65536, 65536], float_data=[1.0, 2.0, 3.0, 4.0])
    model.write_bytes(save(helper.make_graph([helper.make_node("Add", ["input", "weight"], ["output"])], "liar",
                                             [_float("input", [2, 2])], [_float("output", [2, 2])], [typed]),
                           tmp_path / "typed.onnx").read_bytes())
    result = CliRunner().invoke(cg_export_app, ["check", str(model)])
    assert "Traceback" not in result.output and "holds 4 values" in result.output, result.output


def test_an_expand_to_hundreds_of_gigabytes_is_refused_before_the_runtime_allocates(tmp_path, photo):
    """ONNX Runtime's bad_alloc used to end cg-stylize with a traceback."""
    shape = numpy_helper.from_array(np.array([1, 3, 200_000, 200_000], np.int64), "shape")
    zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
    nodes = [helper.make_node("Expand", ["zero", "shape"], ["big"]),
             helper.make_node("ReduceMax", ["big"], ["peak"], keepdims=1),
             helper.make_node("Add", ["input", "peak"], ["output"])]
    model = save(helper.make_graph(nodes, "expand", [_float("input", [1, 3, None, None])],
                                   [_float("output", [1, 3, None, None])], [shape, zero]), tmp_path / "expand.onnx")
    result = CliRunner().invoke(cg_stylize_app, [str(model), str(photo), "-o", str(tmp_path / "out.png"),
                                                 "--no-progress"])
    one_line(result, str(model), "'big'", "1 x 3 x 200000 x 200000", "447.0 GiB", "memory")


def test_a_size_only_known_at_run_time_that_does_not_fit_is_one_line(tmp_path, photo):
    """The shape comes from the input, so no static check can see it: the runtime's failure is translated."""
    if Path("/proc/sys/vm/overcommit_memory").read_text().strip() != "0":
        pytest.skip("only where the kernel refuses an allocation far beyond its memory (heuristic overcommit)")
    factor = numpy_helper.from_array(np.array([1, 1, 100_000, 100_000], np.int64), "factor")
    nodes = [helper.make_node("Shape", ["input"], ["input_shape"]),
             helper.make_node("Mul", ["input_shape", "factor"], ["huge_shape"]),
             helper.make_node("ConstantOfShape", ["huge_shape"], ["big"],
                              value=numpy_helper.from_array(np.zeros(1, np.float32))),
             helper.make_node("ReduceMax", ["big"], ["peak"], keepdims=1),
             helper.make_node("Add", ["input", "peak"], ["output"])]
    model = save(helper.make_graph(nodes, "runtime", [_float("input", [1, 3, None, None])],
                                   [_float("output", [1, 3, None, None])], [factor]), tmp_path / "runtime.onnx")
    result = CliRunner().invoke(cg_stylize_app, [str(model), str(photo), "-o", str(tmp_path / "out.png"),
                                                 "--no-progress"])
    one_line(result, str(model), "ran out of memory", "1 x 3 x 32 x 32")


def test_limits_name_the_size_and_leave_real_models_alone(tmp_path):
    assert LIMITS_MAX_PIXELS == DEFAULT_MAX_PIXELS
    fine = save(helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "fine",
                                  [_float("input", [1, 3, 256, 256])], [_float("output", [1, 3, 256, 256])]),
                tmp_path / "fine.onnx")
    check_model_limits(fine)
    with pytest.raises(BackendError, match=r"'input' would be 1 x 3 x 256 x 256 \(768.0 KiB\), more than"):
        check_model_limits(fine, memory=1 << 19)
    assert out_of_memory_error(fine, ValueError("a bug")) is None
    error = out_of_memory_error(fine, RuntimeError("std::bad_alloc"), (1, 3, 8, 8))
    assert error is not None and str(error).startswith(f"{fine}: ran out of memory running the model on a 1 x 3 x 8 x 8")
