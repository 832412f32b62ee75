"""Where outputs may go: never onto an input or another output, never in place of a device,
and one run at a time per output.

A run checks every output path against its inputs and its other outputs before anything is
opened (:func:`check_outputs`): the same file reached by the same path, a hard link or a
symbolic link is refused with one line. An output that is a character device or a FIFO
(``/dev/null``, a pipe) is written through, never replaced by a regular file
(:func:`writes_through`); other special files are refused. While a run writes an output it holds
:class:`OutputLock`, so a second run on the same output says so and stops instead of mixing
its frames into the first run's file. Temporary names stay within the file-name length limit
(:func:`temp_prefix`), so a legal output name always works, and a temporary file has the
permissions its output will keep (:func:`create_temp_beside`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

# The longest file name most file systems take (ext4, XFS, APFS, NTFS: 255).
NAME_MAX = 255
# What a temporary name adds to its prefix: 8 random characters, plus the sinks' suffix (".tmp").
_TEMP_EXTRA = 8 + 8


class OutputConflictError(ValueError):
    """Outputs that would destroy an input or each other (a command-line mistake)."""


class OutputBusyError(RuntimeError):
    """Another run is writing the same output."""


def _identity(path: str | os.PathLike) -> tuple:
    """What tells two paths apart: the file's device and inode when it exists (a hard or
    symbolic link gives the same), else its absolute path with every link resolved."""
    try:
        found = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("inode", found.st_dev, found.st_ino)


def writes_through(path: str | os.PathLike) -> bool:
    """True when ``path`` is a character device or a FIFO: written to as it is, never
    replaced (no temporary file, no rename)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def check_outputs(
    outputs: Mapping[str, str | os.PathLike], inputs: Mapping[str, str | os.PathLike]
) -> None:
    """Raise :class:`OutputConflictError` when an output is an input, another output, a folder or
    a special file that cannot be written through. Keys name each path for the message
    (``"--save-json"``, ``"the input"``)."""
    seen: dict[tuple, str] = {}
    for label, path in inputs.items():
        seen.setdefault(_identity(path), label)
    for label, path in outputs.items():
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            raise OutputConflictError(f"{label} {path} is a folder, not a file")
        if mode is not None and not (stat.S_ISREG(mode) or writes_through(path)):
            raise OutputConflictError(
                f"{label} {path} is a special file (not a regular file, character device or "
                "FIFO): refusing to write it"
            )
        key = _identity(path)
        other = seen.get(key)
        if other is not None and not writes_through(path):
            raise OutputConflictError(
                f"{label} {path} is the same file as {other}: writing it would destroy it"
            )
        seen[key] = f"{label} {path}"


def temp_prefix(path: Path) -> str:
    """A hidden temporary name's prefix for ``path`` that keeps the whole name (plus what
    ``tempfile.mkstemp`` adds) within :data:`NAME_MAX`."""
    room = NAME_MAX - _TEMP_EXTRA - 2
    return f".{path.name[:room]}."


def create_temp_beside(path: Path, suffix: str) -> tuple[int, str]:
    """A new hidden file beside ``path`` to write it whole before it takes its place: the
    descriptor (open for writing) and the name. Its permissions are those of the file it will
    replace, else a new file's (0o666 less the umask): ``tempfile.mkstemp``'s private 0o600
    would stay on the output once renamed."""
    try:
        found = os.stat(path)
        keep = stat.S_IMODE(found.st_mode) if stat.S_ISREG(found.st_mode) else None
    except OSError:
        keep = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        name = os.path.join(path.parent, f"{temp_prefix(path)}{secrets.token_hex(4)}{suffix}")
        try:
            handle = os.open(name, flags, 0o666)
        except FileExistsError:
            continue
        if keep is not None:
            os.chmod(name, keep)
        return handle, name


class OutputLock:
    """Held while a run writes ``path``: a second run on the same output gets
    :class:`OutputBusyError` (naming the first's process) before it opens or truncates anything.

    The lock is an OS lock (``flock``; ``msvcrt.locking`` on Windows) on a hidden file beside
    the output, removed on release; the OS drops the lock of a killed process, so a stale
    file never blocks a later run.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        target = Path(os.path.realpath(path))
        digest = hashlib.sha1(target.name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.path = target.parent / f".hfpose-{digest}.lock"
        self.output = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                try:
                    holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "?"
                except OSError:  # Windows: the locked byte cannot be read
                    holder = "?"
                os.close(fd)
                raise OutputBusyError(
                    f"{self.output} is being written by another run ({holder}): wait for it "
                    "to finish, or choose another name"
                )
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == (
                mine.st_dev,
                mine.st_ino,
            ):
                break
            os.close(fd)  # the holder removed it as we opened it: take the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False when another process has it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
