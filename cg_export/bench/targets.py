"""What to benchmark (:class:`BenchTarget`) and what to measure parity against (:class:`Reference`).

Which runtime opens a file, and what an exported file records about its source checkpoint, come from the formats
table (:mod:`cg_export.formats`, through :mod:`cg_export.backends`); nothing here looks at a file's suffix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cg_export.backends import Runner, backend_for, is_checkpoint, model_file, runner_for
from cg_export.backends.registry import read_artifact_metadata
from cg_export.errors import CgExportError, OptionError
from cg_export.files import sha256_of
from cg_export.formats import format_named
from cg_export.metadata import ArtifactMetadata
from cg_export.threads import check_threads

REFERENCE_HINT = "pass --reference CHECKPOINT to measure parity"


@dataclass(frozen=True)
class BenchTarget:
    """Something to benchmark: a label for the report and how to make its (inactive) runner.

    Attributes:
        label: The ``model`` column (the file as given, or a description of a variant).
        open_runner: Builds the runner; may raise :class:`CgExportError` (missing runtime, unloadable file),
            which turns the target's rows into unavailable rows carrying the message.
        path: The model file, when there is one (used to check it against the reference).
    """

    label: str
    open_runner: Callable[[], Runner]
    path: Path | None = None


def targets_from_files(
    paths: Iterable[str | Path],
    *,
    device: str | None = None,
    half: bool | None = None,
    channels_last: bool | None = None,
    provider: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
) -> list[BenchTarget]:
    """One target per model file; the formats table picks its runtime (:func:`~cg_export.backends.runner_for`).

    Args:
        paths: Model files of any format of :data:`cg_export.formats.FORMATS`, or a folder ``cg-export deploy``
            wrote (its chosen artifact; the label stays the folder).
        device: PyTorch device (``auto``, ``cpu``, ``cuda``, ``cuda:1``); default
            :data:`cg_export.devices.DEFAULT_DEVICE`.
        half: Run PyTorch checkpoints in fp16.
        channels_last: Run PyTorch checkpoints in the channels-last memory format.
        provider: ONNX Runtime execution provider (``CUDAExecutionProvider`` or ``cpu``/``cuda``/``tensorrt``);
            default: the fastest installed.
        backend: Run every file with this backend (``openvino`` runs ``.onnx`` files too); ``None``: the table's
            default for each file.
        threads: CPU threads each model runs with; default :func:`cg_export.threads.default_threads`.

    Raises:
        CgExportError: a file is missing or has an extension no backend reads.
    """
    check_threads(threads)
    options = {"device": device, "half": half, "channels_last": channels_last, "threads": threads,
               "providers": [provider] if provider else None}
    targets = []
    for given in map(Path, paths):
        backend_for(given, backend)  # an unknown kind of file is refused before anything runs
        if not given.exists():
            raise CgExportError(f"{given}: no such file")
        path = model_file(given)  # a deployment folder's chosen artifact, an OpenVINO IR folder's .xml
        targets.append(BenchTarget(str(given), lambda p=path: runner_for(p, backend, **options), path))
    return targets


@dataclass(frozen=True)
class Reference:
    """The PyTorch checkpoint parity is measured against, or why there is none.

    Attributes:
        path: The checkpoint, or ``None``.
        reason: Where it came from (``"given with --reference"`` ...) or why there is none.
    """

    path: Path | None
    reason: str

    def describe(self) -> str:
        """One line for the report."""
        return f"{self.path} ({self.reason})" if self.path else f"none: {self.reason}"


def find_reference(models: Iterable[str | Path], reference: str | Path | None = None) -> Reference:
    """Find the PyTorch fp32 reference for parity.

    In order: ``reference`` if given; else the first PyTorch checkpoint among ``models``; else the source
    checkpoint recorded in an ONNX model's metadata (``cg_export.source_checkpoint``), if that file still exists and
    its SHA-256 is the one recorded at export (``cg_export.source_sha256``); else none, with the reason.

    Raises:
        CgExportError: ``reference`` is given but missing or not a PyTorch checkpoint.
    """
    if reference is not None:
        reference = Path(reference)
        if not is_checkpoint(reference):
            suffixes = " or ".join(format_named("torch").suffixes)
            raise OptionError("reference", reference, f"expected a PyTorch checkpoint ({suffixes})")
        if not reference.is_file():
            raise OptionError("reference", reference, "no such file")
        return Reference(reference, "given with --reference")
    paths = [model_file(m) for m in models]
    for path in paths:
        if is_checkpoint(path):
            return Reference(path, "the PyTorch checkpoint among the models")
    problems = []
    for path in paths:
        meta = _recorded_metadata(path)
        if meta is None:
            continue
        source = meta.source_checkpoint
        if not source:
            problems.append(f"{path} records no source checkpoint")
            continue
        source_path = Path(source)
        if not source_path.is_file():
            problems.append(f"{path} was exported from {source_path}, which does not exist here")
            continue
        recorded = meta.source_sha256
        # Exports record the weights' digest (older ones the file's): the same weights re-saved still match.
        if recorded and sha256_of(source_path) != recorded and _weights_sha256(source_path) != recorded:
            problems.append(f"{source_path} has changed since {path} was exported from it (its SHA-256 differs)")
            continue
        return Reference(source_path, f"the source checkpoint recorded in {path}")
    if not problems:
        problems.append("no PyTorch checkpoint among the models and no ONNX model recording its source")
    return Reference(None, f"{'; '.join(problems)}; {REFERENCE_HINT}")


def _weights_sha256(path: Path) -> str | None:
    """The digest of a checkpoint's weights, or ``None`` when it cannot be loaded (its runner will say why)."""
    try:
        from cg_export.models import load_generator

        return load_generator(path).weights_sha256
    except (CgExportError, ImportError):
        return None


def _recorded_metadata(path: Path) -> ArtifactMetadata | None:
    """What an exported file records, or ``None`` (a checkpoint, a missing or unreadable file: its runner will say)."""
    if not path.is_file():
        return None
    try:
        return read_artifact_metadata(path)
    except CgExportError:
        return None
