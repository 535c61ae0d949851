"""What an exported artifact says about itself: the ``cg_export.*`` keys, written and read in one place.

ONNX files carry them in ``metadata_props`` (visible in Netron); other artifacts (OpenVINO IR, TensorRT sidecars)
carry the same key/value strings. The reader never trusts them: every value is parsed and range-checked, and a
file whose metadata is broken is refused in one line instead of sending a tool into a traceback or a 28 GB
allocation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cg_export.errors import BackendError

PREFIX = "cg_export."
PRECISIONS = ("fp32", "fp16", "int8")
FLOAT_LAYOUT = "NCHW"
UINT8_LAYOUT = "NHWC uint8 RGB"
FLOAT_RANGE = "[-1, 1]"
UINT8_RANGE = "[0, 255]"
# The largest size multiple any registered architecture has is 256 (unet_256); a few times that is still sane,
# anything beyond is a hostile or broken file.
MAX_SIZE_MULTIPLE = 4096
MAX_CHANNELS = 64
MAX_NGF = 4096


@dataclass(frozen=True)
class ArtifactMetadata:
    """The provenance and I/O contract cg-export records in every artifact it writes.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8``.
        size_multiple: Height and width must be multiples of this.
        architecture: The generator config (``create_generator(**architecture)`` rebuilds it).
        layout: ``NCHW`` (float32 in [-1, 1]) or ``NHWC uint8 RGB`` (camera bytes, ``--uint8-io``).
        value_range: ``[-1, 1]`` or ``[0, 255]``.
        source_checkpoint: The checkpoint it was exported from, as recorded at export.
        source_sha256: That checkpoint's content hash at export.
        source_format: Which implementation wrote the checkpoint.
        toolkit_version: The cg-export version that wrote the artifact.
        extra: Any other ``cg_export.*`` keys, unparsed.
    """

    precision: str = "fp32"
    size_multiple: int = 1
    architecture: dict[str, Any] = field(default_factory=dict)
    layout: str = FLOAT_LAYOUT
    value_range: str = FLOAT_RANGE
    source_checkpoint: str | None = None
    source_sha256: str | None = None
    source_format: str | None = None
    toolkit_version: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def uint8_io(self) -> bool:
        """Whether the model takes and returns uint8 NHWC RGB images."""
        return self.layout == UINT8_LAYOUT

    @property
    def ngf(self) -> int | None:
        """The generator's width, when the architecture is recorded."""
        value = self.architecture.get("ngf")
        return int(value) if isinstance(value, int) else None

    @property
    def in_channels(self) -> int:
        """Image channels the generator takes (3 unless recorded otherwise)."""
        return int(self.architecture.get("in_channels", 3))

    @property
    def out_channels(self) -> int:
        """Image channels the generator returns (3 unless recorded otherwise)."""
        return int(self.architecture.get("out_channels", 3))

    def to_props(self) -> dict[str, str]:
        """The ``cg_export.*`` key/value strings, as written into a file."""
        props = {
            "precision": self.precision,
            "size_multiple": str(self.size_multiple),
            "architecture": json.dumps(self.architecture, sort_keys=True),
            "layout": self.layout,
            "value_range": self.value_range,
            "source_checkpoint": self.source_checkpoint,
            "source_sha256": self.source_sha256,
            "source_format": self.source_format,
            "toolkit_version": self.toolkit_version,
            **self.extra,
        }
        return {PREFIX + key: value for key, value in props.items() if value is not None}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str | Path = "model") -> ArtifactMetadata:
        """Parse and check the ``cg_export.*`` keys of ``props`` (other keys are ignored).

        A file with no cg-export keys (exported by another tool) gets the defaults: fp32, NCHW, multiple 1.

        Raises:
            BackendError: a value is malformed or outside its sane range.
        """
        ours = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        known = {"precision", "size_multiple", "architecture", "layout", "value_range", "source_checkpoint",
                 "source_sha256", "source_format", "toolkit_version"}

        def bad(key: str, why: str) -> BackendError:
            return BackendError(f"{source}: its {PREFIX}{key} metadata {why}; re-export it with cg-export")

        precision = ours.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise bad("precision", f"is {precision!r}, not one of {', '.join(PRECISIONS)}")
        multiple_text = ours.get("size_multiple", "1")
        try:
            multiple = int(multiple_text)
        except ValueError:
            raise bad("size_multiple", f"is {multiple_text!r}, not a whole number") from None
        if not 1 <= multiple <= MAX_SIZE_MULTIPLE:
            raise bad("size_multiple", f"is {multiple}, outside 1..{MAX_SIZE_MULTIPLE}")
        try:
            architecture = json.loads(ours.get("architecture", "{}"))
        except json.JSONDecodeError:
            raise bad("architecture", "is not valid JSON") from None
        if not isinstance(architecture, dict):
            raise bad("architecture", "is not a JSON object")
        for key, limit in (("ngf", MAX_NGF), ("in_channels", MAX_CHANNELS), ("out_channels", MAX_CHANNELS)):
            value = architecture.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit):
                raise bad("architecture", f"has {key} {value!r}, outside 1..{limit}")
        layout = ours.get("layout", FLOAT_LAYOUT)
        if layout not in (FLOAT_LAYOUT, UINT8_LAYOUT):
            raise bad("layout", f"is {layout!r}, not {FLOAT_LAYOUT!r} or {UINT8_LAYOUT!r}")
        return cls(
            precision=precision,
            size_multiple=multiple,
            architecture=architecture,
            layout=layout,
            value_range=ours.get("value_range", UINT8_RANGE if layout == UINT8_LAYOUT else FLOAT_RANGE),
            source_checkpoint=ours.get("source_checkpoint"),
            source_sha256=ours.get("source_sha256"),
            source_format=ours.get("source_format"),
            toolkit_version=ours.get("toolkit_version"),
            extra={k: v for k, v in ours.items() if k not in known},
        )


def is_staging_path(path: str | Path) -> bool:
    """Whether ``path`` lies in an output still being written: a ``.NAME.*.part`` file or folder
    (:func:`cg_export.files.atomic_output`, deploy's ``replaced_folder``), which is renamed or removed when done.

    Such a path must not be recorded in an artifact as where it came from: it never exists under that name later.
    """
    return any(part.startswith(".") and part.endswith(".part") and len(part) > len("..part")
               for part in Path(path).resolve().parts)


def write_onnx_metadata(model: Any, metadata: ArtifactMetadata) -> None:
    """Set ``metadata`` in an ``onnx.ModelProto``'s ``metadata_props``, replacing keys already there."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in metadata.to_props().items():
        if key in existing:
            existing[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)


def onnx_props(model: Any) -> dict[str, str]:
    """An ``onnx.ModelProto``'s ``metadata_props`` as a dict."""
    return {prop.key: prop.value for prop in model.metadata_props}


def read_onnx_metadata(path: str | Path) -> ArtifactMetadata:
    """The checked metadata of an ONNX file, read without its weights or external data.

    Raises:
        BackendError: the file cannot be parsed as ONNX, or its metadata is broken.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, OSError ...: the file is not ONNX
        raise BackendError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    from cg_export.external_data import check_external_data

    check_external_data(path, model)
    return ArtifactMetadata.from_props(onnx_props(model), path)

