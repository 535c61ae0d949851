"""Real TensorRT engines: build, inspect, run, compare. Runs only where TensorRT, the CUDA bindings and a GPU exist.

These are the only tests that show TensorRT itself accepts what the builder asks (``test_trt_api.py`` shows that
only names each release has are used). On a machine without TensorRT and a GPU the whole module is skipped.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt", reason="needs TensorRT (and a GPU)")

from cg_export.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from cg_export.backends.tensorrt import CudaRuntime, TensorRTRunner  # noqa: E402
from cg_export.errors import BackendError, CgExportError  # noqa: E402
from cg_export.export.trt import EngineOptions, build_engine  # noqa: E402
from cg_export.parity import photograph_batches  # noqa: E402
from cg_export.tensorrt.sidecar import sidecar_path  # noqa: E402
from tests.trt_models import generator_onnx, generator_onnx_int8  # noqa: E402


def _has_gpu() -> bool:
    try:
        CudaRuntime.load()
    except CgExportError:
        return False
    return True


pytestmark = [
    pytest.mark.trt,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not _has_gpu(), reason="needs a CUDA GPU and the CUDA Python bindings"),
]

SMALL = {"min_shape": (1, 3, 64, 64), "opt_shape": (1, 3, 128, 128), "max_shape": (2, 3, 256, 256)}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """fp32 and fp16 engines of the tiny generator, built once (a build takes seconds to minutes)."""
    folder = tmp_path_factory.mktemp("engines")
    cache = folder / "timing.cache"
    return {
        precision: build_engine(generator_onnx(), folder / f"g_{precision}.engine",
                                EngineOptions(fp16=precision == "fp16", timing_cache=cache, **SMALL))
        for precision in ("fp32", "fp16")
    }


def test_fp32_engine_matches_onnx_runtime(engines):
    result = engines["fp32"]
    assert result.precision == "fp32" and result.parity.max_abs_err <= 1e-3
    assert result.layers.counts.get("fp32", 0) > 0 and not result.layers.counts.get("fp16")
    record = json.loads(sidecar_path(result.path).read_text())
    assert record["tensorrt_version"] == trt.__version__ and record["gpu"]["name"]


def test_fp16_engine_really_runs_fp16(engines):
    result = engines["fp16"]
    assert result.layers.counts.get("fp16", 0) > 0, result.layers.summary()
    assert result.parity.psnr_db >= 40


def test_runner_runs_every_shape_in_the_profile(engines):
    inputs = photograph_batches([(64, 64), (128, 192), (256, 256)], 1) + photograph_batches([(128, 128)], 2)
    with OnnxRuntimeRunner(generator_onnx(), providers=["CPUExecutionProvider"]) as reference, \
            TensorRTRunner(engines["fp32"].path) as runner:
        for _, batch in inputs:
            np.testing.assert_allclose(runner(batch), reference(batch), atol=1e-3)
        with pytest.raises(BackendError, match="outside the engine's profile"):
            runner(np.zeros((1, 3, 512, 512), np.float32))


def test_engine_from_another_version_is_refused(engines, tmp_path):
    engine = tmp_path / "g.engine"
    engine.write_bytes(engines["fp16"].path.read_bytes())
    record = json.loads(sidecar_path(engines["fp16"].path).read_text())
    record["tensorrt_version"] = "7.2.3"
    sidecar_path(engine).write_text(json.dumps(record))
    with pytest.raises(BackendError, match="built with TensorRT 7.2.3"):
        TensorRTRunner(engine).activate()


def test_int8_engine_from_qdq_model(tmp_path):
    result = build_engine(generator_onnx_int8(), tmp_path / "g_int8.engine", EngineOptions(int8=True, **SMALL))
    assert result.layers.counts.get("int8", 0) > 0, result.layers.summary()
    assert result.parity.psnr_db >= 30


def test_checkpoint_source_against_pytorch(checkpoints, tmp_path):
    pytest.importorskip("torch")
    result = build_engine(checkpoints["ours.pt"], tmp_path / "g.engine", EngineOptions(fp16=True, **SMALL))
    assert result.reference == "PyTorch" and result.parity.psnr_db >= 40
