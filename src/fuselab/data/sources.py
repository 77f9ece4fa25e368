"""What a dataset's cache key knows of its source files: their content.

A file's stamp is its SHA-256, so a file rewritten in place (same size, same second) is a new
source. Hashing is paid once per version of a file: the digest is remembered, in this process and
in ``<cache_dir>/file-hashes.json``, under the file's path, size, nanosecond mtime and ctime and
inode, and only a file whose record changed is read again (any write moves the ctime, even one
that puts the old mtime back).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MEMO = "file-hashes.json"
_memo: dict[str, list[Any]] = {}
_loaded: set[Path] = set()
_dirty: list[bool] = [False]


def _record(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load_memo(cache_dir: Path | None) -> None:
    if cache_dir is None or cache_dir in _loaded:
        return
    _loaded.add(cache_dir)
    try:
        stored = json.loads((cache_dir / MEMO).read_text())
    except (OSError, ValueError):
        return
    if isinstance(stored, dict):
        for k, v in stored.items():
            _memo.setdefault(k, v)


def _save_memo(cache_dir: Path | None) -> None:
    if cache_dir is None or not _dirty[0]:
        return
    _dirty[0] = False
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{MEMO}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(_memo))
        os.replace(tmp, cache_dir / MEMO)
    except OSError:
        pass  # a read-only cache: digests are recomputed next time, nothing is wrong


def file_digest(path: Path, cache_dir: Path | None = None) -> str:
    """The SHA-256 of ``path``'s bytes (remembered while its size, times and inode stay)."""
    _load_memo(cache_dir)
    key = str(path.resolve())
    st = path.stat()
    known = _memo.get(key)
    if known and known[:4] == _record(st):
        return str(known[4])
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    _memo[key] = [*_record(st), h.hexdigest()]
    _dirty[0] = True
    return h.hexdigest()


def content_stamp(path: str | Path, cache_dir: Path | None = None, pattern: str = "**/*") -> list[Any]:
    """A file's or a folder's content, for a cache key: the resolved path, the number of files and
    one digest over their names and bytes (the folder's files matching ``pattern``). A missing path
    is stamped by its name alone (the dataset's own check refuses it)."""
    p = Path(path).expanduser()
    if not p.exists():
        return [str(path)]
    files = [p] if p.is_file() else sorted(f for f in p.glob(pattern) if f.is_file() and not derived(f))
    return [str(p.resolve()), len(files), files_digest(files, p if p.is_dir() else p.parent, cache_dir)]


def derived(path: Path) -> bool:
    """Files a folder gains by being read, not part of its content: the datasets library's cache
    files beside a saved dataset's arrow files (``cache-*.arrow``), and hidden or temporary files."""
    name = path.name
    return name.startswith((".", "tmp")) or (name.startswith("cache-") and name.endswith(".arrow"))


def files_digest(files: Iterable[Path], root: Path, cache_dir: Path | None = None) -> str:
    """One digest over ``files``' names (relative to ``root``) and contents."""
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root) if f.is_relative_to(root) else f).encode() + b"\0")
        h.update(file_digest(f, cache_dir).encode())
    _save_memo(cache_dir)
    return h.hexdigest()[:16]
