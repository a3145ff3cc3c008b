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


# ---------------------------------------------------------------------------- output directories
MARKER = ".minidin"  # a small JSON file that minidin writes into every output directory it creates
_LEGACY = {"dataset": {"data.npz", "meta.json"}, "run": {"best.npz", "best.json", "last.npz", "last.json"}}
KINDS = ("dataset", "run", "tune")  # a tune directory holds the search's files and every trial's run


def write_marker(path, kind):
    """Mark directory ``path`` as minidin's output of ``kind`` (one of KINDS)."""
    text = json.dumps({"kind": kind, "format": 1})
    atomic_write(os.path.join(path, MARKER), lambda f: f.write(text.encode()))


def output_kind(path):
    """What minidin output directory ``path`` holds: its marker's kind, or for a directory written before
    markers existed, "dataset" / "run" when it holds only the files minidin writes there; else None."""
    marker = os.path.join(path, MARKER)
    if os.path.isfile(marker):
        try:
            with open(marker) as f:
                kind = json.load(f).get("kind")
            return kind if kind in KINDS else None
        except (OSError, ValueError, AttributeError):
            return None
    names = set(os.listdir(path))
    for kind, files in _LEGACY.items():
        if names and names <= files:
            return kind
    return None


def check_output_dir(path, kind, option="--out"):
    """Refuse, with one line and before anything is written, an output directory that minidin may not
    write into: a file, or a non-empty directory that is not a previous minidin output of ``kind``.
    Returns True when ``path`` holds a previous output of ``kind`` (the caller decides whether it may be
    replaced), False when it does not exist or is empty."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"{option}: {path} is a file, not a directory; nothing was written")
    if not os.path.isdir(path) or not os.listdir(path):
        return False
    found = output_kind(path)
    if found is None:
        names = sorted(os.listdir(path))
        raise ValueError(f"{option}: {path} is not empty and was not written by minidin ({len(names)} entries, "
                         f"e.g. {names[0]!r}); choose a new or empty directory (nothing was touched)")
    if found != kind:
        raise ValueError(f"{option}: {path} holds a minidin {found}, not a {kind}; choose another directory "
                         f"(nothing was touched)")
    return True
