"""Files written whole: each is written to a temporary name beside it, then renamed over it, so a crash or a full
disk leaves the old file or the new one, never half of one. No torch: the graph cache (``graph``) writes with it
on a start that never imports torch, as the dataset cache, runs and checkpoints do."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import DISK_FULL, DiskFullError


def files_under(folder: str | os.PathLike) -> list[str]:
    """Every file under ``folder`` as a relative POSIX path, sorted as paths are (part by part), into sub-folders
    that are symbolic links too (``Path.rglob`` passes them over: a dataset linked into a data folder would be left
    out unseen). Each real folder is walked once: a link to a folder inside the tree (``latest -> 2024-06``, or back
    up to the top) is not followed, its files being there already, nor a second link to the same outside folder.
    Strings and ``os.scandir``'s cached file types, not ``Path`` objects and a stat a file: a CCPD folder holds
    hundreds of thousands of photos. A folder that cannot be listed is passed over, as ``os.walk`` does; a link to
    nothing is listed as a file (its reader says it is missing: a row of ``plate predict``, a bad sample)."""
    top = os.path.realpath(folder)
    seen = {top}
    out: list[str] = []
    todo = [("", os.fspath(folder))]
    while todo:
        rel, path = todo.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for e in entries:
            if e.is_dir():  # a link to a folder too
                real = os.path.realpath(e.path)
                inside = e.is_symlink() and (real == top or real.startswith(top + os.sep))
                if not inside and real not in seen:
                    seen.add(real)
                    todo.append((f"{rel}{e.name}/", e.path))
            elif e.is_file() or e.is_symlink():  # a link to nothing too: a file meant, named where it is read
                out.append(rel + e.name)
    return sorted(out, key=lambda r: r.split("/"))


def some(names: list[str], n: int, sep: str = ", ") -> str:
    """The first ``n`` of ``names`` for a message, joined by ``sep``, ``" …"`` after them where there are more."""
    return sep.join(names[:n]) + (" …" if len(names) > n else "")


def size_text(n: float) -> str:
    """A byte count as people read it: ``512 bytes``, ``2.4 MB``."""
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def atomic_write(path: Path, write: Callable[[Path], object], nbytes: int | None = None) -> None:
    """``write(temporary path)``, then rename it over ``path``: a crash leaves the old file or the new one.

    A full disk or quota while writing is a ``DiskFullError`` naming ``path`` and how much was being written
    (``nbytes``, else what reached the disk); the old file is left as it was and the temporary file removed, as it
    is after any other error, which is raised as it came."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        written = tmp.stat().st_size if tmp.is_file() else 0
        what = size_text(nbytes) if nbytes is not None else f"{size_text(written)} written when it filled"
        kept = f"the previous {path.name} is untouched" if path.is_file() else f"no {path.name} was written"
        raise DiskFullError(f"{path}: no space left on the device ({e.strerror or e}) while writing {what}; {kept}. "
                            "Free some space, or write elsewhere (training.out_dir for runs, data.cache_dir for "
                            "caches), then run again") from None
    finally:
        tmp.unlink(missing_ok=True)
