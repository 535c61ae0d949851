"""InstanceNorm statistics as data, so a big image can be run in tiles that match the whole-image output.

InstanceNorm normalises every channel with the mean and variance of the *whole* image. Run tile by tile, each
tile would use its own statistics, and the tiles would disagree in colour and contrast (seams). Instead the
statistics are computed once for the whole image (from a downscaled copy) and every tile is normalised with them.

That needs the statistics to be an output of one graph and an input of another. For ONNX (ONNX Runtime and
TensorRT alike) :func:`split_norm_stats_graphs` derives both from any exported generator:

* the *stats graph*: same input, one output ``norm_stats`` of shape (N, 2, S), the per-channel means (``[:, 0]``)
  and variances (``[:, 1]``) of the input of every InstanceNormalization, in graph order (S channels in all);
* the *tile graph*: inputs ``input`` and ``norm_stats``; each InstanceNormalization is replaced by
  ``(x - mean) / sqrt(var + eps) * scale + bias`` with the given statistics.

For PyTorch generators :class:`TorchNormStats` does the same with the modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cg_export.errors import BackendError
from cg_export.graph_edit import prune_unused

NORM_STATS = "norm_stats"


def split_norm_stats_graphs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Derive the stats graph and the tile graph of a generator (see the module docstring).

    Raises:
        BackendError: the graph has no InstanceNormalization (nothing to share between tiles).
    """
    norms = [node for node in model.graph.node if node.op_type == "InstanceNormalization"]
    if not norms:
        raise BackendError("the model has no InstanceNormalization: tiles can run independently, no statistics needed")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    channels = _norm_channels(model, norms)
    return _stats_graph(model, norms, opset), _tile_graph(model, norms, channels, opset)


def norm_channel_count(model: onnx.ModelProto) -> int:
    """S: the total number of InstanceNorm channels, the last dimension of ``norm_stats``."""
    norms = [node for node in model.graph.node if node.op_type == "InstanceNormalization"]
    return sum(_norm_channels(model, norms))


def _norm_channels(model: onnx.ModelProto, norms: list[onnx.NodeProto]) -> list[int]:
    initializers = {init.name: init for init in model.graph.initializer}
    channels = []
    for node in norms:
        scale = initializers.get(node.input[1])
        if scale is None:
            raise BackendError(f"InstanceNormalization {node.name!r} has a computed scale; expected an initializer")
        channels.append(int(np.prod(scale.dims)))
    return channels


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.ModelProto.FromString(model.SerializeToString())


def _reduce_mean(inputs: str, output: str, opset: int, keepdims: int, nodes: list, inits: list) -> None:
    # ReduceMean takes its axes as an attribute up to opset 17 and as an input from opset 18.
    if opset >= 18:
        axes = f"{output}_axes"
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), axes))
        nodes.append(helper.make_node("ReduceMean", [inputs, axes], [output], keepdims=keepdims))
    else:
        nodes.append(helper.make_node("ReduceMean", [inputs], [output], axes=[2, 3], keepdims=keepdims))


def _stats_graph(model: onnx.ModelProto, norms: list[onnx.NodeProto], opset: int) -> onnx.ModelProto:
    stats = _copy(model)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    means, variances = [], []
    for index, norm in enumerate(norms):
        x, prefix = norm.input[0], f"norm_stats_{index}"
        _reduce_mean(x, f"{prefix}_mean_kept", opset, 1, nodes, inits)
        nodes.append(helper.make_node("Sub", [x, f"{prefix}_mean_kept"], [f"{prefix}_centred"]))
        nodes.append(helper.make_node("Mul", [f"{prefix}_centred", f"{prefix}_centred"], [f"{prefix}_squares"]))
        _reduce_mean(f"{prefix}_squares", f"{prefix}_var", opset, 0, nodes, inits)
        _reduce_mean(x, f"{prefix}_mean", opset, 0, nodes, inits)
        means.append(f"{prefix}_mean")
        variances.append(f"{prefix}_var")
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "norm_stats_axis1"))
    nodes += [
        helper.make_node("Concat", means, ["norm_stats_means"], axis=1),
        helper.make_node("Concat", variances, ["norm_stats_vars"], axis=1),
        helper.make_node("Unsqueeze", ["norm_stats_means", "norm_stats_axis1"], ["norm_stats_means_3d"]),
        helper.make_node("Unsqueeze", ["norm_stats_vars", "norm_stats_axis1"], ["norm_stats_vars_3d"]),
        helper.make_node("Concat", ["norm_stats_means_3d", "norm_stats_vars_3d"], [NORM_STATS], axis=1),
    ]
    stats.graph.node.extend(nodes)
    stats.graph.initializer.extend(inits)
    del stats.graph.output[:]
    stats.graph.output.append(helper.make_tensor_value_info(NORM_STATS, TensorProto.FLOAT, ["batch", 2, None]))
    prune_unused(stats)
    return stats


def _tile_graph(model: onnx.ModelProto, norms: list[onnx.NodeProto], channels: list[int], opset: int) -> onnx.ModelProto:
    tile = _copy(model)
    initializers = {init.name: init for init in tile.graph.initializer}
    norm_names = {node.name for node in norms}
    replacement: dict[str, list[onnx.NodeProto]] = {}
    inits: list[onnx.TensorProto] = []
    offset = 0
    for index, (norm, count) in enumerate(zip(norms, channels)):
        prefix = f"tile_norm_{index}"
        x, out = norm.input[0], norm.output[0]
        eps = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
        scale = numpy_helper.to_array(initializers[norm.input[1]]).astype(np.float32).reshape(count, 1, 1)
        bias = numpy_helper.to_array(initializers[norm.input[2]]).astype(np.float32).reshape(count, 1, 1)
        inits += [
            numpy_helper.from_array(np.array([0, offset], np.int64), f"{prefix}_mean_start"),
            numpy_helper.from_array(np.array([1, offset + count], np.int64), f"{prefix}_mean_end"),
            numpy_helper.from_array(np.array([1, offset], np.int64), f"{prefix}_var_start"),
            numpy_helper.from_array(np.array([2, offset + count], np.int64), f"{prefix}_var_end"),
            numpy_helper.from_array(np.array([1, 2], np.int64), f"{prefix}_axes"),
            numpy_helper.from_array(np.array([0, count, 1, 1], np.int64), f"{prefix}_shape"),
            numpy_helper.from_array(np.array(eps, np.float32), f"{prefix}_eps"),
            numpy_helper.from_array(scale, f"{prefix}_scale"),
            numpy_helper.from_array(bias, f"{prefix}_bias"),
        ]
        replacement[norm.name] = [
            helper.make_node("Slice", [NORM_STATS, f"{prefix}_mean_start", f"{prefix}_mean_end", f"{prefix}_axes"],
                             [f"{prefix}_mean_flat"]),
            helper.make_node("Slice", [NORM_STATS, f"{prefix}_var_start", f"{prefix}_var_end", f"{prefix}_axes"],
                             [f"{prefix}_var_flat"]),
            helper.make_node("Reshape", [f"{prefix}_mean_flat", f"{prefix}_shape"], [f"{prefix}_mean"]),
            helper.make_node("Reshape", [f"{prefix}_var_flat", f"{prefix}_shape"], [f"{prefix}_var"]),
            helper.make_node("Add", [f"{prefix}_var", f"{prefix}_eps"], [f"{prefix}_var_eps"]),
            helper.make_node("Sqrt", [f"{prefix}_var_eps"], [f"{prefix}_std"]),
            helper.make_node("Sub", [x, f"{prefix}_mean"], [f"{prefix}_centred"]),
            helper.make_node("Div", [f"{prefix}_centred", f"{prefix}_std"], [f"{prefix}_normed"]),
            helper.make_node("Mul", [f"{prefix}_normed", f"{prefix}_scale"], [f"{prefix}_scaled"]),
            helper.make_node("Add", [f"{prefix}_scaled", f"{prefix}_bias"], [out]),
        ]
        offset += count
    nodes = []
    for node in tile.graph.node:
        nodes.extend(replacement[node.name] if node.name in norm_names else [node])
    del tile.graph.node[:]
    tile.graph.node.extend(nodes)
    tile.graph.initializer.extend(inits)
    batch = tile.graph.input[0].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_param or batch.dim_value or "batch"
    tile.graph.input.append(helper.make_tensor_value_info(NORM_STATS, TensorProto.FLOAT, [batch_dim, 2, offset]))
    del tile.graph.value_info[:]
    prune_unused(tile)
    return tile


class TorchNormStats:
    """The same two modes for a PyTorch generator: collect whole-image statistics, or apply given ones.

    Args:
        model: A generator whose InstanceNorm layers are ``torch.nn.InstanceNorm2d``.
    """

    def __init__(self, model: Any):
        import torch

        self._torch = torch
        self.model = model
        self.norms = [m for m in model.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
        if not self.norms:
            raise BackendError("the model has no InstanceNorm layers: tiles can run independently")

    def collect(self, batch: Any) -> np.ndarray:
        """Run ``batch`` (a tensor) and return its statistics as (N, 2, S), in the ONNX stats graph's layout."""
        torch = self._torch
        means, variances = [], []

        def record(module: Any, inputs: tuple[Any, ...]) -> None:
            x = inputs[0].float()
            means.append(x.mean(dim=(2, 3)))
            variances.append(x.var(dim=(2, 3), unbiased=False))

        hooks = [norm.register_forward_pre_hook(record) for norm in self.norms]
        try:
            with torch.inference_mode():
                self.model(batch)
        finally:
            for hook in hooks:
                hook.remove()
        return torch.stack([torch.cat(means, 1), torch.cat(variances, 1)], 1).cpu().numpy()

    def apply(self, batch: Any, stats: np.ndarray) -> Any:
        """Run ``batch`` with every InstanceNorm using ``stats`` (N, 2, S) instead of the batch's own."""
        torch = self._torch
        stats_t = torch.from_numpy(np.ascontiguousarray(stats)).to(batch.device)
        offsets = np.cumsum([0] + [norm.num_features for norm in self.norms])

        def normalise(index: int, module: Any, x: Any) -> Any:
            start, end = int(offsets[index]), int(offsets[index + 1])
            mean = stats_t[:, 0, start:end, None, None].to(x.dtype)
            var = stats_t[:, 1, start:end, None, None].to(torch.float32)
            y = (x - mean) / torch.sqrt(var + module.eps).to(x.dtype)
            if module.affine:
                y = y * module.weight[None, :, None, None] + module.bias[None, :, None, None]
            return y

        originals = [norm.forward for norm in self.norms]
        try:
            for index, norm in enumerate(self.norms):
                norm.forward = lambda x, i=index, m=norm: normalise(i, m, x)
            with torch.inference_mode():
                return self.model(batch)
        finally:
            for norm, forward in zip(self.norms, originals):
                norm.forward = forward
