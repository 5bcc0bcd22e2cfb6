"""Files that are never half-written."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path``, renamed onto it when the block succeeds and removed otherwise."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def swap_in(new: Path, path: Path) -> None:
    """Move ``new`` (file or directory) to ``path``; an existing ``path`` is removed only once
    ``new`` stands in its place."""
    if not path.exists():
        os.replace(new, path)
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old) if old.is_dir() else old.unlink()
