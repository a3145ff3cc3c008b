"""Atomic file writing, shared by datasets, checkpoints, JSON summaries and figures.

A file is written to a temporary file in the same directory, flushed to disk,
then renamed over the target (``os.replace`` is atomic on POSIX): a run killed
mid-write leaves the previous file whole, never a truncated one.
"""
from __future__ import annotations

import json
import os
import tempfile


def umask() -> int:
    """The process's file-creation mask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temp file next to ``path``, fsync, then rename over ``path``."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj):
    """``obj`` as indented, key-sorted JSON at ``path``, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True)
    atomic_write(path, lambda f: f.write(text.encode()))
