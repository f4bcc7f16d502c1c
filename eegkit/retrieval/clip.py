"""CLIP for caption retrieval: loading any checkpoint, and embedding images and captions.

One code path for every CLIP: :func:`load_clip` takes a Hugging Face hub id (for a
user with network access or a filled cache), a local folder written by
``save_pretrained``, or ``"twin"`` / ``"twin:tiny"`` for the twin CLIP that eegkit
pretrains itself (:mod:`eegkit.twin.twinclip`), which is saved and then loaded from its
folder exactly like a downloaded one.

Embeddings are L2-normalised and cached on disk, keyed by the model's weights and
the exact inputs (image bytes, caption texts), so notebooks 04 and 05 never embed the
same data twice and a changed file or model is never served a stale embedding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from eegkit._io import atomic_write, default_cache_dir, update_digest

#: Seconds to wait for the hub's one reply that says whether a model id exists, before
#: any download is tried (the download client retries for about a minute offline).
HUB_PROBE_TIMEOUT_SECONDS = 10.0


class ClipLoadError(OSError):
    """A CLIP checkpoint could not be loaded; the message says what was tried."""


@dataclass
class Clip:
    """A loaded CLIP: model, processor, and what to call it in figures and tables.

    Attributes
    ----------
    model : transformers.CLIPModel
        In eval mode, on :attr:`device`.
    processor : transformers.CLIPProcessor
    name : str
        What was asked for (hub id, folder or ``"twin"``).
    label : str
        "twin CLIP" for a twin CLIP, else the checkpoint's name; every figure and
        table says this, so twin results are never mistaken for OpenAI CLIP ones.
    path : str
        Where it was loaded from.
    device : torch.device
    """

    model: object
    processor: object
    name: str
    label: str
    path: str
    device: torch.device

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def fingerprint(self) -> str:
        """Hash of the weights: changes whenever the model (or a fine-tuned copy) does."""
        return update_digest(hashlib.sha256(), self.model.state_dict()).hexdigest()[:16]


def _hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` says so (read now, not at
    import time as huggingface_hub does)."""
    values = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(v.strip().upper() in {"1", "ON", "YES", "TRUE"} for v in values)


def _probe_hub(name: str, tried: list[str]) -> None:
    """Ask the hub once whether ``name`` exists; raise :class:`ClipLoadError` at once
    when it does not or when the hub cannot be reached."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        model_info(name, timeout=HUB_PROBE_TIMEOUT_SECONDS)
    except RepositoryNotFoundError as exc:
        raise ClipLoadError(
            f"could not load CLIP {name!r}: it is not in the local cache and the Hugging "
            "Face hub has no model of that name (or it is private). Check the spelling "
            "(e.g. 'openai/clip-vit-base-patch32'), pass a save_pretrained folder, or use "
            "clip_model='twin' for eegkit's own twin CLIP."
        ) from exc
    except Exception as exc:  # connection refused, DNS, timeout, proxy: all "unreachable"
        raise ClipLoadError(
            f"could not load CLIP {name!r}: it is not in the local cache and the Hugging "
            f"Face hub could not be reached ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). Offline, set "
            "HF_HUB_OFFLINE=1 so that only local files are tried; download the checkpoint "
            "elsewhere (`huggingface-cli download openai/clip-vit-base-patch32 --local-dir "
            "clip-b32`), copy the folder here and pass its path (notebook parameter "
            "clip_model), or use clip_model='twin' for eegkit's own twin CLIP. "
            "Tried before: " + "; ".join(tried)
        ) from exc


def load_clip(
    name_or_path: str | os.PathLike = "twin",
    *,
    exclude_captions: Sequence[str] = (),
    device: str | torch.device = "cpu",
    local_files_only: bool | None = None,
) -> Clip:
    """Load a CLIP model and its processor.

    Parameters
    ----------
    name_or_path : str or path-like, default="twin"
        ``"twin"`` (or ``"twin:tiny"``, a test-sized one) for eegkit's twin CLIP,
        pretrained on first use; a folder holding a ``save_pretrained`` checkpoint;
        or a hub id such as ``"openai/clip-vit-base-patch32"``.
    exclude_captions : sequence of str, optional
        Twin CLIP only: captions its pretraining corpus must not contain (pass the
        experiment's captions, so retrieval tests generalisation).
    device : str or torch.device, default="cpu"
    local_files_only : bool, optional
        Hub ids only: never touch the network. Default: true when ``HF_HUB_OFFLINE``
        (or ``TRANSFORMERS_OFFLINE``) is ``1``; otherwise the local cache is tried
        first, then one request (at most :data:`HUB_PROBE_TIMEOUT_SECONDS`) asks the
        hub whether the id exists, and only then is the checkpoint downloaded. A
        misspelt id or an unreachable hub fails in seconds, not after a minute of
        retries.

    Returns
    -------
    clip : Clip

    Raises
    ------
    ClipLoadError
        Saying what was tried and how to point eegkit at a local copy.
    """
    from transformers import AutoProcessor, CLIPModel

    name = str(name_or_path)
    label = Path(name).name if Path(name).is_dir() else name
    if name == "twin" or name.startswith("twin:"):
        from eegkit.twin.twinclip import ensure_twin_clip

        preset = name.partition(":")[2] or "default"
        path = str(ensure_twin_clip(exclude_captions, preset=preset))
        label = "twin CLIP"
    else:
        path = name
        looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep in name and not name.count("/") == 1
        if looks_like_path and not Path(name).expanduser().is_dir():
            raise ClipLoadError(
                f"CLIP folder {name!r} does not exist. Pass a folder written by "
                "CLIPModel.save_pretrained (config.json, model.safetensors and the "
                "processor files), a hub id such as 'openai/clip-vit-base-patch32', or 'twin'."
            )
        path = str(Path(name).expanduser()) if looks_like_path else name
    if local_files_only is None:
        local_files_only = _hub_offline()

    tried: list[str] = []
    attempts = [True] if local_files_only or Path(path).is_dir() else [True, False]
    for only_local in attempts:
        if not only_local:
            _probe_hub(name, tried)
        try:
            model = CLIPModel.from_pretrained(path, local_files_only=only_local)
            processor = AutoProcessor.from_pretrained(path, local_files_only=only_local)
            break
        except Exception as exc:  # the hub client raises many types; all mean "not loadable"
            where = "local files" if only_local else "the Hugging Face hub"
            tried.append(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    else:
        raise ClipLoadError(
            f"could not load CLIP {name!r}. Tried " + "; ".join(tried) + ". "
            "Without network access, download the checkpoint elsewhere "
            "(e.g. `huggingface-cli download openai/clip-vit-base-patch32 --local-dir clip-b32`), "
            "copy the folder here and pass its path (notebook parameter clip_model), "
            "or use clip_model='twin' for eegkit's own twin CLIP."
        )
    from eegkit.twin.twinclip import twin_clip_info

    if twin_clip_info(path) is not None:
        label = "twin CLIP"
    device = torch.device(device)
    model.to(device).eval()
    return Clip(model=model, processor=processor, name=name, label=label, path=path, device=device)


def _file_digest(paths: Sequence[str | os.PathLike]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(Path(path).name).encode())
        try:
            digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"image file missing: {path}") from exc
    return digest.hexdigest()[:16]


def _text_digest(texts: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:16]


def _cached(cache_file: Path | None, compute) -> np.ndarray:
    if cache_file is not None and cache_file.is_file():
        return np.load(cache_file)
    result = compute()
    if cache_file is not None:
        atomic_write(cache_file, lambda tmp: np.save(open(tmp, "wb"), result))
    return result


def _cache_dir(cache_dir: str | os.PathLike | None | bool) -> Path | None:
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:

        return default_cache_dir() / "embeddings"
    return Path(cache_dir)


@torch.no_grad()
def embed_images(
    clip: Clip,
    paths: Sequence[str | os.PathLike],
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None | bool = None,
    progress: bool = True,
) -> np.ndarray:
    """Embed image files with CLIP's image tower, L2-normalised.

    Parameters
    ----------
    clip : Clip
    paths : sequence of path-like
        Image files, in the order of the returned rows.
    batch_size : int, default=64
    cache_dir : path-like, None or False
        Cache folder (default ``<eegkit cache>/embeddings``); False disables caching.
    progress : bool, default=True

    Returns
    -------
    embeddings : ndarray, shape (n_images, embedding_dim), float32, unit norm
    """
    folder = _cache_dir(cache_dir)
    cache_file = None if folder is None else folder / f"img-{clip.fingerprint()}-{_file_digest(paths)}.npy"

    def compute() -> np.ndarray:
        chunks = []
        for start in tqdm(range(0, len(paths), batch_size), desc=f"{clip.label} images",
                          disable=not progress):
            images = [_open_image(p) for p in paths[start:start + batch_size]]
            pixels = clip.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
            out = clip.model.get_image_features(pixel_values=pixels.to(clip.device))
            chunks.append(_normalise(out))
        return np.concatenate(chunks) if chunks else np.zeros((0, clip.embedding_dim), np.float32)

    return _cached(cache_file, compute)


@torch.no_grad()
def embed_texts(
    clip: Clip,
    texts: Sequence[str],
    batch_size: int = 256,
    cache_dir: str | os.PathLike | None | bool = None,
    progress: bool = True,
) -> np.ndarray:
    """Embed captions with CLIP's text tower, L2-normalised.

    Parameters
    ----------
    clip : Clip
    texts : sequence of str
    batch_size : int, default=256
    cache_dir : path-like, None or False
        As in :func:`embed_images`.
    progress : bool, default=True

    Returns
    -------
    embeddings : ndarray, shape (n_texts, embedding_dim), float32, unit norm
    """
    texts = [str(t) for t in texts]
    folder = _cache_dir(cache_dir)
    cache_file = None if folder is None else folder / f"txt-{clip.fingerprint()}-{_text_digest(texts)}.npy"

    def compute() -> np.ndarray:
        chunks = []
        for start in tqdm(range(0, len(texts), batch_size), desc=f"{clip.label} captions",
                          disable=not progress):
            tokens = clip.processor.tokenizer(texts[start:start + batch_size], padding=True,
                                              truncation=True, return_tensors="pt")
            out = clip.model.get_text_features(input_ids=tokens["input_ids"].to(clip.device),
                                               attention_mask=tokens["attention_mask"].to(clip.device))
            chunks.append(_normalise(out))
        return np.concatenate(chunks) if chunks else np.zeros((0, clip.embedding_dim), np.float32)

    return _cached(cache_file, compute)


def _open_image(path: str | os.PathLike) -> Image.Image:
    """An image file as RGB; a file PIL cannot read raises an error that names it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise ValueError(
            f"{path}: not a readable image ({exc}); replace the file with a good copy from "
            "the course's image folder (the other images are fine)"
        ) from exc


def _normalise(output) -> np.ndarray:
    # transformers 5 returns an output object whose pooler_output is the projected embedding.
    features = getattr(output, "pooler_output", output)
    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


def caption_bank(trials) -> pd.DataFrame:
    """The unique captions of some trials: the bank that queries are ranked against.

    Parameters
    ----------
    trials : DataFrame
        Rows of :attr:`eegkit.data.EEGData.trials` (e.g. a split's test rows).

    Returns
    -------
    bank : DataFrame
        One row per caption id, sorted by it: ``caption_id``, ``caption``,
        ``category``, ``category_id``.
    """
    columns = ["caption_id", "caption", "category", "category_id"]
    return trials[columns].drop_duplicates("caption_id").sort_values("caption_id").reset_index(drop=True)


def caption_texts(data) -> list[str]:
    """Every caption, indexed by caption id."""
    table = data.captions.drop_duplicates("caption_id").sort_values("caption_id")
    if not np.array_equal(table["caption_id"].to_numpy(), np.arange(len(table))):
        raise ValueError("caption ids are not 0..n-1; load the data with eegkit.load_dataset")
    return list(table["caption"])


def image_queries(trials) -> pd.DataFrame:
    """The unique images of some trials, as queries for image-to-caption retrieval.

    Returns
    -------
    queries : DataFrame
        One row per image id, sorted by it: ``image_id``, ``image_name``,
        ``image_path``, ``caption_id``, ``caption``, ``category``, ``category_id``.
    """
    columns = ["image_id", "image_name", "image_path", "caption_id", "caption", "category", "category_id"]
    return trials[columns].drop_duplicates("image_id").sort_values("image_id").reset_index(drop=True)
