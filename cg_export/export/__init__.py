"""Exporters: checkpoint -> ONNX (fp32 / fp16), and the precision converters they share."""
