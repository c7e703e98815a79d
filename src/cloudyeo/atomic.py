"""Write files so that they appear complete or not at all.

Everything the workflow writes goes to a unique temporary name in the target folder and is then
renamed into place (``os.replace`` is atomic on one file system), so a killed job never leaves a
half-written output that Snakemake or a reader could take for a finished one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``.

    ``suffix`` is the temporary file's ending (e.g. ``.npz`` for writers that append their own).
    The temporary file is removed when ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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


def write_csv(df: Any, path: str | os.PathLike) -> Path:
    """A DataFrame as CSV, without the index."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def write_creation_record(path: str | os.PathLike, **fields: Any) -> Path:
    """A JSON record of a store's creation that differs on every call.

    Snakemake compares input checksums, not only times, so a freshly created (empty) store must
    change this file for every extraction job to rerun after it.
    """
    record = dict(fields, created=dt.datetime.now(dt.timezone.utc).isoformat(),
                  creation_id=uuid.uuid4().hex)
    return write_json(path, record)
