"""File handling shared by every writer: atomic outputs, the check that no output lands on an input, and content
hashes."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
        raise OutputError(f"{final}: cannot write there ({exc.strerror or exc}; {free_space(final.parent)})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the output the permissions any new file of the user's would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    existed = final.exists()
    renaming = False
    try:
        yield tmp
        # fsync before the rename: after a power cut the new name must point at complete data.
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        renaming = True
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in STORAGE_FULL_ERRORS:
            raise OutputError(f"{final}: {exc.strerror or os.strerror(exc.errno)} while writing it "
                              f"({free_space(final.parent)}); nothing was written, an earlier file there is kept") from None
        raise
    except BaseException as exc:
        if renaming and not tmp.exists():
            note_written(final)  # the signal came just after the rename: the new file is complete and in place
            raise
        tmp.unlink(missing_ok=True)
        if isinstance(exc, KeyboardInterrupt):
            # What the interruption message says: which output it stopped, and whether an earlier one is kept.
            exc.unwritten_outputs = [*getattr(exc, "unwritten_outputs", []), (final, existed)]
        raise
    note_written(final)


#: Errors of a storage that cannot take the output: full, over quota, read-only, file too large.
STORAGE_FULL_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})

#: The outputs :func:`atomic_output` completed, while a :func:`record_outputs` is open.
_WRITTEN: ContextVar[list[Path] | None] = ContextVar("cg_export_written_outputs", default=None)


@contextmanager
def record_outputs() -> Iterator[list[Path]]:
    """Collect, while inside, the paths every :func:`atomic_output` completed (so an interrupted command can say
    what it had written); the previous collection, if any, comes back on the way out.

    Yields:
        The list the written paths are appended to, in order.
    """
    written: list[Path] = []
    token = _WRITTEN.set(written)
    try:
        yield written
    finally:
        _WRITTEN.reset(token)


def note_written(path: Path) -> None:
    """Add ``path`` to the open :func:`record_outputs` collection, if any: an output completed (renamed in)."""
    journal = _WRITTEN.get()
    if journal is not None:
        journal.append(path)


def free_space(folder: str | os.PathLike[str]) -> str:
    """``"12.3 MB free on /data"``: what the file system holding ``folder`` has left, for error messages."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if free >= size:
            return f"{free / size:.1f} {unit} free on {folder}"
    return f"{free} bytes free on {folder}"


def sha256_of(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
