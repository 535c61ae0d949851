"""Exporters, one module per format of the formats table (:mod:`cg_export.formats`), each with the one signature
``exporter(source, output, options)``; :func:`run_export` runs any of them and records the outcome the same way.

Light to import: the exporters themselves (torch, onnx, openvino, tensorrt) load only when one runs.
"""

from cg_export.export.run import ExportOutcome, ExportRequest, make_options, run_export

__all__ = ["ExportOutcome", "ExportRequest", "make_options", "run_export"]
