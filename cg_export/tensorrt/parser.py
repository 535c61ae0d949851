"""What each TensorRT ONNX parser release reads: opsets, operators, Resize modes.

From the operator support matrices that ship with each parser release (onnx-tensorrt ``docs/operators.md``: 8.0,
8.2, 8.4, 8.5, 8.6, 10.0, 10.15). A release between two matrices is held to the older one.
"""

from __future__ import annotations

from dataclasses import dataclass

from cg_export.tensorrt.versions import major_minor

_COMMON_UNSUPPORTED = {
    "BitShift", "Compress", "ConcatFromSequence", "ConvInteger", "Det", "DynamicQuantizeLinear", "MatMulInteger",
    "MaxRoiPool", "MaxUnpool", "Multinomial", "NegativeLogLikelihoodLoss", "QLinearConv", "QLinearMatMul",
    "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength",
    "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringNormalizer", "TfIdfVectorizer", "Unique",
}


@dataclass(frozen=True)
class ParserSupport:
    """One release's ONNX parser support matrix: the highest opset it reads and the operators it lacks."""

    since: tuple[int, int]
    max_opset: int
    unsupported: frozenset[str]
    min_opset: int = 7


# onnx-tensorrt docs/operators.md, rows marked "N", by the release whose matrix they are.
PARSER_SUPPORT = (
    ParserSupport((8, 0), 13, frozenset(_COMMON_UNSUPPORTED | {
        "Einsum", "GatherND", "Hardmax", "IsInf", "IsNaN", "MeanVarianceNormalization", "Mod", "NonZero", "OneHot",
        "RandomNormal", "RandomNormalLike", "Reciprocal", "RoiAlign", "Round", "Scatter", "ScatterElements",
        "ScatterND", "Shrink", "Sign", "Xor"})),
    ParserSupport((8, 2), 13, frozenset(_COMMON_UNSUPPORTED | {
        "Hardmax", "IsInf", "MeanVarianceNormalization", "Mod", "NonZero", "OneHot", "RandomNormal",
        "RandomNormalLike", "Reciprocal", "RoiAlign", "Shrink", "Xor"})),
    ParserSupport((8, 4), 17, frozenset(_COMMON_UNSUPPORTED | {
        "Bernoulli", "BlackmanWindow", "DFT", "GridSample", "HammingWindow", "HannWindow", "HardSwish", "Hardmax",
        "IsInf", "LayerNormalization", "MeanVarianceNormalization", "MelWeightMatrix", "Mod", "NonZero", "OneHot",
        "Optional", "OptionalGetElement", "OptionalHasElement", "RoiAlign", "STFT", "SequenceMap", "Trilu"})),
    ParserSupport((8, 5), 17, frozenset(_COMMON_UNSUPPORTED | {
        "Bernoulli", "BlackmanWindow", "DFT", "HammingWindow", "HannWindow", "Hardmax", "IsInf",
        "LayerNormalization", "MelWeightMatrix", "Optional", "OptionalGetElement", "OptionalHasElement", "STFT",
        "SequenceMap"})),
    ParserSupport((8, 6), 17, frozenset(_COMMON_UNSUPPORTED | {
        "Bernoulli", "BlackmanWindow", "DFT", "HammingWindow", "HannWindow", "Hardmax", "MelWeightMatrix",
        "Optional", "OptionalGetElement", "OptionalHasElement", "STFT", "SequenceMap"})),
    ParserSupport((10, 0), 20, frozenset(_COMMON_UNSUPPORTED | {
        "AffineGrid", "Bernoulli", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "BlackmanWindow",
        "CenterCropPad", "DFT", "HammingWindow", "HannWindow", "ImageDecoder", "MelWeightMatrix", "Optional",
        "OptionalGetElement", "OptionalHasElement", "RegexFullMatch", "STFT", "SequenceMap", "StringConcat",
        "StringSplit"}), min_opset=9),
    ParserSupport((10, 15), 24, frozenset(_COMMON_UNSUPPORTED | {
        "AffineGrid", "Bernoulli", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "CenterCropPad", "Col2Im",
        "DFT", "ImageDecoder", "MelWeightMatrix", "Optional", "OptionalGetElement", "OptionalHasElement",
        "RegexFullMatch", "SequenceMap", "StringConcat", "StringSplit"}), min_opset=9),
)

# Resize attributes the parser implements.
RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDINATES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
RESIZE_NEAREST_MODES = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}

# The oldest release whose matrix is here, so the oldest ``cg-export check --trt-version`` takes.
OLDEST_CHECKABLE = PARSER_SUPPORT[0].since


def support_for(version: tuple[int, ...]) -> ParserSupport:
    """The newest support matrix at or before ``version``."""
    release = major_minor(version)
    chosen = PARSER_SUPPORT[0]
    for support in PARSER_SUPPORT:
        if support.since <= release:
            chosen = support
    return chosen
