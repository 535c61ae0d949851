"""Small in-place edits of ONNX graphs shared by the graph transforms (quantization, InstanceNorm statistics)."""

from __future__ import annotations

import onnx


def prune_unused(model: onnx.ModelProto) -> None:
    """Drop, in place, the nodes no graph output depends on and the initializers nothing reads.

    Value infos are dropped too: they describe intermediate tensors of the old graph, and shape inference or the
    runtime recomputes them.
    """
    needed = {output.name for output in model.graph.output}
    kept = []
    for node in reversed(list(model.graph.node)):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    kept.reverse()
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    initializers = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    del model.graph.value_info[:]
