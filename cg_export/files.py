"""File handling shared by every writer: atomic outputs, the check that no output lands on an input, and content
hashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cg_export.errors import OutputError


class InputFiles:
    """The files a command reads (model, images, videos, calibration photographs), so that no output replaces one.

    Paths are compared after resolving symlinks, and by device and inode, so neither a symlink nor a hard link to an
    input lets an output overwrite it.

    Args:
        paths: The input files (folders among them are not expanded: pass the files found in them).
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]] = ()):
        self._resolved: set[Path] = set()
        self._inodes: set[tuple[int, int]] = set()
        for path in paths:
            self.add(path)

    def add(self, path: str | os.PathLike[str]) -> None:
        """Protect one more input file."""
        self._resolved.add(Path(path).resolve())
        try:
            stat = os.stat(path)
        except OSError:
            return
        self._inodes.add((stat.st_dev, stat.st_ino))

    def holds(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is (or points at) one of the inputs."""
        if Path(path).resolve() in self._resolved:
            return True
        try:
            stat = os.stat(path)
        except OSError:
            return False
        return (stat.st_dev, stat.st_ino) in self._inodes

    def refuse(self, output: str | os.PathLike[str], option: str = "-o") -> None:
        """Raise :class:`OutputError` if writing ``output`` would replace an input.

        Args:
            output: Where a command is about to write.
            option: The option that named it, for the message.
        """
        if self.holds(output):
            raise OutputError(f"{option} {output}: is one of this command's inputs; refusing to overwrite the "
                              "input, choose another output")


def check_output_file(path: str | os.PathLike[str], option: str = "-o") -> None:
    """Refuse, before any work, an output file that cannot be written: an existing folder, or a folder under which
    a part of the path is an existing file.

    Raises:
        OutputError: with what is in the way.
    """
    final = Path(path)
    if final.is_dir():
        raise OutputError(f"{option} {final}: is a folder; give a file name")
    _check_folder(final.parent, option)


def check_output_folder(path: str | os.PathLike[str], option: str = "-o") -> None:
    """Refuse, before any work, an output folder that is an existing file (or lies under one).

    Raises:
        OutputError: with what is in the way.
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise OutputError(f"{option} {final}: is an existing file, not a folder; give a folder for several inputs")
    _check_folder(final, option)


def _check_folder(folder: Path, option: str) -> None:
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                raise OutputError(f"{option}: {part} is an existing file, not a folder")
            if not os.access(part, os.W_OK | os.X_OK):
                raise OutputError(f"{option}: cannot write in {part} (permission denied); choose another output")
            return


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is flushed to disk and renamed onto ``path``.

    On any exception (a failed verification, Ctrl-C) the temporary file is removed and ``path`` keeps whatever it
    held before, so a reader never sees a half-written file and a user never loses a good one.

    Args:
        path: The final output path. Its folder is created if needed.

    Raises:
        OutputError: ``path`` is a folder, or its folder cannot be made or written in (one line, before any work).

    Yields:
        The temporary path to write to (same folder, so the rename is atomic).
    """
    final = Path(path)
    if final.is_dir():
        raise OutputError(f"{final}: is a folder; give a file name")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{final}: a part of the path is an existing file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"{final}: cannot write there ({exc.strerror or exc})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the output the permissions any new file of the user's would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        # fsync before the rename: after a power cut the new name must point at complete data.
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_of(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
