"""The TensorRT builder and runtime against the exact Python API of TensorRT 8.6, 10.3 and 11.4.

No TensorRT library can run here, so each code path runs against ``fake_tensorrt.FakeTensorRT``, a module that
exposes exactly the names of one release (extracted from its real bindings wheel): a path that touches a name its
release lacks fails with AttributeError, and calls must fit that release's signatures. The engine "runs" the
parsed ONNX model with ONNX Runtime, so verification, sidecars and atomic writes run for real. What the fakes
cannot tell (that TensorRT really builds and runs these engines) is in ``test_trt_engine.py``, marked ``trt``.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from cg_export.backends.onnxruntime import OnnxRuntimeRunner
from cg_export.backends.tensorrt import (
    CudaRuntime,
    GpuInfo,
    TensorRTRunner,
)
from cg_export.errors import BackendError, CgExportError, MissingDependencyError, ParityError
from cg_export.export.trt import (
    EngineBuildError,
    EngineOptions,
    LayerPrecisions,
    build_engine,
    check_engine_precision,
    layer_precisions,
    parse_shape,
    plan_build,
    resolve_profile,
)
from cg_export.files import sha256_of
from cg_export.parity import photograph_batches
from cg_export.tensorrt.sidecar import (
    EngineRecord,
    EngineSource,
    compatibility_problem,
    read_engine_metadata,
    read_sidecar,
    sidecar_path,
)
from tests.fake_tensorrt import FAKE_CUDART_NAMES, FakeCudart, FakeTensorRT, inspector_json, simulate_gpu
from tests.trt_models import generator_onnx, generator_onnx_fp16, generator_onnx_int8


def _real_cudart():
    """The real CUDA runtime bindings, imported before any test puts the fake in their place."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return None
    return runtime


REAL_CUDART = _real_cudart()
HAVE_CUDA_DEVICE = bool(REAL_CUDART) and REAL_CUDART.cudaGetDeviceCount()[0] == REAL_CUDART.cudaError_t.cudaSuccess

# (names of the release, version it reports): 10.13 stands for the strongly typed 10.12+ path on 10.3's names.
RELEASES = [("8.6.1", "8.6.1"), ("10.3.0", "10.3.0"), ("10.3.0", "10.13.0"), ("11.4.0.106", "11.4.0.106")]
SMALL = {"min_shape": (1, 3, 32, 32), "opt_shape": (1, 3, 64, 64), "max_shape": (2, 3, 128, 128)}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def gpu(request, monkeypatch):
    """Install a fake TensorRT of one release and a fake CUDA runtime; returns (trt, cuda, build state)."""
    names, reported = getattr(request, "param", ("10.3.0", "10.3.0"))
    trt, cuda = FakeTensorRT(names, reported), FakeCudart()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cuda)
    return trt, cuda, simulate_gpu(trt, cuda)


# --- the name lists and the fake are faithful -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version, present, absent",
    [
        ("8.6.1", ["IExecutionContext.execute_async_v3", "IExecutionContext.execute_async_v2", "BuilderFlag.FP16",
                   "NetworkDefinitionCreationFlag.EXPLICIT_BATCH", "OnnxParserFlag.NATIVE_INSTANCENORM",
                   "IInt8EntropyCalibrator2", "IBuilderConfig.max_workspace_size"],
         ["NetworkDefinitionCreationFlag.STRONGLY_TYPED"]),
        ("10.3.0", ["IExecutionContext.execute_async_v3", "BuilderFlag.FP16", "BuilderFlag.INT8",
                    "NetworkDefinitionCreationFlag.STRONGLY_TYPED", "IInt8EntropyCalibrator2"],
         ["IExecutionContext.execute_async_v2", "IBuilderConfig.max_workspace_size"]),
        ("11.4.0.106", ["IExecutionContext.execute_async_v3", "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
                        "OnnxParserFlag.NATIVE_INSTANCENORM"],
         ["BuilderFlag.FP16", "BuilderFlag.INT8", "IInt8EntropyCalibrator2", "Builder.platform_has_fast_fp16",
          "NetworkDefinitionCreationFlag.EXPLICIT_BATCH", "IExecutionContext.execute_async_v2"]),
    ],
)
def test_name_lists_hold_each_release_documented_api(version, present, absent):
    trt = FakeTensorRT(version)
    assert [name for name in present if not trt.has(name)] == []
    assert [name for name in absent if trt.has(name)] == []


def test_fake_fails_where_the_release_would():
    trt = FakeTensorRT("11.4.0.106")
    with pytest.raises(AttributeError, match="FP16"):
        trt.BuilderFlag.FP16  # noqa: B018  (the access itself must fail)
    with pytest.raises(AttributeError):
        trt.IInt8EntropyCalibrator2  # noqa: B018
    config = trt.instance("IBuilderConfig")
    with pytest.raises(AttributeError):
        config.int8_calibrator = None  # removed in 11
    with pytest.raises(TypeError):
        config.set_flag(trt.MemoryPoolType.WORKSPACE)  # wrong enum type
    with pytest.raises(TypeError):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE)  # missing argument
    with pytest.raises(AttributeError, match="no setter"):
        trt.instance("ICudaEngine").num_io_tensors = 3
    assert int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 0  # it was 1 in 10.x: never hard-code bits
    assert int(FakeTensorRT("10.3.0").NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1


def test_fake_cudart_names_exist_in_the_real_bindings():
    runtime = pytest.importorskip("cuda.bindings.runtime")
    assert [name for name in FAKE_CUDART_NAMES if not hasattr(runtime, name)] == []
    assert [n for n in ("cudaSuccess", "cudaErrorNoDevice") if not hasattr(runtime.cudaError_t, n)] == []
    assert hasattr(runtime.cudaMemcpyKind, "cudaMemcpyHostToDevice")
    fake = FakeCudart()
    assert [n for n in dir(fake) if n.startswith("cuda") and n not in FAKE_CUDART_NAMES] == []
    for name in FAKE_CUDART_NAMES:  # same parameters as the real functions ("cudaMalloc(size_t size)")
        if name in ("cudaError_t", "cudaMemcpyKind"):
            continue
        real = getattr(runtime, name).__doc__.splitlines()[0]
        real_arity = len([p for p in real[real.index("(") + 1: real.rindex(")")].split(",") if p.strip()])
        assert len(inspect.signature(getattr(fake, name)).parameters) == real_arity, real


# --- the version plan -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version, network, builder, parser, convert",
    [
        ((8, 5, 2), ("EXPLICIT_BATCH",), ("FP16",), (), False),
        ((8, 6, 1), ("EXPLICIT_BATCH",), ("FP16",), ("NATIVE_INSTANCENORM",), False),
        ((10, 3, 0), (), ("FP16",), (), False),
        ((10, 11, 0), (), ("FP16",), (), False),
        ((10, 12, 0), ("STRONGLY_TYPED",), (), (), True),
        ((11, 4, 0), ("STRONGLY_TYPED",), (), (), True),
    ],
)
def test_fp16_is_asked_for_the_way_each_release_wants(version, network, builder, parser, convert):
    plan = plan_build(version, fp16=True, int8=False, graph_is_fp16=False)
    assert (plan.network_flags, plan.builder_flags, plan.parser_flags) == (network, builder, parser)
    assert plan.convert_graph_to_fp16 is convert and plan.precision == "fp16"
    assert plan.cleared_builder_flags == ()


def test_plans_use_only_names_the_release_has():
    for names, version in (("8.6.1", (8, 6)), ("10.3.0", (10, 3)), ("11.4.0.106", (11, 4))):
        trt = FakeTensorRT(names)
        for fp16, int8, fp16_graph in ((False, False, False), (True, False, False), (False, True, False),
                                       (True, True, False), (False, False, True)):
            plan = plan_build(version, fp16=fp16, int8=int8, graph_is_fp16=fp16_graph)
            used = ([f"NetworkDefinitionCreationFlag.{n}" for n in plan.network_flags]
                    + [f"BuilderFlag.{n}" for n in plan.builder_flags + plan.cleared_builder_flags]
                    + [f"OnnxParserFlag.{n}" for n in plan.parser_flags])
            assert [n for n in used if not trt.has(n)] == [], (names, fp16, int8)


def test_int8_fp32_and_old_releases():
    assert plan_build((8, 6), fp16=False, int8=True, graph_is_fp16=False).builder_flags == ("INT8",)
    assert plan_build((10, 3), fp16=True, int8=True, graph_is_fp16=False).builder_flags == ("INT8", "FP16")
    strong = plan_build((11, 4), fp16=False, int8=True, graph_is_fp16=False)
    assert strong.strongly_typed and not strong.convert_graph_to_fp16 and strong.precision == "int8"
    fp32 = plan_build((10, 3), fp16=False, int8=False, graph_is_fp16=False)
    assert fp32.precision == "fp32" and fp32.cleared_builder_flags == ("TF32",)
    assert plan_build((8, 6), fp16=False, int8=False, graph_is_fp16=True).precision == "fp16"
    assert not plan_build((11, 0), fp16=False, int8=False, graph_is_fp16=True).convert_graph_to_fp16
    with pytest.raises(EngineBuildError, match="8.5 or newer"):
        plan_build((8, 2, 1), fp16=True, int8=False, graph_is_fp16=False)


# --- profiles ---------------------------------------------------------------------------------------------------------


def test_default_profile_is_fitted_to_the_size_multiple():
    dims = (None, 3, None, None)
    assert resolve_profile(None, None, None, graph_dims=dims, size_multiple=4).describe() == (
        "1x3x128x128 / 1x3x256x256 / 1x3x1024x1024")
    unet = resolve_profile(None, None, None, graph_dims=dims, size_multiple=96)
    assert unet.min == (1, 3, 192, 192) and unet.opt == (1, 3, 288, 288) and unet.max == (1, 3, 960, 960)
    fixed = resolve_profile(None, None, None, graph_dims=(1, 3, 256, 320), size_multiple=4)
    assert fixed.is_static and fixed.opt == (1, 3, 256, 320)
    dla = resolve_profile(None, None, None, graph_dims=dims, size_multiple=4, dla=True)
    assert dla.is_static and dla.opt == (1, 3, 256, 256)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_shape": (1, 3, 1000, 1000)}, "multiples of 32"),
        ({"min_shape": (1, 3, 512, 512), "max_shape": (1, 3, 256, 256)}, "min <= opt <= max"),
        ({"opt_shape": (1, 4, 256, 256)}, "fixes dimension 1 to 3"),
        ({"min_shape": (1, 3, 128, 128), "dla": True}, "one static shape"),
    ],
)
def test_bad_profiles_fail_in_one_line(kwargs, message):
    dla = kwargs.pop("dla", False)
    shapes = {k: kwargs.get(k) for k in ("min_shape", "opt_shape", "max_shape")}
    with pytest.raises(CgExportError, match=message):
        resolve_profile(*shapes.values(), graph_dims=(None, 3, None, None), size_multiple=32, dla=dla)


def test_parse_shape():
    assert parse_shape("2x3x256x384", "--opt-shape") == (2, 3, 256, 384)
    for bad in ("256x256", "1x3x0x8", "axbxcxd"):
        with pytest.raises(CgExportError, match="--opt-shape"):
            parse_shape(bad, "--opt-shape")


# --- the engine inspector ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [(8, 6), (10, 3), (11, 4)])
def test_layer_precisions_read_each_inspector_schema(version):
    report = layer_precisions(inspector_json(version, ["fp16"] * 5 + ["fp32"] * 2 + ["int8"]))
    assert report.counts == {"fp16": 5, "fp32": 2, "int8": 1} and report.total == 8
    assert report.summary() == "1 int8, 5 fp16, 2 fp32 (8 layers)"


def test_precision_check_fails_loudly_on_an_all_fp32_engine():
    all_fp32 = LayerPrecisions({"fp32": 40})
    with pytest.raises(EngineBuildError, match="all run in FP32"):
        check_engine_precision(all_fp32, "fp16", "11.4.0")
    with pytest.raises(EngineBuildError, match="no INT8 layer"):
        check_engine_precision(LayerPrecisions({"fp16": 40}), "int8", "10.3.0")
    check_engine_precision(LayerPrecisions({"fp16": 30, "fp32": 4}), "fp16", "10.3.0")
    check_engine_precision(all_fp32, "fp32", "10.3.0")
    names_only = layer_precisions(json.dumps({"Layers": ["conv1", "conv2"]}))
    assert names_only.counts == {"unknown": 2}


# --- whole builds against each release --------------------------------------------------------------------------------


@pytest.mark.parametrize("gpu", RELEASES, indirect=True, ids=[r[1] for r in RELEASES])
def test_fp16_build_on_each_release(gpu, tmp_path):
    trt, _cuda, state = gpu
    source = generator_onnx()
    result = build_engine(source, tmp_path / "g.engine", EngineOptions(fp16=True, **SMALL))
    version = tuple(int(p) for p in trt.__version__.split("."))

    assert result.path.read_bytes().startswith(b"ENGINE") and result.precision == "fp16"
    assert result.layers.counts == {"fp16": 6, "fp32": 2}
    assert result.parity is not None and result.parity.psnr_db >= 40 and result.reference == "ONNX Runtime"
    strongly_typed = version[:2] >= (10, 12)
    assert state["network_flags"] == ({"STRONGLY_TYPED"} if strongly_typed else
                                      {"EXPLICIT_BATCH"} if version[0] == 8 else set())
    assert state["builder_flags"] == (set() if strongly_typed else {"FP16"})
    parsed = onnx.load_from_string(state["onnx"])
    fp16_weights = [i for i in parsed.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert bool(fp16_weights) is strongly_typed  # the strongly typed path takes precision from the graph
    if strongly_typed:  # ... with InstanceNorm kept in fp32 between casts
        norms = [n for n in parsed.graph.node if n.op_type == "InstanceNormalization"]
        producers = {o: n for n in parsed.graph.node for o in n.output}
        assert norms and all(producers[n.input[0]].op_type == "Cast" for n in norms)
    if version[:2] == (8, 6):
        assert trt.called("OnnxParser.set_flag")[0][0][0] == trt.OnnxParserFlag.NATIVE_INSTANCENORM
    verbosity = trt.called("IBuilderConfig.profiling_verbosity")
    assert verbosity and verbosity[0][0][0] == trt.ProfilingVerbosity.DETAILED
    assert trt.called("IOptimizationProfile.set_shape")[0][0] == ("input", *SMALL.values())
    assert state["executions"] == [(1, 3, 64, 64), (1, 3, 64, 96)]  # verification ran the engine

    record = json.loads(result.sidecar.read_text())
    assert result.sidecar == sidecar_path(result.path) and read_sidecar(result.path).to_json() == record
    assert record["tensorrt_version"] == trt.__version__ and record["precision"] == "fp16"
    assert record["gpu"] == {"name": "NVIDIA Orin", "compute_capability": "8.7"}
    assert record["profiles"] == [{"input": "input", "min": [1, 3, 32, 32], "opt": [1, 3, 64, 64],
                                   "max": [2, 3, 128, 128]}]
    assert record["source"]["sha256"] == sha256_of(source) and record["source"]["kind"] == "onnx"
    assert record["strongly_typed"] is strongly_typed and record["engine_bytes"] == result.path.stat().st_size
    assert record["layer_precisions"] == {"fp16": 6, "fp32": 2} and record["parity"]["psnr_db"] >= 40
    assert {"build_seconds", "built_at", "toolkit_version"} <= set(record)


@pytest.mark.parametrize("gpu", [RELEASES[1]], indirect=True, ids=["10.3.0"])
def test_fp32_build_clears_tf32_and_keeps_fp32_parity(gpu, tmp_path):
    trt, _, state = gpu
    result = build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(**SMALL))
    assert result.precision == "fp32" and state["builder_flags"] == set()
    assert trt.called("IBuilderConfig.clear_flag")[0][0][0] == trt.BuilderFlag.TF32
    assert result.parity.max_abs_err <= 1e-3


@pytest.mark.parametrize("gpu", [RELEASES[0], RELEASES[3]], indirect=True, ids=["8.6.1", "11.4.0.106"])
def test_fp16_onnx_source_builds_without_converting_again(gpu, tmp_path):
    trt, _, state = gpu
    result = build_engine(generator_onnx_fp16(), tmp_path / "g.engine", EngineOptions(**SMALL))
    assert result.precision == "fp16"
    assert state["onnx"] == onnx.load(str(generator_onnx_fp16())).SerializeToString()
    assert state["builder_flags"] == (set() if trt.__version__.startswith("11") else {"FP16"})


@pytest.mark.parametrize("gpu", [RELEASES[0], RELEASES[1], RELEASES[3]], indirect=True,
                         ids=["8.6.1", "10.3.0", "11.4.0.106"])
def test_int8_from_a_qdq_model_on_each_release(gpu, tmp_path, monkeypatch):
    trt, cuda, _ = gpu
    state = simulate_gpu(trt, cuda, engine_layers=lambda s: ["int8"] * 9 + ["fp32"] * 3)
    result = build_engine(generator_onnx_int8(), tmp_path / "g_int8.engine", EngineOptions(int8=True, **SMALL))
    assert result.precision == "int8" and result.layers.counts == {"int8": 9, "fp32": 3}
    eleven = trt.__version__.startswith("11")
    assert state["builder_flags"] == (set() if eleven else {"INT8"})
    assert state["network_flags"] == ({"STRONGLY_TYPED"} if eleven else
                                      {"EXPLICIT_BATCH"} if trt.__version__.startswith("8") else set())
    assert json.loads(result.sidecar.read_text())["precision"] == "int8"


def test_int8_needs_a_qdq_model_and_calibration_is_the_exporters_job(gpu, tmp_path):
    from typer.testing import CliRunner

    with pytest.raises(CgExportError, match="no QuantizeLinear/DequantizeLinear"):
        build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(int8=True, **SMALL))
    calib = CliRunner().invoke(_trt_app(), ["trt", str(generator_onnx()), "--int8", "--calib", str(tmp_path),
                                            "-o", str(tmp_path / "g.engine")])
    assert calib.exit_code == 1 and "cg-export onnx --int8 --calib DIR writes a QDQ model" in calib.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gpu", [RELEASES[3]], indirect=True, ids=["11.4.0.106"])
def test_an_all_fp32_engine_for_fp16_fails_and_writes_nothing(gpu, tmp_path):
    trt, cuda, _ = gpu
    simulate_gpu(trt, cuda, engine_layers=lambda s: ["fp32"] * 8)
    with pytest.raises(EngineBuildError, match="all run in FP32"):
        build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(fp16=True, **SMALL))
    assert list(tmp_path.iterdir()) == []


def test_failed_parity_keeps_the_previous_engine(gpu, tmp_path):
    trt, cuda, _ = gpu
    engine = tmp_path / "g.engine"
    build_engine(generator_onnx(), engine, EngineOptions(fp16=True, **SMALL))
    before = (engine.read_bytes(), sidecar_path(engine).read_text())
    simulate_gpu(trt, cuda, corrupt_output=True)
    with pytest.raises(ParityError, match="fp16 parity check failed"):
        build_engine(generator_onnx(), engine, EngineOptions(fp16=True, **SMALL))
    assert (engine.read_bytes(), sidecar_path(engine).read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.engine", "g.engine.json"]


def test_options_reach_the_builder(gpu, tmp_path):
    trt, _, _ = gpu
    cache = tmp_path / "timing.cache"
    build_engine(generator_onnx(), tmp_path / "a.engine", EngineOptions(fp16=True, workspace_mb=256, timing_cache=cache,
                 builder_optimization_level=4, verify=False, **SMALL))
    assert trt.called("IBuilderConfig.set_memory_pool_limit")[0][0] == (trt.MemoryPoolType.WORKSPACE, 256 << 20)
    assert trt.called("IBuilderConfig.builder_optimization_level")[0][0] == (4,)
    assert cache.read_bytes() == b"TIMINGCACHE"
    assert trt.called("IBuilderConfig.create_timing_cache")[0][0] == (b"",)
    build_engine(generator_onnx(), tmp_path / "b.engine", EngineOptions(fp16=True, timing_cache=cache, verify=False, **SMALL))
    assert trt.called("IBuilderConfig.create_timing_cache")[1][0] == (b"TIMINGCACHE",)  # the rebuild reuses it


@pytest.mark.parametrize("gpu", [RELEASES[0], RELEASES[3]], indirect=True, ids=["8.6.1", "11.4.0.106"])
def test_dla_build_with_gpu_fallback(gpu, tmp_path):
    trt, _, _ = gpu
    result = build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(fp16=True, dla_core=1,
                          opt_shape=(1, 3, 64, 64)))
    assert result.profile.is_static and result.profile.opt == (1, 3, 64, 64)
    assert trt.called("IBuilderConfig.default_device_type")[0][0] == (trt.DeviceType.DLA,)
    assert trt.called("IBuilderConfig.DLA_core")[0][0] == (1,)
    assert trt.BuilderFlag.GPU_FALLBACK in [args[0] for args, _ in trt.called("IBuilderConfig.set_flag")]
    assert json.loads(result.sidecar.read_text())["dla_core"] == 1
    assert (1,) in [args for args, _ in trt.called("Runtime.DLA_core")]  # the runner loads it on that core


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dla_core": 0}, "FP16 or INT8 only"),
        ({"dla_core": 0, "fp16": True, **SMALL}, "one static shape"),
        ({"dla_core": 2, "fp16": True}, "DLA cores 0..1"),
        ({"builder_optimization_level": 6}, "expected 0 to 5"),
        ({"workspace_mb": 0}, "positive"),
    ],
)
def test_bad_build_options_fail_before_writing(gpu, tmp_path, kwargs, message):
    with pytest.raises(CgExportError, match=message):
        build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(**kwargs))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gpu", [("8.6.1", "8.5.2")], indirect=True, ids=["8.5.2"])
def test_release_gates_that_names_alone_do_not_show(gpu, tmp_path):
    trt, _, _state = gpu
    with pytest.raises(CgExportError, match="needs TensorRT 8.6"):
        build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(builder_optimization_level=3, **SMALL))
    build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(fp16=True, verify=False, **SMALL))
    assert trt.called("OnnxParser.set_flag") == []  # 8.5 has no native InstanceNorm flag: the plugin is used
    assert trt.called("init_libnvinfer_plugins")


@pytest.mark.parametrize("gpu", [("8.6.1", "8.2.1")], indirect=True, ids=["8.2.1"])
def test_too_old_tensorrt_is_refused(gpu, tmp_path):
    with pytest.raises(EngineBuildError, match="8.5 or newer"):
        build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(fp16=True, **SMALL))


def test_parser_errors_are_reported_in_one_line(gpu, tmp_path):
    trt, _, _ = gpu
    error = trt.instance("ParserError")
    trt.on("ParserError.desc", lambda self: "Assertion failed: unsupported Resize mode")
    trt.on("OnnxParser.parse", lambda parser, model, path=None: False)
    trt.on("OnnxParser.num_errors", lambda parser: 1)
    trt.on("OnnxParser.get_error", lambda parser, index: error)
    with pytest.raises(EngineBuildError, match="rejected the model: Assertion failed: unsupported Resize mode"):
        build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(**SMALL))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gpu", [RELEASES[0]], indirect=True, ids=["8.6.1"])
def test_preflight_stops_what_the_parser_would_refuse(gpu, tmp_path):
    model = onnx.load(str(generator_onnx()))
    model.opset_import[0].version = 19
    onnx.save(model, str(tmp_path / "new.onnx"))
    with pytest.raises(EngineBuildError, match="TensorRT 8.6 cannot take this model: opset 19 is too new"):
        build_engine(tmp_path / "new.onnx", tmp_path / "g.engine", EngineOptions(**SMALL))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.onnx"]


def test_checkpoint_source_is_exported_and_compared_with_pytorch(gpu, tmp_path, checkpoints):
    result = build_engine(checkpoints["ours.pt"], tmp_path / "g.engine", EngineOptions(fp16=True, **SMALL))
    assert result.reference == "PyTorch" and result.parity.psnr_db >= 40
    assert json.loads(result.sidecar.read_text())["source"]["kind"] == "checkpoint"


def test_default_output_path(gpu, tmp_path):
    source = tmp_path / "G_AB_fp16.onnx"
    source.write_bytes(generator_onnx_fp16().read_bytes())
    result = build_engine(source, options=EngineOptions(fp16=True, verify=False, **SMALL))
    assert result.path == tmp_path / "G_AB_fp16.engine"
    with pytest.raises(CgExportError, match="overwrite its source"):
        build_engine(source, source, EngineOptions(verify=False, **SMALL))


def test_without_tensorrt_the_builder_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    with pytest.raises(MissingDependencyError) as caught:
        build_engine(tmp_path / "missing.onnx", options=EngineOptions(int8=True))
    message = str(caught.value)
    assert "TensorRT" in message and "JetPack" in message and "pip install tensorrt-cu12" in message
    assert "\n" not in message and list(tmp_path.iterdir()) == []


# --- the runtime ------------------------------------------------------------------------------------------------------


@pytest.fixture
def built(gpu, tmp_path):
    """An engine built on the fake release, and its reference."""
    result = build_engine(generator_onnx(), tmp_path / "g.engine", EngineOptions(fp16=True, verify=False, **SMALL))
    return result.path


@pytest.mark.parametrize("gpu", RELEASES, indirect=True, ids=[r[1] for r in RELEASES])
def test_runner_moves_batches_of_any_shape_through_pinned_buffers(gpu, built, tmp_path):
    trt, cuda, state = gpu
    inputs = photograph_batches([(64, 64), (64, 96), (32, 32)], 1) + photograph_batches([(64, 64)], 2)
    parsed = tmp_path / "parsed.onnx"  # what the engine was built from (fp16 on strongly typed releases)
    parsed.write_bytes(state["onnx"])
    with OnnxRuntimeRunner(parsed, providers=["CPUExecutionProvider"]) as reference, \
            TensorRTRunner(built) as runner:
        assert runner.precision == "fp16" and runner.profile == ((1, 3, 32, 32), (1, 3, 64, 64), (2, 3, 128, 128))
        for _, batch in inputs:
            np.testing.assert_allclose(runner(batch), reference(batch), atol=1e-5)
        assert "TensorRT " + trt.__version__ in runner.describe() and "NVIDIA Orin" in runner.describe()
        assert len(cuda.streams) == 1 and len(cuda.pinned) == 2  # one stream; one pinned buffer each way
        with pytest.raises(BackendError, match="outside the engine's profile"):
            runner(np.zeros((3, 3, 64, 64), np.float32))
    assert state["executions"] == [(1, 3, 64, 64), (1, 3, 64, 96), (1, 3, 32, 32), (2, 3, 64, 64)]
    assert [c for c in cuda.copies if c[0] == "cudaMemcpyHostToDevice"]
    assert cuda.blocks == {} and cuda.streams == set()  # deactivate freed everything
    assert [args for args, _ in trt.called("IExecutionContext.set_input_shape")][:2] == [
        ("input", (1, 3, 64, 64)), ("input", (1, 3, 64, 96))]


@pytest.mark.parametrize("gpu", RELEASES[-1:], indirect=True, ids=[r[1] for r in RELEASES[-1:]])
def test_engine_sizes_beyond_the_pixel_limit_or_the_memory_are_one_line(gpu, built, monkeypatch):
    """Checked before pinned host buffers of that size are asked for (the limits lowered to fit a tiny engine)."""
    import cg_export.backends.tensorrt as tensorrt_backend

    with TensorRTRunner(built) as runner:
        monkeypatch.setattr(tensorrt_backend, "memory_limit", lambda: 1000)
        with pytest.raises(BackendError, match=r"on a 1 x 3 x 64 x 64 input needs 96.0 KiB of host buffers, more "
                                               r"than this machine's 1000 B"):
            runner(np.zeros((1, 3, 64, 64), np.float32))
    monkeypatch.setattr(tensorrt_backend, "DEFAULT_MAX_PIXELS", 32 * 32 - 1)
    with pytest.raises(BackendError, match=r"smallest input is 32x32 \(1,024 pixels\), above the pixel limit"):
        TensorRTRunner(built).activate()


def test_engine_from_another_tensorrt_or_gpu_is_refused_with_advice(gpu, built, monkeypatch):
    trt, _, _ = gpu
    monkeypatch.setattr(trt, "__version__", "10.4.0")
    with pytest.raises(BackendError, match="built with TensorRT 10.3.0 but this machine has TensorRT 10.4.0.*rebuild"):
        TensorRTRunner(built).activate()
    monkeypatch.setattr(trt, "__version__", "10.3.0")
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", FakeCudart(name="NVIDIA A100", capability=(8, 0)))
    with pytest.raises(BackendError, match=r"built for NVIDIA Orin \(compute capability 8.7\) but this GPU is "
                                           r"NVIDIA A100 \(compute capability 8.0\)"):
        TensorRTRunner(built).activate()


def test_engine_without_sidecar_that_tensorrt_refuses(gpu, tmp_path):
    engine = tmp_path / "other.engine"
    engine.write_bytes(b"a plan from somewhere else")
    with pytest.raises(BackendError, match="cannot load this engine.*rebuild it here"):
        TensorRTRunner(engine).activate()
    with pytest.raises(BackendError, match="no such engine file"):
        TensorRTRunner(tmp_path / "missing.engine").activate()


def test_stale_sidecar_is_ignored(gpu, built):
    record = json.loads(sidecar_path(built).read_text())
    record.update(engine_bytes=1, tensorrt_version="8.6.1")
    sidecar_path(built).write_text(json.dumps(record))
    with TensorRTRunner(built) as runner:  # the sidecar is about another file: TensorRT decides
        assert runner.is_active


def test_sidecar_reader_is_lenient_and_feeds_the_metadata_table(gpu, built):
    from cg_export.backends.registry import read_artifact_metadata

    record = read_sidecar(built)
    assert EngineRecord.from_json(record.to_json()) == record
    assert record.metadata().precision == "fp16" and record.profiles[0].opt == (1, 3, 64, 64)
    assert read_engine_metadata(built) == record.metadata() == read_artifact_metadata(built)
    data = record.to_json()
    data.update(gpu="Orin", size_multiple="x", profiles=[{"min": "?"}], precision=7, source=None)
    sidecar_path(built).write_text(json.dumps(data))
    odd = read_sidecar(built)  # another tool's (or a hand-edited) record: unknown fields, not a crash
    assert (odd.gpu, odd.size_multiple, odd.profiles, odd.precision, odd.source) == (None, None, (), None, EngineSource())
    assert odd.tensorrt_version == record.tensorrt_version and odd.engine_bytes == record.engine_bytes
    assert (odd.metadata().precision, odd.metadata().size_multiple) == ("fp32", 1)
    with TensorRTRunner(built) as runner:
        assert runner.precision == "unknown" and runner.info.precision == "fp32"
    for text in (json.dumps({"format": "another-tool"}), "not json", "[1, 2]"):
        sidecar_path(built).write_text(text)
        assert read_sidecar(built) is None and read_engine_metadata(built) is None


@pytest.mark.parametrize("gpu", [("8.6.1", "8.2.1")], indirect=True, ids=["8.2.1"])
def test_runner_refuses_a_too_old_tensorrt_like_the_builder(gpu, tmp_path):
    engine = tmp_path / "g.engine"
    engine.write_bytes(b"ENGINE")
    with pytest.raises(BackendError, match=r"TensorRT 8.2.1 is too old: cg-export needs 8.5 or newer \(JetPack 5.1\+\)"):
        TensorRTRunner(engine).activate()


def test_no_gpu_is_a_clear_error(gpu, built, monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", FakeCudart(devices=0))
    with pytest.raises(BackendError, match="no usable NVIDIA GPU"):
        TensorRTRunner(built).activate()


def test_real_cuda_bindings_without_a_gpu_fail_cleanly():
    runtime = pytest.importorskip("cuda.bindings.runtime")
    assert not isinstance(runtime, FakeCudart)
    if HAVE_CUDA_DEVICE:
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(BackendError, match="no usable NVIDIA GPU"):
        CudaRuntime.load()


def test_compatibility_problem_is_quiet_when_nothing_speaks_against():
    gpu = GpuInfo("Orin", "8.7")
    record = EngineRecord(tensorrt_version="8.6.2.3", gpu=GpuInfo("Orin", "8.7"))
    assert compatibility_problem("g.engine", record, "8.6.2", gpu) is None
    assert compatibility_problem("g.engine", None, "8.6.2", gpu) is None
    assert compatibility_problem("g.engine", EngineRecord(), "8.6.2", gpu) is None  # a record that says nothing
    other = EngineRecord(tensorrt_version="8.6.2.3", gpu=GpuInfo("Xavier", "7.2"), source=EngineSource("/m/g.onnx"))
    assert "rebuild it here: cg-export trt /m/g.onnx" in compatibility_problem("g.engine", other, "8.6.2", gpu)


def test_runtime_imports_without_torch():
    code = ("import sys, cg_export.backends.tensorrt, cg_export.tensorrt.check, cg_export.cli.trt; "
            "assert 'torch' not in sys.modules and 'tensorrt' not in sys.modules, sorted(sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- the command line -------------------------------------------------------------------------------------------------

CLI = [sys.executable, "-c", "import sys; from cg_export.cli.common import new_app; from cg_export.cli.trt import "
       "register; app = new_app('cg-export'); register(app); sys.argv[0] = 'cg-export'; app()"]


def test_cli_without_tensorrt_prints_one_line_and_writes_nothing(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    source = tmp_path / "g.onnx"
    source.write_bytes(generator_onnx().read_bytes())
    result = subprocess.run([*CLI, "trt", str(source), "--fp16"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: TensorRT is needed")
    assert "JetPack" in result.stderr and "pip install tensorrt-cu12" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx"]


def _trt_app():
    """The ``cg-export`` app with ``trt`` and ``check``, for in-process CLI tests."""
    from cg_export.cli.common import new_app
    from cg_export.cli.trt import register

    app = new_app("cg-export")
    register(app)
    return app


@pytest.mark.parametrize("gpu", [RELEASES[3]], indirect=True, ids=["11.4.0.106"])
def test_cli_trt_reports_the_build(gpu, tmp_path):
    from typer.testing import CliRunner

    app = _trt_app()
    out = tmp_path / "g.engine"
    args = ["trt", str(generator_onnx()), "--fp16", "-o", str(out), "--size", "64x64", "--size-range", "32x32:128x128",
            "--batch", "2", "--workspace", "64"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "profile 2x3x32x32 / 2x3x64x64 / 2x3x128x128" in result.output
    assert "built     fp16 engine with TensorRT 11.4.0.106 on NVIDIA Orin (compute capability 8.7)" in result.output
    assert "layers    6 fp16, 2 fp32 (8 layers)" in result.output
    assert "verified  fp16 vs ONNX Runtime: PSNR" in result.output and "g.engine.json" in result.output
    bad = CliRunner().invoke(app, ["trt", str(generator_onnx()), "--opt-shape", "256x256", "-o", str(out)])
    assert bad.exit_code == 1 and "--opt-shape '256x256': expected NxCxHxW" in bad.output


@pytest.mark.parametrize("gpu", [RELEASES[1], RELEASES[3]], indirect=True, ids=["10.3.0", "11.4.0.106"])
def test_compute_timer_runs_on_resident_buffers(gpu, built):
    _trt, cuda, state = gpu
    batch = photograph_batches([(64, 96)], 2)[0][1]
    with TensorRTRunner(built) as runner:
        timer = runner.compute_timer(batch)
        copies = len(cuda.copies)
        times = [timer() for _ in range(3)]
        assert all(t >= 0 for t in times) and len(cuda.copies) == copies  # timed runs copy nothing
        assert state["executions"][-3:] == [(2, 3, 64, 96)] * 3
        expected = runner(batch)  # the runner still works after timing (it rebinds its own buffers)
        assert expected.shape == (2, 3, 64, 96)
        assert len(cuda.events) == 2
        del timer
        assert cuda.events == {}  # dropping the timer released its events and buffers
        with pytest.raises(BackendError, match="outside the engine's profile"):
            runner.compute_timer(np.zeros((1, 3, 512, 512), np.float32))
    assert cuda.blocks == {} and cuda.streams == set()


class DeviceMemory:
    """Reads and writes real GPU memory for the scripted engine (the fake's ``read`` / ``write`` contract)."""

    def __init__(self, runtime):
        self.runtime = runtime

    def read(self, address, shape, dtype=np.float32):
        out = np.empty(shape, dtype)
        kind = self.runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost
        assert self.runtime.cudaMemcpy(out.ctypes.data, address, out.nbytes, kind)[0] == 0
        return out

    def write(self, address, values):
        data = np.ascontiguousarray(values)
        kind = self.runtime.cudaMemcpyKind.cudaMemcpyHostToDevice
        assert self.runtime.cudaMemcpy(address, data.ctypes.data, data.nbytes, kind)[0] == 0


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_CUDA_DEVICE, reason="needs a CUDA GPU and cuda-python")
@pytest.mark.parametrize("gpu", [RELEASES[1]], indirect=True, ids=["10.3.0"])
def test_runner_memory_path_on_a_real_gpu(gpu, built, monkeypatch, tmp_path):
    """Everything but TensorRT for real: pinned buffers, device buffers, the stream, copies and CUDA events."""
    trt, _, build_state = gpu
    parsed = tmp_path / "parsed.onnx"
    parsed.write_bytes(build_state["onnx"])
    sidecar_path(built).unlink()  # it names the fake build GPU; here TensorRT (the fake) decides
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", REAL_CUDART)
    state = simulate_gpu(trt, DeviceMemory(REAL_CUDART))
    inputs = photograph_batches([(64, 64), (128, 96)], 1) + photograph_batches([(64, 64)], 2)
    with OnnxRuntimeRunner(parsed, providers=["CPUExecutionProvider"]) as reference, TensorRTRunner(built) as runner:
        for _, batch in inputs:
            np.testing.assert_allclose(runner(batch), reference(batch), atol=1e-5)
        timer = runner.compute_timer(inputs[0][1])
        assert all(timer() >= 0 for _ in range(3))
        assert runner.gpu.name and runner.gpu.compute_capability[0].isdigit()
    assert state["executions"] == [(1, 3, 64, 64), (1, 3, 128, 96), (2, 3, 64, 64)] + [(1, 3, 64, 64)] * 3
