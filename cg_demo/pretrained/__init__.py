"""The demo's pretrained generator: the full demo's training recipe, run for much longer, shipped with the package.

``cg-demo`` trains its own generator in a few minutes; that is too short for CycleGAN to learn the poster style
on a CPU. So the package also carries ``poster_G_AB.pt`` (about 1 MB), made by ``cg-train`` on the same embedded
data with the same options and seed, only with more epochs, and ``poster_G_AB.json``, the record of how: the data
and training commands, the seed, the epochs and steps, the wall-clock time, the machine and the checkpoint's
SHA-256. ``benchmarks/pretrain_demo_generator.py`` makes both files again (and is what made them).

The demo shows both generators side by side and deploys whichever is closer to the true poster prints.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cg_export.errors import CgExportError

#: The shipped checkpoint and its record, inside this package.
PRETRAINED_CHECKPOINT = Path(__file__).with_name("poster_G_AB.pt")
PRETRAINED_RECORD = Path(__file__).with_name("poster_G_AB.json")
RECORD_FORMAT = "cg-export.demo-pretrained"


@dataclass(frozen=True)
class PretrainedRecord:
    """How the shipped generator was made.

    Attributes:
        sha256: SHA-256 of ``poster_G_AB.pt``: the checkpoint is used only if it still matches.
        options: The ``cg-train`` options it was trained with (the full demo plan's, with more epochs).
        data_command: The command that made the training data (the demo's own dataset, same seed).
        train_command: The ``cg-train`` command, as run.
        epochs: Epochs trained.
        steps: Optimisation steps trained.
        seconds: Wall-clock training time.
        machine: Where it trained (CPU model and cores, or the GPU).
        software: Python, torch and cg-export versions of that run.
        trained: Date (UTC) the run ended.
        distance: Its mean abs difference and SSIM to the true poster prints of the held-out photographs, as
            measured when it was recorded (the demo measures it again).
        data_options: The arguments of :func:`cg_demo.data.make_demo_dataset` that made its training data
            (checked byte for byte against the run's data when it was recorded).
    """

    sha256: str
    options: dict[str, Any]
    data_command: str
    train_command: str
    epochs: int
    steps: int
    seconds: float
    machine: str
    software: str
    trained: str
    distance: dict[str, float] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)

    @property
    def minutes(self) -> float:
        """Training time in minutes."""
        return self.seconds / 60

    def to_json(self) -> dict[str, Any]:
        """The record as written to ``poster_G_AB.json``."""
        return {"format": RECORD_FORMAT, **asdict(self)}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def read_record(record: Path = PRETRAINED_RECORD) -> PretrainedRecord:
    """Read a pretrained generator's record.

    Raises:
        CgExportError: the record is missing, not JSON, or not a record of this format.
    """
    try:
        values = json.loads(record.read_text())
    except FileNotFoundError:
        raise CgExportError(f"{record}: the demo's pretrained generator record is missing; reinstall cg-export "
                            "or run benchmarks/pretrain_demo_generator.py") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CgExportError(f"{record}: cannot read the pretrained generator record ({exc})") from None
    if not isinstance(values, dict) or values.pop("format", None) != RECORD_FORMAT:
        raise CgExportError(f"{record}: not a cg-demo pretrained generator record")
    try:
        return PretrainedRecord(**values)
    except TypeError as exc:
        raise CgExportError(f"{record}: unexpected pretrained generator record ({exc})") from None


def pretrained_generator(checkpoint: Path = PRETRAINED_CHECKPOINT,
                         record: Path = PRETRAINED_RECORD) -> tuple[Path, PretrainedRecord]:
    """The shipped generator and its record, checked against each other.

    Raises:
        CgExportError: either file is missing or unreadable, or the checkpoint is not the one the record describes.
    """
    made = read_record(record)
    if not checkpoint.is_file():
        raise CgExportError(f"{checkpoint}: the demo's pretrained generator is missing; reinstall cg-export")
    actual = file_sha256(checkpoint)
    if actual != made.sha256:
        raise CgExportError(f"{checkpoint}: SHA-256 {actual[:12]}... is not the recorded {made.sha256[:12]}...; "
                            "the file was changed or truncated: reinstall cg-export")
    return checkpoint, made
