"""What DLA, the deep learning accelerator of Jetson AGX Xavier / Xavier NX / AGX Orin / Orin NX, runs.

From TensorRT's "DLA Supported Layers and Restrictions". Layers outside these run on the GPU (cg-export builds with
GPU fallback), at the cost of a copy at each switch.
"""

from __future__ import annotations

DLA_DEVICES = "Jetson AGX Xavier, Xavier NX, AGX Orin and Orin NX"
# DLA computes in these precisions only.
DLA_PRECISIONS = ("fp16", "int8")
# DLA takes explicit (Q/DQ) quantization from this release (JetPack 6.1); before, quantized layers go to the GPU.
DLA_EXPLICIT_QUANTIZATION_FROM = (10, 0)

# ONNX ops whose TensorRT layers DLA runs (activation, concatenation, convolution, deconvolution, element-wise,
# LRN, pooling, reduce, resize, scale, shuffle, slice, softmax, unary), plus ops that vanish into neighbours.
DLA_OPS = {
    "Conv", "ConvTranspose", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "PRelu", "Add", "Sub", "Mul", "Div",
    "Max", "Min", "Pow", "Equal", "Greater", "Less", "Concat", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "LRN", "BatchNormalization", "Resize", "Upsample", "Reshape", "Transpose", "Flatten", "Squeeze",
    "Unsqueeze", "Slice", "Softmax", "ReduceMax", "ReduceMean", "ReduceSum", "Abs", "Sin", "Cos", "Identity",
    "Constant", "QuantizeLinear", "DequantizeLinear", "Dropout",
}
DLA_MAX_DIM = 8192
DLA_MAX_BATCH = 4096
