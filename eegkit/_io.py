"""Writes that never leave half a file, the cache folder, and content digests.

Every stage writes through these: results, checkpoints, figures, the twin and the
twin CLIP. A reader sees the old version or the new one, never a partial one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


def default_cache_dir() -> Path:
    """Where eegkit keeps what it makes once and reuses: ``$EEGKIT_CACHE`` or ``~/.cache/eegkit``.

    The twin, the twin CLIP and cached embeddings live here; none of it is committed.
    ``make report`` and ``make test`` set ``EEGKIT_CACHE`` to the checkout's ``data/``
    and ``build/cache/``.
    """
    return Path(os.environ.get("EEGKIT_CACHE") or Path.home() / ".cache" / "eegkit")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path``.

    The temporary file lives in the same folder, so the final ``os.replace`` is
    atomic: readers see the old file or the new one, never a partial one.

    Parameters
    ----------
    path : path-like
        The file to write; its folder is created.
    write : callable
        ``write(tmp_path)`` writes the whole content to ``tmp_path`` (a str).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of a string."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


@contextmanager
def building_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in ``<path>.partial`` and rename it to ``path`` when the block ends.

    A build that fails or is interrupted leaves only the ``.partial`` folder, which
    the next build removes, so ``path`` exists only when complete. ``path`` itself
    must not exist (remove it first to rebuild).

    Yields
    ------
    partial : Path
        The empty folder to build in.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    os.replace(partial, path)


def update_digest(digest, state: dict[str, torch.Tensor]):
    """Feed a state dict (names and exact bytes, in name order) into a hashlib digest.

    One definition for every cache key built from weights (CLIP embeddings, retrieval
    checkpoints, frozen-encoder features, run keys), so equal weights always give
    equal keys.

    Returns
    -------
    digest : the same hashlib object, updated
    """
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest
