"""``cg-export info MODEL``: what a model file (or a deployment or IR folder) is, read without running it.

Checkpoints are read by the checkpoint loader (safely: every check of :mod:`cg_export.models.safety` applies);
exported files through the formats table's metadata readers, so no runtime (ONNX Runtime, TensorRT) is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cg_export.cli.common import reports_errors
from cg_export.cli.options import arch_option
from cg_export.cli.printer import echo
from cg_export.errors import CgExportError

if TYPE_CHECKING:
    from cg_export.models import LoadedGenerator


@reports_errors
def info_command(
    model: Path = typer.Argument(..., help="A model file (any format of 'cg-export list'), a deployment folder "
                                 "(cg-export deploy) or an OpenVINO IR folder."),
    arch: str | None = arch_option(),
) -> None:
    """Say what a model file is: format, precision, I/O, shapes, metadata, source checkpoint and sha256."""
    from cg_export.backends.registry import backend_for, model_file, read_artifact_metadata
    from cg_export.files import sha256_of

    if not model.exists():
        raise CgExportError(f"{model}: no such file or folder")
    given, model = model, model_file(model)
    if not model.is_file():
        raise CgExportError(f"{model}: not a model file")
    from cg_export.models import load_generator

    row = backend_for(model)
    # Everything is read (and checked) before anything is printed: a broken file gives one line, nothing else.
    generator = load_generator(model, arch=arch) if row.metadata_reader is None else None
    metadata = read_artifact_metadata(model) if generator is None else None
    if given != model:
        echo("folder", f"{given}: its model is {model.relative_to(given)}")
    files = row.files(model)
    beside = f" with {', '.join(path.name for path in files[1:])}" if len(files) > 1 else ""
    echo("file", f"{model}{beside} ({sum(path.stat().st_size for path in files) / 1e6:.2f} MB)")
    echo("sha256", sha256_of(model))
    if generator is not None:
        _describe_checkpoint(generator)
        return
    echo("format", f"{row.title} ({model.suffix}), runs with {row.runtime}")
    if metadata is None:
        echo("metadata", "none recorded (an engine without its .json sidecar, or not written by cg-export)")
        return
    _describe_metadata(metadata)
    if row.name == "onnx":
        _describe_onnx_graph(model)


def _describe_checkpoint(generator: LoadedGenerator) -> None:
    from cg_export.models.safety import parameter_count

    echo("format", f"PyTorch checkpoint, written by {generator.source_format}")
    echo("arch", generator.description)
    model = generator.model
    echo("params", f"{parameter_count(model) / 1e6:.2f} M (float32)")
    channels = generator.config.get("in_channels", 3), generator.config.get("out_channels", 3)
    echo("I/O", f"float32 NCHW in [-1, 1], {channels[0]} -> {channels[1]} channels, height and width multiples "
                f"of {model.size_multiple}")
    echo("weights", f"sha256 {generator.weights_sha256} (of the weights, whatever file holds them)")
    if generator.meta:
        echo("meta", json.dumps(generator.meta, sort_keys=True, default=str))
    for note in generator.notes:
        echo("note", note)


def _describe_metadata(metadata: object) -> None:
    from cg_export.metadata import ArtifactMetadata
    from cg_export.models.checkpoint import describe_architecture

    assert isinstance(metadata, ArtifactMetadata)
    echo("precision", metadata.precision + (", uint8 I/O" if metadata.uint8_io else ""))
    io = "uint8 NHWC RGB in [0, 255]" if metadata.uint8_io else f"float32 {metadata.layout} in {metadata.value_range}"
    echo("I/O", f"{io}, {metadata.in_channels} -> {metadata.out_channels} channels, height and width multiples of "
                f"{metadata.size_multiple}")
    if metadata.architecture.get("name"):
        echo("arch", describe_architecture(metadata.architecture))
    source = metadata.source_checkpoint or "not recorded"
    digest = f" (weights sha256 {metadata.source_sha256})" if metadata.source_sha256 else ""
    echo("source", f"{source}{digest}" + (f", {metadata.source_format}" if metadata.source_format else ""))
    if metadata.toolkit_version:
        echo("written", f"by cg-export {metadata.toolkit_version}")
    for key, value in sorted(metadata.extra.items()):
        echo("metadata", f"{key} = {value}")


def _describe_onnx_graph(path: Path) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # the external data was checked by the reader

    def dims(value: onnx.ValueInfoProto) -> str:
        kind = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        shape = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
        return f"{value.name} {kind}[{', '.join(shape)}]"

    initializers = {init.name for init in model.graph.initializer}
    inputs = [dims(v) for v in model.graph.input if v.name not in initializers]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    echo("shapes", f"{', '.join(inputs)} -> {', '.join(dims(v) for v in model.graph.output)}")
    echo("graph", f"opset {opset}, {len(model.graph.node)} nodes")


def register(app: typer.Typer) -> None:
    """Add ``info`` to the ``cg-export`` app."""
    app.command("info")(info_command)
