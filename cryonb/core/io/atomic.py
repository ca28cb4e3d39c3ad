"""Atomic file writing: a reader never sees a half-written file, a failed write leaves none."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one step.

    For libraries that insist on opening the file themselves (mrcfile, starfile). The
    temporary file is removed if the block raises. A full disk or a folder that may not be
    written to is an :class:`InputError` saying so (and that the earlier file is unchanged).
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        explained = write_error(path, err)
        if explained is not None:
            raise explained from err
        raise


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_error(path: str | os.PathLike, err: BaseException) -> InputError | None:
    """An :class:`InputError` for a write that failed because the disk is full or may not be written
    to, found anywhere in ``err``'s chain (torch.save reports a full disk as "unexpected pos",
    with the OSError as its context); None for any other failure."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, InputError):
            return None  # already explained
        if isinstance(err, OSError) and err.errno in DISK_FULL + DENIED:
            break
        err = err.__cause__ or err.__context__
    else:
        return None
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if err.errno in DISK_FULL:
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        return InputError(path, f"could not be written: no space left on the disk ({free} in {folder})",
                          "free some space, or write to another disk, and run the same command again; "
                          "the earlier file, if any, is unchanged (a training run continues from its last complete checkpoint)")
    what = "read-only file system" if err.errno == errno.EROFS else "permission denied"
    return InputError(path, f"could not be written: {what} (in {folder})",
                      "write to a folder you may write to (another output folder), or change its permissions")


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file that replaces it only on success."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write only writes (mode 'w' or 'wb'), got {mode!r}")
    with atomic_path(path) as tmp:
        encoding = None if "b" in mode else "utf-8"
        with open(tmp, mode, encoding=encoding) as f:
            yield f
