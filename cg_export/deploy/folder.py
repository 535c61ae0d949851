"""The deployment folder, replaced as a whole: built beside its final place, then swapped in.

A failed or interrupted run removes its half-built folder and leaves an earlier deployment as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cg_export.backends.registry import DEPLOY_MANIFEST
from cg_export.deploy.photos import DeployError
from cg_export.files import note_written, record_outputs


def check_output_folder(folder: Path) -> None:
    """Refuse an output that is a file, or a non-empty folder that is not an earlier deployment.

    Raises:
        DeployError: ``folder`` cannot be (re)placed by a deployment.
    """
    if folder.exists() and not folder.is_dir():
        raise DeployError(f"-o {folder}: is a file; choose a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / DEPLOY_MANIFEST).is_file():
        raise DeployError(f"-o {folder}: the folder holds files and no {DEPLOY_MANIFEST}, so it is not an earlier "
                          "deployment; choose an empty or new folder")


@contextmanager
def replaced_folder(final: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``final``; on success it takes ``final``'s place, else it is removed.

    The earlier folder is renamed aside, the new one renamed in, then the earlier one deleted: both renames stay on
    one file system, and at no moment is a half-written deployment visible under ``final``.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    # mkdtemp makes 0700 folders; give the deployment the permissions any new folder of the user's would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(build, 0o777 & ~umask)
    existed = final.exists()
    old: Path | None = None
    try:
        # The files written inside the build folder are not outputs yet: only the swapped-in folder is one.
        with record_outputs():
            yield build
        if existed:
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(build, final)
        else:
            os.replace(build, final)
    except BaseException as exc:
        # Stopped between the two renames: the earlier deployment goes back where it was.
        if old is not None and not final.exists() and (old / final.name).exists():
            os.replace(old / final.name, final)
        shutil.rmtree(build, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            exc.unwritten_outputs = [(final, existed)]  # not the files inside the removed build folder
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    note_written(final)


def read_manifest(folder: str | Path) -> dict:
    """A deployment's ``deploy.json``.

    Raises:
        DeployError: the folder holds no readable ``deploy.json``.
    """
    path = Path(folder) / DEPLOY_MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path}: not a readable deployment manifest ({exc})") from None


__all__ = ["check_output_folder", "read_manifest", "replaced_folder"]
