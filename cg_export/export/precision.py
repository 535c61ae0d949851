"""Lower-precision ONNX graphs.

FP16: weights and activations in half precision, with normalisation kept in fp32. InstanceNorm in fp16
overflows its variance or loses accuracy (ONNX Runtime and TensorRT reports; TensorRT issue 2691 traces most of
a generator's fp16 error to it), and Resize scales must stay fp32. Inputs and outputs stay float32 so callers do
not change. TensorRT 11 takes precision only from the graph (strongly typed networks), so the TensorRT builder
reuses this converter.
"""

from __future__ import annotations

import warnings

import onnx

from cg_export.errors import MissingDependencyError

# Ops computed in fp32 inside an otherwise fp16 graph (casts are inserted around them).
FP32_OPS = ("InstanceNormalization", "BatchNormalization", "Resize")


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a mixed fp16 copy of ``model``: fp16 everywhere except :data:`FP32_OPS`, float32 inputs and outputs."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise MissingDependencyError(
            "onnxconverter-common", "for --fp16", "pip install onnxconverter-common"
        ) from None
    block_list = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    with warnings.catch_warnings():
        # One warning per weight clamped into fp16's range; the parity check is what judges the result.
        warnings.simplefilter("ignore", UserWarning)
        return float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=block_list, disable_shape_infer=False
        )
