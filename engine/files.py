"""Writing files safely: atomically, never over an input or a write-protected file, no temporaries left.

:func:`atomic_write` writes a temporary file in the same folder, fsyncs it, then ``os.replace``s it over
the real name: a crash, a full disk or a failing writer never leaves a half-written file under the real
name, and the previous file of that name stays intact. A temporary left by a killed process is removed
by the next write of the same name (:func:`remove_stale_temporaries`): only a file named exactly as
this module names that target's temporaries, never another file that merely looks like one.

:func:`check_output` is the one guard every command and the app apply to a file they are about to write,
before any work: the folder exists and takes files, the name is not a folder, a device or a FIFO, not a
write-protected file, and not one of the command's own inputs (``export --checkpoint a.pt --out a.pt``).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from engine.errors import UserError

# .NAME.digit-studio-PID-RANDOM.tmp (NAME: the target's name, at most 100 characters; RANDOM: tempfile's 8
# characters): this program's mark, and the writer's process id to tell a live write from a killed one's
_TEMPORARY = r"^\.{name}\.digit-studio-(\d+)-[a-z0-9_]{{8}}\.tmp$"
_NAME_LIMIT = 100
STALE_AFTER_S = 24 * 3600  # a temporary this old is stale even if its process id is alive again


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], object]) -> Path:
    """Call ``write(temporary_path)``, make the result durable, then move it to ``path``.

    Raises OSError (with the temporary file removed) when anything fails, and before writing anything
    when ``path`` is a folder, not a regular file, or write-protected.
    """
    folder = path.parent if str(path.parent) else Path(".")
    _check_replaceable(path)
    remove_stale_temporaries(folder, path.name)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name[:_NAME_LIMIT]}.digit-studio-{os.getpid()}-", suffix=".tmp", dir=folder
    )
    os.close(fd)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; these files are meant to be shared
        write(tmp_name)
        with open(tmp_name, "rb+") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    _fsync_dir(folder)
    return path


def _check_replaceable(path: Path) -> None:
    """OSError unless ``path`` is absent or a regular file its owner may write (root included)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "it is a folder", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "it is not a regular file", str(path))
    if not info.st_mode & 0o222:
        raise PermissionError(errno.EACCES, "the file is write-protected", str(path))


def remove_stale_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the temporaries :func:`atomic_write` left in ``folder`` for a target ``name`` when its process
    was killed; with no ``name``, for any target (only in a folder the app alone writes, its autosaves)."""
    pattern = re.compile(_TEMPORARY.format(name=re.escape(name[:_NAME_LIMIT]) if name is not None else ".+"))
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        try:
            pid = int(match.group(1))
            if pid == os.getpid() or (_alive(pid) and now - entry.stat().st_mtime < STALE_AFTER_S):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except (OSError, ValueError):
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    except OSError:
        return True
    return True


def check_input(path: Path, what: str, error: type[UserError]) -> os.stat_result:
    """``path``'s stat if it is a regular, non-empty file that can be looked at; else ``error`` saying why,
    before anything is opened (a FIFO would block forever, a device never end)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:  # a name too long, a folder without permission, a dead mount
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: is a folder, not {what}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file, so not {what}")
    if info.st_size == 0:
        raise error(f"{path}: the file is empty, not {what}")
    return info


def folder_problem(path: Path) -> str | None:
    """None if ``path`` is a folder; else why not, to follow its name in a message: "does not exist", or
    "cannot be used (...)" with what the system said (a name too long, no permission, a dead mount), which
    ``Path.is_dir`` would raise instead of answering."""
    try:
        return None if path.is_dir() else "does not exist"
    except OSError as exc:
        return f"cannot be used ({exc.strerror or exc})"


def check_output(path: Path | str, inputs: Iterable[Path | str | None] = ()) -> Path:
    """``path`` if a command may write it; else a UserError saying why, before any work is done."""
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    try:
        if not folder.is_dir():
            raise UserError(f"cannot write {path}: folder {folder} does not exist")
        for source in inputs:
            if source is not None and same_file(path, Path(source).expanduser()):
                raise UserError(f"cannot write {path}: it is {source}, which this command reads; choose another name")
        _check_replaceable(path)
        fd, probe = tempfile.mkstemp(prefix=".digit-studio-probe-", dir=folder)  # read-only folder, full disk
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same inode (links, ``..``, symlinks) or the same real path."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
