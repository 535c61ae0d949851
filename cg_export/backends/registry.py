"""Which runtime opens which file: :func:`runner_for`, read from the formats table (:mod:`cg_export.formats`).

Every tool opens models through :func:`runner_for`; nothing else in the toolkit looks at a model file's suffix to
decide how to run it. A deployment folder (``cg-export deploy``'s output) stands for its chosen artifact and an
OpenVINO IR folder for its ``.xml``, so every tool takes those folders too.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from cg_export.backends.base import Runner
from cg_export.errors import BackendError, MissingDependencyError
from cg_export.formats import (
    DEPLOY_MANIFEST,
    FORMATS,
    MODEL_SUFFIXES,
    Format,
    format_named,
    format_of_suffix,
    load_reference,
)
from cg_export.metadata import ArtifactMetadata


def deployment_artifact(path: str | Path) -> Path:
    """The chosen model file of a deployment folder (a folder holding ``deploy.json``); any other path unchanged.

    Raises:
        BackendError: the manifest is unreadable, or names no file inside the folder.
    """
    path = Path(path)
    manifest = path / DEPLOY_MANIFEST
    if not path.is_dir() or not manifest.is_file():
        return path
    try:
        artifact = json.loads(manifest.read_text()).get("artifact")
    except (OSError, ValueError, AttributeError) as exc:
        raise BackendError(f"{manifest}: not a readable deployment manifest ({exc})") from None
    chosen = path / artifact if isinstance(artifact, str) and artifact else None
    # Only a file inside the folder: a manifest must not send a tool to run a model from elsewhere.
    if chosen is None or Path(artifact).is_absolute() or ".." in Path(artifact).parts or not chosen.exists():
        raise BackendError(f"{manifest}: its artifact {artifact!r} is not a file in {path}; run cg-export deploy again")
    return chosen


def model_file(path: str | Path) -> Path:
    """The model file ``path`` stands for: itself; a deployment folder's chosen artifact
    (:func:`deployment_artifact`); or, for a folder holding one model of a folder-shaped format (an OpenVINO IR),
    that file.

    Raises:
        BackendError: a deployment manifest is broken, or the folder holds no such model, or several.
    """
    path = deployment_artifact(path)
    if not path.is_dir():
        return path
    kinds = [row.folder_suffix for row in FORMATS if row.folder_suffix]
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in kinds)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise BackendError(f"{path}: a model folder must hold exactly one {' or '.join(kinds)} model; it holds {what}"
                           + (f" ({', '.join(p.name for p in found)}): name the file" if found else ""))
    return found[0]


def backend_for(path: str | Path, backend: str | None = None) -> Format:
    """The format row whose runner opens ``path`` (a file, or a folder :func:`model_file` resolves): the one named
    by ``backend`` (a runtime or format name), or the one its suffix belongs to.

    Raises:
        BackendError: no such file or folder (a path with no suffix), the suffix belongs to no format, or the named
            runtime does not open such files.
    """
    given = Path(path)
    if not given.exists() and not given.suffix:
        # A mistyped folder (or a bare name) has no suffix to judge by: say what is wrong with it.
        raise BackendError(f"{given}: no such file or folder")
    suffix = model_file(given).suffix.lower()
    if backend is not None:
        row = format_named(backend)
        if suffix not in row.suffixes + row.also_opens:
            opens = ", ".join(row.suffixes + row.also_opens)
            raise BackendError(f"{path}: the {row.backend} backend opens {opens} files, not {suffix!r}")
        return row
    row = format_of_suffix(suffix)
    if row is None:
        raise BackendError(f"{path}: unknown model type {suffix!r}; expected one of {', '.join(MODEL_SUFFIXES)}, "
                           "a deployment folder or an OpenVINO IR folder")
    return row


def read_artifact_metadata(path: str | Path) -> ArtifactMetadata | None:
    """What an exported file records about itself (precision, source checkpoint ...), read without a runtime.

    Returns ``None`` for files that are not exports (PyTorch checkpoints) or record nothing (an engine without its
    sidecar).

    Raises:
        BackendError: no format opens the file, or its metadata is unreadable or broken.
    """
    path = model_file(path)
    row = backend_for(path)
    if row.metadata_reader is None:
        return None
    return load_reference(row.metadata_reader)(path)  # type: ignore[operator]


def runner_for(path: str | Path, backend: str | None = None, **options: Any) -> Runner:
    """An inactive runner for a model file, from the formats table.

    Args:
        path: The model file, a deployment folder (its chosen artifact) or a folder holding one OpenVINO IR.
        backend: A runtime (or format) name to use instead of the suffix's default (``openvino`` runs ``.onnx``).
        **options: Runner options; the ones the chosen runner does not take, and ``None`` values, are dropped, so
            a caller can pass one set of options for files of every kind.

    Raises:
        BackendError: no format opens the file.
        MissingDependencyError: the runtime the format needs is not installed.
    """
    path = model_file(path)
    row = backend_for(path, backend)
    module_name, class_name = row.runner.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise BackendError(f"{path}: this cg-export installation has no {row.runtime} backend ({module_name}); "
                               "reinstall cg-export") from None
        if exc.name is None or exc.name.split(".")[0] not in row.requirement.imports:
            raise
        raise MissingDependencyError(row.requirement.package, f"to run {row.runtime} models",
                                     row.requirement.install) from None
    runner_class: type[Runner] = getattr(module, class_name)
    accepted = {k: v for k, v in options.items() if k in row.runner_options and v is not None}
    return runner_class.from_file(path, **accepted)


__all__ = ["DEPLOY_MANIFEST", "FORMATS", "MODEL_SUFFIXES", "backend_for", "deployment_artifact", "format_named",
           "model_file", "read_artifact_metadata", "runner_for"]
