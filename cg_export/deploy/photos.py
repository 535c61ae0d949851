"""The user's photographs, split once into a calibration part and a held-out verification part.

The split is made here and nowhere else: int8 calibration sees only :attr:`PhotoSplit.calibration` (through a
folder holding just those files) and every candidate is verified only on :attr:`PhotoSplit.verification`, so no
candidate is ever judged on a photograph it was calibrated on.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cg_export.errors import CgExportError, ImageError, OptionError
from cg_export.images import IMAGE_SUFFIXES, load_image

MIN_CALIBRATION = 2
MIN_VERIFICATION = 2
MAX_CALIBRATION = 32
MAX_VERIFICATION = 8


class DeployError(CgExportError):
    """``cg-export deploy`` cannot run with these inputs (a one-line reason; nothing was written)."""


class DeployOptionError(OptionError, DeployError):
    """An argument of :func:`cg_export.deploy.deploy` has a value it cannot take; carries the field's name."""


@dataclass
class PhotoSplit:
    """The photographs deploy uses.

    Attributes:
        folder: The ``--photos`` folder.
        calibration: Files int8 is calibrated on (empty when no candidate needs calibration).
        verification: ``(file, uint8 RGB image)`` of the held-out photographs every candidate is verified on.
        skipped: Unreadable files, with the reason.
    """

    folder: Path
    calibration: list[Path] = field(default_factory=list)
    verification: list[tuple[Path, np.ndarray]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def label(self, path: Path) -> str:
        """A photograph's name in reports: its path inside the folder."""
        return path.relative_to(self.folder).as_posix()

    def write_calibration_folder(self, folder: Path) -> Path:
        """A folder holding only the calibration photographs (links where possible, else copies)."""
        folder.mkdir(parents=True)
        for index, path in enumerate(self.calibration):
            link = folder / f"{index:03d}-{path.name}"  # numbered: sub-folders may repeat a name
            try:
                os.symlink(path.resolve(), link)
            except OSError:
                shutil.copy2(path, link)
        return folder


def split_photos(folder: str | Path, calibrate: bool) -> PhotoSplit:
    """Read ``folder`` (recursively, sorted) and split it: alternate photographs are held out for verification.

    Alternating keeps both parts spread over the whole folder (a folder sorted by time or by scene gives both
    parts every scene). Up to :data:`MAX_VERIFICATION` are held out and up to :data:`MAX_CALIBRATION` calibrate.

    Args:
        folder: The user's photographs.
        calibrate: Whether a candidate needs calibration photographs (int8); without, all are held out.

    Raises:
        DeployError: no such folder, no photographs, or fewer readable ones than calibration and verification need.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DeployOptionError("photos", folder, "no such folder; point it at a folder of your own photographs")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DeployOptionError("photos", folder, f"no photographs found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    split = PhotoSplit(folder)
    readable: list[tuple[Path, np.ndarray]] = []
    for path in files:
        try:
            readable.append((path, load_image(path)))
        except ImageError as exc:
            split.skipped.append(str(exc))
        if len(readable) >= MAX_CALIBRATION + MAX_VERIFICATION:
            break
    need = MIN_CALIBRATION + MIN_VERIFICATION if calibrate else MIN_VERIFICATION
    if len(readable) < need:
        why = (f"{MIN_CALIBRATION} to calibrate int8 on and {MIN_VERIFICATION} held out to verify on"
               if calibrate else f"{MIN_VERIFICATION} to verify on")
        skipped = f" ({len(split.skipped)} unreadable)" if split.skipped else ""
        raise DeployOptionError("photos", folder, f"{len(readable)} readable photograph(s){skipped}; deploy needs at "
                                f"least {need}: {why}")
    if calibrate:
        split.verification = readable[1::2][:MAX_VERIFICATION]
        held_out = {path for path, _ in split.verification}
        split.calibration = [path for path, _ in readable if path not in held_out][:MAX_CALIBRATION]
    else:
        split.verification = readable[:MAX_VERIFICATION]
    return split


__all__ = ["MAX_CALIBRATION", "MAX_VERIFICATION", "MIN_CALIBRATION", "MIN_VERIFICATION", "DeployError", "PhotoSplit",
           "split_photos"]
