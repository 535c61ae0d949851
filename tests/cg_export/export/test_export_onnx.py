"""ONNX export: graph shape and content, parity on real photographs, precision, atomic writes."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest

from cg_export.backends.onnxruntime import OnnxRuntimeRunner
from cg_export.backends.torch import TorchRunner
from cg_export.errors import CgExportError, ParityError
from cg_export.export.onnx import OnnxExportOptions, export_onnx, to_onnx_graph, verification_sizes
from cg_export.metadata import onnx_props
from cg_export.models import load_generator
from cg_export.parity import measure_parity, photograph_batches
from tests.conftest import make_generator


def _ops(path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def _dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize(
    "file", ["ours.pt", "latest_net_G_A.pth", "5_net_G_B.pth", "legacy_net_G_A.pth", "G_AB_7.pth",
             "unet128_net_G.pth", "unet256_net_G.pth"]
)
def test_every_format_exports_and_passes_fp32_parity(checkpoints, tmp_path, file):
    result = export_onnx(checkpoints[file], tmp_path / "g.onnx")
    assert result.path.is_file()
    assert result.parity is not None and len(result.parity.cases) == 2
    assert result.parity.max_abs_err <= 1e-3
    assert result.parity.psnr_db >= 50


def test_graph_is_dynamic_float32_nchw_with_provenance(checkpoints, tmp_path):
    path = export_onnx(checkpoints["latest_net_G_A.pth"], tmp_path / "g.onnx").path
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(inp) == _dims(out) == ["batch", 3, "height", "width"]
    assert model.opset_import[0].version == 17
    meta = onnx_props(onnx.load(str(path), load_external_data=False))
    # The weights' digest, not the file's bytes: the same weights re-saved are still this model's source.
    assert meta["cg_export.source_sha256"] == load_generator(checkpoints["latest_net_G_A.pth"]).weights_sha256
    assert json.loads(meta["cg_export.architecture"])["n_blocks"] == 2
    assert meta["cg_export.value_range"] == "[-1, 1]"
    assert meta["cg_export.precision"] == "fp32"
    assert "cg_export.toolkit_version" in meta


def test_exporter_choice_gives_a_graph_without_shape_arithmetic(checkpoints):
    """Pinned: the dynamo exporter. TorchScript's graph computes reflection pads at run time (Shape, Slice,
    ConstantOfShape, Concat ...), which TensorRT's parser and ORT's fusions handle worse."""
    graph = to_onnx_graph(load_generator(checkpoints["latest_net_G_A.pth"]).model)
    ops = Counter(node.op_type for node in graph.graph.node)
    assert set(ops) == {"Pad", "Conv", "InstanceNormalization", "Relu", "Add", "ConvTranspose", "Tanh"}
    constants = {init.name for init in graph.graph.initializer}
    assert all(node.input[1] in constants for node in graph.graph.node if node.op_type == "Pad")


def test_the_same_generator_is_traced_once_per_cache_and_each_caller_gets_its_own_graph(monkeypatch):
    import torch

    from cg_export.export import onnx as onnx_export

    traced = []
    real = onnx_export._trace
    monkeypatch.setattr(onnx_export, "_trace", lambda *args: traced.append(args[1:]) or real(*args))
    cache = onnx_export.TraceCache()
    model = make_generator("resnet", ngf=4, n_blocks=1)
    torch.manual_seed(3)
    expected_random = torch.rand(4)
    torch.manual_seed(3)
    first = to_onnx_graph(model, cache=cache)
    assert torch.equal(torch.rand(4), expected_random)  # tracing leaves the global RNG alone
    first.graph.name = "changed by its caller"
    second = to_onnx_graph(model, cache=cache)
    assert len(traced) == 1 and second.graph.name != first.graph.name
    assert second.SerializeToString() == to_onnx_graph(model, cache=cache).SerializeToString()
    to_onnx_graph(model, static_size=(32, 32), cache=cache)  # other arguments: another graph
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # other weights: another graph
    changed = to_onnx_graph(model, cache=cache)
    assert len(traced) == 3 and changed.SerializeToString() != second.SerializeToString()
    # No hidden state: without a cache every call traces, and nothing outlives the cache's owner.
    to_onnx_graph(model)
    to_onnx_graph(model)
    assert len(traced) == 5 and len(cache) == 3


def test_deploy_traces_each_generator_once_for_all_its_onnx_precisions(monkeypatch, tmp_path):
    """The cache deploy relied on is its own object now: fp32, fp16 and int8 still share one trace."""
    from PIL import Image

    from cg_export.deploy import deploy
    from cg_export.export import onnx as onnx_export
    from cg_export.images import sample_photographs
    from cg_export.models import save_generator

    photos = tmp_path / "photos"
    photos.mkdir()
    for name, image in sample_photographs(6):
        Image.fromarray(image).resize((48, 40)).save(photos / f"{name}.png")
    checkpoint = save_generator(make_generator("resnet", seed=77, ngf=4, n_blocks=1), tmp_path / "g.pt")
    traced = []
    real = onnx_export._trace
    monkeypatch.setattr(onnx_export, "_trace", lambda *args: traced.append(args[1:]) or real(*args))
    deploy(checkpoint, photos, tmp_path / "deploy", size=(32, 32), candidates=["onnx-fp32", "onnx-fp16", "onnx-int8"],
           threads=1, say=lambda *_: None, warmup=0, iterations=2)
    assert len(traced) == 1


def test_upsample_layout_exports_nearest_resize_with_constant_scales(checkpoints):
    graph = to_onnx_graph(load_generator(checkpoints["G_AB_7.pth"]).model)
    resizes = [n for n in graph.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 2
    scales = {init.name: onnx.numpy_helper.to_array(init) for init in graph.graph.initializer}
    for node in resizes:
        assert dict((a.name, onnx.helper.get_attribute_value(a)) for a in node.attribute)["mode"] == b"nearest"
        assert np.array_equal(scales[node.input[2]], [1, 1, 2, 2])


def test_any_size_and_batch_runs(checkpoints, tmp_path):
    path = export_onnx(checkpoints["ours.pt"], tmp_path / "g.onnx", OnnxExportOptions(verify=False)).path
    with OnnxRuntimeRunner(path) as runner:
        for shape in [(1, 3, 64, 64), (3, 3, 100, 36)]:
            assert runner(np.zeros(shape, np.float32)).shape == shape


def test_static_shape_and_batch(checkpoints, tmp_path):
    result = export_onnx(checkpoints["ours.pt"], tmp_path / "g.onnx", OnnxExportOptions(static_size=(128, 192), batch=1))
    (inp,) = onnx.load(str(result.path)).graph.input
    assert _dims(inp) == [1, 3, 128, 192]
    assert [c.label.split(" @ ")[1] for c in result.parity.cases] == ["128x192"]


def test_static_size_must_fit_the_architecture(checkpoints, tmp_path):
    with pytest.raises(CgExportError, match="multiples of 128"):
        export_onnx(checkpoints["unet128_net_G.pth"], tmp_path / "g.onnx", OnnxExportOptions(static_size=(256, 200)))


def test_opset_18_is_available(checkpoints, tmp_path):
    path = export_onnx(checkpoints["ours.pt"], tmp_path / "g.onnx", OnnxExportOptions(opset=18)).path
    assert onnx.load(str(path)).opset_import[0].version == 18


def test_fp16_keeps_normalisation_and_io_in_fp32(checkpoints, tmp_path):
    result = export_onnx(checkpoints["G_AB_7.pth"], tmp_path / "g16.onnx", OnnxExportOptions(fp16=True))
    model = onnx.load(str(result.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = {i.name: i.data_type for i in model.graph.initializer}
    conv_weights = [weights[n.input[1]] for n in model.graph.node if n.op_type == "Conv"]
    assert conv_weights and set(conv_weights) == {onnx.TensorProto.FLOAT16}
    # Every InstanceNormalization and Resize reads its input through a Cast to float32.
    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type in ("InstanceNormalization", "Resize"):
            cast = producers[node.input[0]]
            assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT
    assert onnx_props(onnx.load(str(result.path)))["cg_export.precision"] == "fp16"
    assert result.parity.psnr_db >= 40


def test_failed_verification_writes_nothing_and_keeps_the_old_file(checkpoints, tmp_path):
    target = tmp_path / "g.onnx"
    target.write_bytes(b"previous export")
    with pytest.raises(ParityError, match="fp16 parity check failed") as info:
        export_onnx(checkpoints["ours.pt"], target, OnnxExportOptions(fp16=True, min_psnr_db=500))
    assert info.value.report.psnr_db < 500
    assert target.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]


def test_refuses_to_overwrite_the_checkpoint(checkpoints):
    with pytest.raises(CgExportError, match="overwrite the checkpoint"):
        export_onnx(checkpoints["ours.pt"], checkpoints["ours.pt"])


def test_default_output_sits_beside_the_checkpoint(tmp_path):
    from cg_export.models import save_generator

    checkpoint = save_generator(make_generator("resnet_tiny"), tmp_path / "G_AB.pt")
    assert export_onnx(checkpoint, None, OnnxExportOptions(verify=False)).path == tmp_path / "G_AB.onnx"
    assert export_onnx(checkpoint, None, OnnxExportOptions(fp16=True, verify=False)).path == tmp_path / "G_AB_fp16.onnx"


def test_verification_sizes_fit_each_architecture():
    assert verification_sizes(4) == [(256, 256), (256, 384)]
    assert verification_sizes(256) == [(256, 256), (256, 512)]
    assert verification_sizes(128) == [(256, 256), (256, 384)]


@pytest.mark.slow
def test_full_size_9block_generator_parity(tmp_path):
    """The production architecture (11.4 M parameters) at both verification sizes, fp32 and fp16."""
    from cg_export.models import save_generator

    checkpoint = save_generator(make_generator("resnet_9blocks"), tmp_path / "G_AB.pt")
    fp32 = export_onnx(checkpoint, tmp_path / "g.onnx")
    assert fp32.parity.max_abs_err <= 1e-3
    fp16 = export_onnx(checkpoint, tmp_path / "g16.onnx", OnnxExportOptions(fp16=True))
    assert fp16.parity.psnr_db >= 40
    # Parity measured independently of the exporter's own check, on other photographs' sizes.
    inputs = photograph_batches([(128, 320)], photos_per_batch=1)
    with TorchRunner(load_generator(checkpoint).model) as ref, OnnxRuntimeRunner(fp32.path) as ort:
        assert measure_parity(ref, ort, inputs).max_abs_err <= 1e-3
