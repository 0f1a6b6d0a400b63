"""Output files written whole or not at all, and output directories checked before the work starts.

Every file the package writes (replay outputs, metrics, models, checkpoints, logs, the watcher's
state) goes through :func:`atomic_writer`: the bytes go to a temporary file in the target's
directory, named ``.<name>.<8 random characters>.tmp``, which is flushed and fsynced, renamed over
the target with ``os.replace``, and the directory is fsynced after the rename. A failure at any
point (ENOSPC, EIO, a read-only file system, an exception in the block) removes the temporary file
and leaves the earlier target, if there was one, as it was. OSError becomes :class:`OutputError`,
whose one-line message names the file.

A new file gets the mode that ``open()`` would give it, ``0o666`` less the umask; a file that is
replaced keeps its mode. A process killed while writing leaves its temporary file behind;
:func:`remove_stale_temps` removes those of given target names (and nothing else) at the next start.
"""

from __future__ import annotations

import errno as errno_codes
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
# mkstemp's random part: 8 characters of [a-z0-9_]. Older versions wrote the same name without the suffix.
_RANDOM = r"[a-z0-9_]{8}"


class OutputError(RuntimeError):
    """An output file or directory cannot be written; the message names it and says what was kept."""

    def __init__(self, message: str, path: Path, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return " ".join(str(error).split())[:300] or type(error).__name__


def _write_failed(target: Path, error: BaseException, existed: bool) -> OutputError:
    kept = f"; the previous {target.name} is kept" if existed else f"; no {target.name} was written"
    return OutputError(f"cannot write {target}: {_reason(error)}{kept}", target,
                       getattr(error, "errno", None))


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it in /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _existing_mode(target: Path) -> int | None:
    """The mode of the regular file at ``target``, or None where there is none."""
    try:
        existing = os.stat(target)
    except OSError:
        return None
    return stat.S_IMODE(existing.st_mode) if stat.S_ISREG(existing.st_mode) else None


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (file systems that cannot fsync a directory are let be)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno_codes.EINVAL, errno_codes.ENOTSUP, errno_codes.EBADF):
            raise
    finally:
        os.close(fd)


def _sync_directory_of(target: Path) -> None:
    try:
        fsync_directory(target.parent)
    except OSError as error:
        raise OutputError(f"{target} was written but its directory cannot be synced: {_reason(error)}",
                          target, error.errno) from error


@contextmanager
def atomic_path(path: str | os.PathLike[str], *,
                failures: tuple[type[Exception], ...] = (Exception,)) -> Iterator[Path]:
    """A temporary path whose file replaces ``path`` when the block succeeds, fsynced first; see the
    module's docstring. For writers that take a path (``torch.save``): those wrap the OS's error in
    their own (torch raises RuntimeError for a full disk), so by default any Exception in the block
    counts as a failure to write the file and becomes an OutputError; ``failures`` narrows that."""
    target = Path(path)
    kept_mode = _existing_mode(target)
    existed = kept_mode is not None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    except OSError as error:
        raise _write_failed(target, error, existed) from error
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, kept_mode if kept_mode is not None else 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(error, (OSError, *failures)):
            raise _write_failed(target, error, existed) from error
        raise
    _sync_directory_of(target)


@contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """A file object (``mode`` "wb" or "w"; ``open_args`` as for ``open``) whose content replaces
    ``path`` when the block succeeds. Only OSError becomes an OutputError here; another exception
    in the block is the caller's and passes through (the target is left as it was either way)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer writes with mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path, failures=(OSError,)) as tmp, open(tmp, mode, **open_args) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def writable_directory(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """``path`` as a directory this process can create files in (made if missing), or an OutputError
    naming ``what``. Called before any work, so that a bad output place costs nothing."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{what} {directory} exists and is not a directory", directory,
                          errno_codes.EEXIST) from None
    except OSError as error:
        raise OutputError(f"{what} {directory} cannot be created: {_reason(error)}", directory,
                          error.errno) from error
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=TEMP_SUFFIX, dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"{what} {directory} is not writable: {_reason(error)}", directory,
                          error.errno) from error
    return directory


def remove_stale_temps(directory: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Remove the temporary files that an interrupted :func:`atomic_writer` left for these target
    names in ``directory`` (``.<name>.<random>.tmp``, and ``.<name>.<random>`` of older versions),
    and the probe of :func:`writable_directory`; nothing else. Returns what was removed."""
    directory = Path(directory)
    alternatives = "|".join(re.escape(name) for name in [*names, "write-test"])
    pattern = re.compile(rf"\.(?:{alternatives})\.{_RANDOM}(?:{re.escape(TEMP_SUFFIX)})?")
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as error:
                raise OutputError(f"cannot remove the stale temporary file {entry.path}: {_reason(error)}",
                                  Path(entry.path), error.errno) from error
            removed.append(Path(entry.path))
    return removed
