"""The engine sidecar: the JSON build record ``cg-export trt`` writes beside each engine, its writer and its reader.

Engines are tied to the TensorRT release and the GPU that built them, and a serialized engine says neither in a
way that can be read without loading it. ``<engine>.json`` records both (and the precision, profile, source and
parity), so loading an engine elsewhere fails with a message that says what to rebuild instead of TensorRT's own
deserialisation error, and tools describe an engine without a GPU.

The file (format ``cg-export.tensorrt-engine``, version 1) is a JSON object, keys sorted, indented by two::

    format, version, tensorrt_version, gpu {name, compute_capability}, dla_core, precision, strongly_typed,
    profiles [{input, min, opt, max}], source {path, kind, sha256, checkpoint_sha256}, size_multiple,
    layer_precisions {precision: count}, engine_bytes, build_seconds, built_at, toolkit_version,
    parity {reference, psnr_db, max_abs_err}   (only when the engine was verified)

The reader is lenient: a sidecar is a hint written by another build, so a missing or malformed field reads as
unknown rather than failing; a file that is not a cg-export sidecar reads as no sidecar.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cg_export import __version__
from cg_export.files import atomic_output
from cg_export.metadata import PRECISIONS, ArtifactMetadata

SIDECAR_FORMAT = "cg-export.tensorrt-engine"
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine is built for or runs on."""

    name: str
    compute_capability: str

    def describe(self) -> str:
        """``"Orin (compute capability 8.7)"``."""
        return f"{self.name} (compute capability {self.compute_capability})"


@dataclass(frozen=True)
class EngineProfile:
    """One optimization profile of an engine: its input's min / opt / max shapes."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class EngineSource:
    """What an engine was built from.

    Attributes:
        path: The source file, absolute.
        kind: ``"onnx"`` or ``"checkpoint"``.
        sha256: The source file's content hash.
        checkpoint_sha256: The generator checkpoint's content hash, when known (the source itself, or what the ONNX
            model records).
    """

    path: str | None = None
    kind: str | None = None
    sha256: str | None = None
    checkpoint_sha256: str | None = None


@dataclass(frozen=True)
class EngineParity:
    """How the engine compared with its reference when it was built."""

    reference: str
    psnr_db: float
    max_abs_err: float


@dataclass(frozen=True)
class EngineRecord:
    """The contents of an engine's sidecar. Fields read from another build's file may be ``None`` (unknown).

    Attributes:
        tensorrt_version: The TensorRT release that built the engine (``"10.3.0"``).
        gpu: The GPU it was built on.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        strongly_typed: Built as a strongly typed network (precision from the graph).
        profiles: Its optimization profiles.
        source: What it was built from.
        size_multiple: Height and width multiple the generator needs.
        layer_precisions: Layers per precision, from the engine inspector.
        engine_bytes: Size of the engine file, to tell a sidecar left from another build.
        build_seconds: Time in TensorRT's builder.
        built_at: When, ISO 8601 UTC.
        toolkit_version: The cg-export version that built it.
        dla_core: The DLA core it was built for, or ``None`` for the GPU.
        parity: The comparison with the reference, or ``None`` when not verified.
    """

    tensorrt_version: str | None = None
    gpu: GpuInfo | None = None
    precision: str | None = None
    strongly_typed: bool | None = None
    profiles: tuple[EngineProfile, ...] = ()
    source: EngineSource = EngineSource()
    size_multiple: int | None = None
    layer_precisions: dict[str, int] = field(default_factory=dict)
    engine_bytes: int | None = None
    build_seconds: float | None = None
    built_at: str | None = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    toolkit_version: str | None = __version__
    dla_core: int | None = None
    parity: EngineParity | None = None

    def to_json(self) -> dict[str, Any]:
        """The sidecar's JSON object."""
        record: dict[str, Any] = {
            "format": SIDECAR_FORMAT,
            "version": SIDECAR_VERSION,
            "tensorrt_version": self.tensorrt_version,
            "gpu": asdict(self.gpu) if self.gpu is not None else None,
            "dla_core": self.dla_core,
            "precision": self.precision,
            "strongly_typed": self.strongly_typed,
            "profiles": [{"input": p.input, "min": list(p.min), "opt": list(p.opt), "max": list(p.max)}
                         for p in self.profiles],
            "source": asdict(self.source),
            "size_multiple": self.size_multiple,
            "layer_precisions": dict(self.layer_precisions),
            "engine_bytes": self.engine_bytes,
            "build_seconds": self.build_seconds,
            "built_at": self.built_at,
            "toolkit_version": self.toolkit_version,
        }
        if self.parity is not None:
            record["parity"] = asdict(self.parity)
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineRecord:
        """Read a sidecar's JSON object; fields that are missing or of the wrong type become ``None``."""
        gpu = data.get("gpu")
        gpu_info = None
        if isinstance(gpu, dict) and (_text(gpu.get("name")) or _text(gpu.get("compute_capability"))):
            gpu_info = GpuInfo(_text(gpu.get("name")) or "?", _text(gpu.get("compute_capability")) or "")
        source = data.get("source") if isinstance(data.get("source"), dict) else {}
        layers = data.get("layer_precisions") if isinstance(data.get("layer_precisions"), dict) else {}
        parity = data.get("parity")
        parity_record = None
        if isinstance(parity, dict) and _number(parity.get("psnr_db")) is not None:
            parity_record = EngineParity(_text(parity.get("reference")) or "?", _number(parity["psnr_db"]),
                                         _number(parity.get("max_abs_err")))
        return cls(
            tensorrt_version=_text(data.get("tensorrt_version")),
            gpu=gpu_info,
            precision=_text(data.get("precision")),
            strongly_typed=data.get("strongly_typed") if isinstance(data.get("strongly_typed"), bool) else None,
            profiles=tuple(p for p in map(_profile, data.get("profiles") or ()) if p is not None)
            if isinstance(data.get("profiles"), list) else (),
            source=EngineSource(*(_text(source.get(k)) for k in ("path", "kind", "sha256", "checkpoint_sha256"))),
            size_multiple=_integer(data.get("size_multiple")),
            layer_precisions={k: v for k, v in layers.items() if isinstance(k, str) and _integer(v) is not None},
            engine_bytes=_integer(data.get("engine_bytes")),
            build_seconds=_number(data.get("build_seconds")),
            built_at=_text(data.get("built_at")),
            toolkit_version=_text(data.get("toolkit_version")),
            dla_core=_integer(data.get("dla_core")),
            parity=parity_record,
        )

    def metadata(self) -> ArtifactMetadata:
        """What the record says about the model, as the metadata every exported file carries."""
        precision = self.precision if self.precision in PRECISIONS else "fp32"
        return ArtifactMetadata(
            precision=precision, size_multiple=max(1, self.size_multiple or 1),
            source_checkpoint=self.source.path if self.source.kind == "checkpoint" else None,
            source_sha256=self.source.checkpoint_sha256,
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _profile(value: Any) -> EngineProfile | None:
    if not isinstance(value, dict) or not all(isinstance(value.get(k), list) for k in ("min", "opt", "max")):
        return None
    try:
        shapes = [tuple(int(d) for d in value[k]) for k in ("min", "opt", "max")]
    except (TypeError, ValueError):
        return None
    return EngineProfile(_text(value.get("input")) or "", *shapes)


def sidecar_path(engine_path: str | Path) -> Path:
    """``g_ab.engine`` -> ``g_ab.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | Path, record: EngineRecord) -> Path:
    """Write ``record`` beside ``engine_path`` atomically; return the sidecar's path."""
    path = sidecar_path(engine_path)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(engine_path: str | Path) -> EngineRecord | None:
    """The build record written beside an engine, or ``None`` when there is none (or it is not ours)."""
    try:
        data = json.loads(sidecar_path(engine_path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        return None
    return EngineRecord.from_json(data)


def read_engine_metadata(engine_path: str | Path) -> ArtifactMetadata | None:
    """What an engine's sidecar records (precision, size multiple, source); ``None`` without a sidecar.

    The TensorRT row's metadata reader in :data:`cg_export.formats.FORMATS`: it needs no TensorRT.
    """
    record = read_sidecar(engine_path)
    return record.metadata() if record is not None else None


def compatibility_problem(
    engine_path: str | Path, record: EngineRecord | None, version: str, gpu: GpuInfo
) -> str | None:
    """Why an engine cannot load here according to its sidecar, or ``None`` when nothing speaks against it.

    TensorRT refuses plans from another TensorRT release, and kernels are compiled for one compute capability.
    """
    if not record:
        return None
    rebuild = f"rebuild it here: cg-export trt {record.source.path or 'MODEL.onnx'}"
    built_version = record.tensorrt_version or ""
    if built_version and built_version.split(".")[:3] != str(version).split(".")[:3]:
        return (
            f"{engine_path} was built with TensorRT {built_version} but this machine has TensorRT {version}; "
            f"an engine only loads in the TensorRT release that built it: {rebuild}"
        )
    capability = record.gpu.compute_capability if record.gpu else ""
    if capability and capability != gpu.compute_capability:
        return (
            f"{engine_path} was built for {record.gpu.name} (compute capability {capability}) but this "
            f"GPU is {gpu.describe()}; engines hold kernels for one GPU architecture: {rebuild}"
        )
    return None
