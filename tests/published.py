"""The published ds005589 tree as downloaded from OpenNeuro, rebuilt from its file list.

``tests/data/ds005589-published/files-lowspeed.txt`` lists every low-speed path of
the published dataset. :func:`build_skeleton` creates each of them as an empty file,
then fills the runs of a few subjects with small arrays, label JSONs in the published
form (a list of 100 category indices, as the real ``sub-02_ses-01`` run JSON) and
``_image.csv`` rows in the published ``FilePath`` form. Captions and images are not
part of the published copy, so the skeleton has none.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from eegkit import CATEGORIES

PUBLISHED = Path(__file__).resolve().parent / "data" / "ds005589-published"
FILE_LIST = PUBLISHED / "files-lowspeed.txt"
REAL_RUN_JSON = PUBLISHED / "sub-02_ses-01_task-lowSpeed_run-01_1000Hz.json"
#: The 14 subjects with all 5 sessions x 4 low-speed runs (NOTES.md).
COMPLETE_SUBJECTS = ("sub-02", "sub-03", "sub-05", "sub-09", "sub-14", "sub-15", "sub-17", "sub-19",
                     "sub-20", "sub-23", "sub-24", "sub-26", "sub-28", "sub-29")
#: Samples per trial of the filled runs: small, the loader accepts any epoch length.
N_TIMES = 10


def published_paths() -> list[str]:
    return [line.strip() for line in FILE_LIST.read_text().splitlines() if line.strip()]


def build_skeleton(root: Path, filled: tuple[str, ...] = ("sub-02", "sub-03"), seed: int = 0) -> Path:
    """Write the empty published tree under ``root`` and fill the runs of ``filled``.

    Each filled run gets the real run JSON's labels in a per-run shuffled order,
    ``(100, 122, N_TIMES)`` float32 arrays, and ``_image.csv`` rows
    ``C:\\Users\\...\\pic_10000_resized\\<category>\\<image>_resized.jpg``.
    """
    rng = np.random.default_rng(seed)
    real_labels = json.loads(REAL_RUN_JSON.read_text())
    for relative in published_paths():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    derivatives = root / "derivatives" / "preprocessed_data"
    for npy in sorted(derivatives.glob("sub-*/ses-*/*_task-lowSpeed_run-*_1000Hz.npy")):
        subject, session = npy.parts[-3], npy.parts[-2]
        if subject not in filled:
            continue
        labels = [int(v) for v in rng.permutation(real_labels)]
        np.save(npy, rng.standard_normal((len(labels), 122, N_TIMES)).astype(np.float32))
        npy.with_suffix(".json").write_text(json.dumps(labels))
        stem = npy.name.removesuffix("_1000Hz.npy")
        counters = {c: 0 for c in range(len(CATEGORIES))}
        paths = []
        for label in labels:
            counters[label] += 1
            image = 1000 * label + 10 * int(session[-2:]) + counters[label]
            paths.append(f"C:\\Users\\lab\\Desktop\\pic_10000_resized\\{CATEGORIES[label]}\\{image:06d}_resized.jpg")
        pd.DataFrame({"FilePath": paths}).to_csv(root / subject / session / f"{stem}_image.csv", index=False)
    return root
