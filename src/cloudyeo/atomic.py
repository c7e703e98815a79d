"""Write files so that they appear complete or not at all.

Everything the workflow writes goes to a unique temporary name in the target folder and is then
renamed into place (``os.replace`` is atomic on one file system), so a killed job never leaves a
half-written output that Snakemake or a reader could take for a finished one.

A job killed with ``kill -9`` does leave its temporary file behind (e.g. in a dataset's
``parts/``). The next :func:`atomic_write` into that folder removes such leftovers, and only
those whose writer is gone: the writer holds an exclusive ``flock`` on its temporary file from
creation to rename (the kernel drops it when the process dies, on NFS too), and a temporary file
is removed only when that lock can be taken. Only files named as this module names them are
considered (``.<target>.cloudyeo-tmp-<random><suffix>``; for the target being written also the
older ``.<target>.<random><suffix>``), so other tools' temporary files are never touched. On a
file system without working locks a leftover is removed only once it is older than
:data:`STALE_WITHOUT_LOCKS_S`.

``write`` must write the temporary file in place (open it by name, as ``to_parquet``,
``np.savez`` or ``shutil.copyfile`` do), not replace it by another file.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: leftovers are judged by age only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: tag in every temporary file name of this module
TMP_TAG = "cloudyeo-tmp-"
#: where locks do not work: a leftover untouched this long is taken for a killed writer's
STALE_WITHOUT_LOCKS_S = 3600.0
# tempfile's random part: 8 characters of [a-z0-9_]
_RANDOM = r"[a-z0-9_]{8}"
_TAGGED = re.compile(rf"^\..+\.{re.escape(TMP_TAG)}{_RANDOM}")


def _try_lock(fd: int) -> bool | None:
    """Take an exclusive lock without waiting: True, False (held elsewhere), None (no locks here)."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EOPNOTSUPP, ENOSYS ...: this file system does not lock
    return True


def _remove_if_stale(path: Path) -> bool:
    """Remove a temporary file whose writer is gone (its lock can be taken); True if removed."""
    try:
        fd = os.open(path, os.O_RDONLY)  # flock needs no write access
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return False  # renamed into place meanwhile, or not ours to judge
    try:
        locked = _try_lock(fd)
        if locked is False:
            return False  # a running writer holds it
        st = os.fstat(fd)
        if locked is None and time.time() - st.st_mtime < STALE_WITHOUT_LOCKS_S:
            return False  # cannot tell a live writer from a dead one yet
        try:
            if not os.path.samestat(st, os.stat(path)):
                return False  # the name now belongs to another file
            os.unlink(path)
        except FileNotFoundError:
            return False
    finally:
        os.close(fd)  # releases the lock
    log.info("removed %s, left behind by a killed job", path)
    return True


def remove_stale_temporaries(folder: str | os.PathLike, target: str | None = None,
                             suffix: str = ".tmp") -> list[Path]:
    """Remove this module's temporary files in ``folder`` whose writers are gone.

    Every tagged temporary file (any target) is considered; with ``target`` (a file name in
    ``folder``) also that target's temporary files in the untagged form older versions wrote.
    Files a running writer holds are kept. Returns the files removed.
    """
    folder = Path(folder)
    legacy = (re.compile(rf"^\.{re.escape(target)}\.{_RANDOM}{re.escape(suffix)}$")
              if target is not None else None)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith("."):
            continue
        if (_TAGGED.match(name) or (legacy is not None and legacy.match(name))) and entry.is_file(
                follow_symlinks=False) and _remove_if_stale(folder / name):
            removed.append(folder / name)
    return removed


def _locked_temporary(path: Path, suffix: str) -> tuple[Path, int]:
    """A new temporary file next to ``path``, and a descriptor holding its exclusive lock."""
    while True:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{TMP_TAG}", suffix=suffix, dir=path.parent)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner inspects the file
            except OSError:
                return Path(name), fd  # no locks on this file system: age rule applies
        try:
            if os.path.samestat(os.fstat(fd), os.stat(name)):
                return Path(name), fd
        except FileNotFoundError:
            pass
        os.close(fd)  # a cleaner removed it between creation and lock: take another name


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``.

    ``suffix`` is the temporary file's ending (e.g. ``.npz`` for writers that append their own).
    The temporary file is removed when ``write`` fails; leftovers of killed writers in the same
    folder are removed first (see the module docstring).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name, suffix)
    tmp, fd = _locked_temporary(path, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)  # releases the lock (now on ``path``'s file, or on a removed one)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any, **dumps_kwargs: Any) -> Path:
    """JSON with a trailing newline; ``dumps_kwargs`` default to ``indent=2``."""
    dumps_kwargs.setdefault("indent", 2)
    return write_text(path, json.dumps(data, **dumps_kwargs) + "\n")


def write_parquet(df: Any, path: str | os.PathLike) -> Path:
    """A (Geo)DataFrame as (Geo)Parquet, without the index."""
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_csv(df: Any, path: str | os.PathLike, float_format: str | None = None) -> Path:
    """A DataFrame as CSV, without the index (floats as ``float_format``, e.g. ``"%.3f"``)."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format=float_format))


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def write_creation_record(path: str | os.PathLike, **fields: Any) -> Path:
    """A JSON record of a store's creation that differs on every call.

    Snakemake compares input checksums, not only times, so a freshly created (empty) store must
    change this file for every extraction job to rerun after it.
    """
    record = dict(fields, created=dt.datetime.now(dt.UTC).isoformat(),
                  creation_id=uuid.uuid4().hex)
    return write_json(path, record)
