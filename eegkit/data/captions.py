"""captions.txt, the image folder and each run's ``_image.csv``.

``captions.txt`` (tab-separated: ``dataset, category, image_name, abstracted``) and the
image folder (``images/`` or ``All_images/``) sit at the dataset root in both layouts;
the published OpenNeuro copy has neither (:class:`CaptionsRequired`), but may have one
stimulus list per category under ``stimuli/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from eegkit.data.channels import CATEGORIES
from eegkit.data.layout import DatasetError, RunFiles

if TYPE_CHECKING:
    from eegkit.data.eegdata import EEGData

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
IMAGE_FOLDERS = ("images", "All_images")
CAPTION_COLUMNS = ("abstracted", "caption")
CAPTIONS_FILE = "captions.txt"
#: Folder of the published copy with one stimulus list per category.
STIMULI_FOLDER = "stimuli"


class CaptionsRequired(DatasetError):
    """The data has no captions (or no images), and what was asked needs them.

    The published OpenNeuro copy of ds005589 has neither; the course distributes
    ``captions.txt`` and the images separately. See :func:`require_captions`.
    """


def image_key(file_path: str) -> str:
    """The image identifier in a trial's ``FilePath``.

    The published CSVs hold Windows paths to resized copies
    (``C:\\...\\bird\\004461_resized.jpg``); captions.txt names the original
    (``004461.jpg``). The key is the base name without extension and ``_resized``.
    """
    base = re.split(r"[\\/]", str(file_path).strip())[-1]
    stem, ext = os.path.splitext(base)
    if ext.lower() not in IMAGE_EXTENSIONS:
        stem = base
    return re.sub(r"_resized$", "", stem)


def load_captions(
    path: str | os.PathLike, images_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Read captions.txt (tab-separated: ``dataset, category, image_name, abstracted``).

    Parameters
    ----------
    path : path-like
        The captions file. A ``caption`` column is accepted in place of
        ``abstracted``.
    images_dir : path-like, optional
        Folder of the image files. When given, every image must exist there as
        ``.jpg``, ``.jpeg`` or ``.png`` and ``image_path`` is filled in.

    Returns
    -------
    captions : DataFrame
        ``image_name`` (the key, without extension), ``category``, ``category_id``
        (index in :data:`eegkit.data.channels.CATEGORIES`), ``caption``, ``caption_id``
        (equal caption texts share an id) and ``image_path``; in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"{path}: captions file not found. ds005589 needs captions.txt at the "
            "dataset root (or pass captions_path=)."
        )
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable tab-separated file ({exc})") from exc
    table.columns = [c.strip().lower() for c in table.columns]
    caption_col = next((c for c in CAPTION_COLUMNS if c in table.columns), None)
    missing = [c for c in ("image_name", "category") if c not in table.columns]
    if caption_col is None:
        missing.append("abstracted (or caption)")
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {missing}; found {list(table.columns)}. "
            "captions.txt is tab-separated with a header row."
        )
    names = table["image_name"].map(image_key)
    duplicated = names[names.duplicated()].unique()
    if len(duplicated):
        raise DatasetError(
            f"{path}: image name(s) {list(duplicated[:5])} appear more than once; "
            "each image must have exactly one caption row"
        )
    category = table["category"].str.strip().str.lower()
    for line, (name, cat, text) in enumerate(
        zip(names, category, table[caption_col].str.strip()), start=2
    ):
        if not cat:
            raise DatasetError(f"{path}, line {line}: caption row of {name} has no category")
        if cat not in CATEGORIES:
            raise DatasetError(
                f"{path}, line {line}: category {cat!r} of {name} is not one of the 20 "
                f"categories {CATEGORIES}"
            )
        if not text:
            raise DatasetError(f"{path}, line {line}: image {name} has an empty caption")
    captions = pd.DataFrame(
        {
            "image_name": names,
            "category": category,
            "category_id": category.map(CATEGORIES.index).astype(np.int64),
            "caption": table[caption_col].str.strip(),
        }
    )
    unique_texts = sorted(captions["caption"].unique())
    caption_ids = {text: i for i, text in enumerate(unique_texts)}
    captions["caption_id"] = captions["caption"].map(caption_ids).astype(np.int64)
    captions["image_path"] = None
    if images_dir is not None:
        captions["image_path"] = _resolve_images(captions["image_name"], Path(images_dir))
    return captions.reset_index(drop=True)


def _resolve_images(names: pd.Series, images_dir: Path) -> list[str]:
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: image folder not found")
    on_disk = {}
    for entry in os.scandir(images_dir):
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in IMAGE_EXTENSIONS:
            on_disk.setdefault(stem, entry.path)
    paths = []
    for name in names:
        if name not in on_disk:
            raise DatasetError(
                f"{images_dir}: no image file for {name} (looked for "
                f"{name}{{{','.join(IMAGE_EXTENSIONS)}}}); copy the image in or pass "
                "check_images=False to load without images"
            )
        paths.append(on_disk[name])
    return paths


def _find_images_dir(root: Path) -> Path | None:
    """The image folder at the root, or None when the copy has none."""
    for name in IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    return None


def _category_folder(file_path: str) -> str | None:
    """The category named by the folder of a trial's ``FilePath`` (``...\\bird\\x.jpg``), if any."""
    parts = re.split(r"[\\/]", str(file_path).strip())
    folder = parts[-2].strip().lower() if len(parts) > 1 else ""
    return folder if folder in CATEGORIES else None


def _stimulus_lists(root: Path) -> dict[str, str]:
    """Image key -> category from the published ``stimuli/<category>.csv`` lists.

    The published copy has one list per category (500 images each, from ImageNet
    and PASCAL). Every cell of a list that names an image counts, whatever its
    column, so the check does not depend on the lists' exact columns; empty or
    unreadable lists are skipped. Returns {} when there is no ``stimuli/`` folder.
    """
    listed: dict[str, str] = {}
    for category in CATEGORIES:
        path = root / STIMULI_FOLDER / f"{category}.csv"
        if not path.is_file() or path.stat().st_size == 0:
            continue
        try:
            table = pd.read_csv(path, dtype=str, header=None, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
        for cell in table.to_numpy().ravel():
            key = image_key(cell)
            if key and cell.strip().lower().endswith(IMAGE_EXTENSIONS):
                listed.setdefault(key, category)
    return listed


def _read_image_csv(path: Path) -> tuple[list[str], list[str | None]]:
    """Each trial's image key, and the category its ``FilePath`` folder names (or None)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc})") from exc
    if "FilePath" not in table.columns:
        raise DatasetError(
            f"{path}: no FilePath column (found {list(table.columns)}); the run's "
            "image CSV must name each trial's image in FilePath"
        )
    return [image_key(p) for p in table["FilePath"]], [_category_folder(p) for p in table["FilePath"]]


def _images_without_captions(trials: pd.DataFrame, run_files: list[RunFiles],
                             images: Path | None) -> pd.DataFrame:
    """The image table of a copy without captions.txt: one row per image shown, by name.

    Raises :class:`DatasetError` when two runs file the same image under different
    categories.
    """
    pairs = trials.drop_duplicates(["image_name", "category_id"])
    clash = pairs[pairs["image_name"].duplicated(keep=False)]
    if len(clash):
        name = clash["image_name"].iloc[0]
        shown = trials[trials["image_name"] == name].drop_duplicates("category_id")
        where = [f"{run_files[r].json.name} ({c})" for r, c in zip(shown["run_index"], shown["category"])]
        raise DatasetError(
            f"image {name!r} is labelled with different categories in {where}; the label JSONs "
            "disagree (fix them, or add captions.txt to say which is right)"
        )
    table = pairs.sort_values("image_name")[["image_name", "category", "category_id"]].reset_index(drop=True)
    table["caption"] = ""
    table["caption_id"] = -1
    table["image_path"] = None if images is None else _resolve_images(table["image_name"], images)
    return table


def require_captions(data: EEGData, what: str = "caption retrieval", images: bool = True) -> None:
    """Raise :class:`CaptionsRequired` unless ``data`` has captions (and images).

    Notebooks 04 and 05 call it first, so a copy without them stops with a message
    that says what is missing and where it goes.

    Parameters
    ----------
    data : EEGData
    what : str, default="caption retrieval"
        What needs them, for the message.
    images : bool, default=True
        Require the image files too (CLIP image queries).
    """
    needed = [part for part in ("captions", "images") if part in data.missing and (images or part == "captions")]
    if not needed:
        return
    where = {"captions": f"{data.root / CAPTIONS_FILE}",
             "images": f"{data.root / IMAGE_FOLDERS[0]}/ (one file per image_name of captions.txt)"}
    raise CaptionsRequired(
        f"{data.root}: {what} needs the course's {' and '.join(needed)}, which this copy of "
        f"ds005589 lacks (the published OpenNeuro copy has no captions.txt and no images). Put "
        + " and ".join(f"the {part} at {where[part]}" for part in needed)
        + ", or set data_dir to a copy that has them. Task 1 (notebooks 01 to 03) runs without them."
    )
