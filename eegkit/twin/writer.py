"""Writing a twin: :func:`make_twin` writes ds005589's exact files from a
:class:`~eegkit.twin.model.TwinModel`, one run at a time (in worker processes if
asked), and :func:`load_twin_model` rebuilds the ground truth from a twin's manifest.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eegkit._checks import check_option
from eegkit._io import building_dir
from eegkit.data.channels import CATEGORIES
from eegkit.data.loading import TWIN_MANIFEST
from eegkit.twin.model import TwinModel
from eegkit.twin.preset import GENERATOR_VERSION, TwinPreset, get_preset, written_preset_fields
from eegkit.twin.stimuli import draw_image


def image_name(model: TwinModel, image_id: int) -> str:
    """File stem of a twin image, in the style of the PASCAL ids (``000123``)."""
    return f"{image_id + 1:06d}"


def make_twin(
    root: str | os.PathLike,
    *,
    preset: str | TwinPreset = "default",
    seed: int = 0,
    layout: str = "course",
    captions: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
    **overrides,
) -> TwinModel:
    """Write a synthetic twin of ds005589 at ``root``.

    The files are exactly those eegkit's loader reads from the real dataset. Runs
    are generated and written one at a time, so memory stays at one run even for
    the ``full`` preset. The twin is built in ``<root>.partial`` and renamed at the
    end, so an interrupted run never leaves a half-written twin at ``root``.

    Parameters
    ----------
    root : path-like
        Folder to create.
    preset : {"tiny", "default", "full"} or TwinPreset, default="default"
    seed : int, default=0
        Same seed and preset, same bytes.
    layout : {"course", "openneuro"}, default="course"
    captions : bool, default=True
        False writes the form of the published OpenNeuro copy: no ``captions.txt``
        and no images (the EEG, label JSONs and ``_image.csv`` files only).
    overwrite : bool, default=False
        Replace an existing folder at ``root``.
    progress : bool, default=True
        Show a progress bar over runs.
    workers : int, default=1
        Processes that draw and write runs side by side, each with one BLAS thread.
        Each run is drawn from its own seed, so the bytes do not depend on it. On 2
        cores, 2 workers write the ``default`` twin 1.7x as fast as one process
        (``benchmarks/twin_writing.py``). Each worker imports eegkit (and torch) and
        draws its own copy of the ground truth. They are spawned, so a script that
        calls this with ``workers > 1`` needs an ``if __name__ == "__main__":`` guard.
    **overrides
        Fields of :class:`TwinPreset` to replace (e.g. ``subjects=("sub-02",)``).

    Returns
    -------
    model : TwinModel
        The ground truth the twin was drawn from.
    """
    check_option("layout", layout, ("course", "openneuro"))
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers={workers!r}: give a positive number of processes")
    root = Path(root)
    if root.exists():
        if not overwrite:
            raise FileExistsError(f"{root} exists; pass overwrite=True to replace it")
        shutil.rmtree(root)
    preset = get_preset(preset, **overrides)
    model = TwinModel.from_preset(preset, seed)
    with building_dir(root) as partial:
        if captions:
            _write_stimuli(partial, model)
        _write_runs(partial, model, layout, seed, progress, captions, workers)
    return model


def _write_stimuli(partial: Path, model: TwinModel) -> None:
    """The images and captions.txt (the course's distribution; not in the published copy)."""
    preset = model.preset
    images = partial / "images"
    images.mkdir()
    for image_id, spec in enumerate(model.specs):
        draw_image(spec, preset.image_size).save(images / f"{image_name(model, image_id)}.jpg", quality=90)
    captions = pd.DataFrame(
        {
            "dataset": "twin",
            "category": [s.category for s in model.specs],
            "image_name": [f"{image_name(model, i)}.jpg" for i in range(len(model.specs))],
            "abstracted": [s.caption for s in model.specs],
        }
    )
    captions.to_csv(partial / "captions.txt", sep="\t", index=False)


def _write_runs(partial: Path, model: TwinModel, layout: str, seed: int, progress: bool,
                captions: bool, workers: int = 1) -> None:
    """Every run's EEG, label JSON and image CSV, and the twin's manifest."""
    preset = model.preset
    eeg_root = partial / "derivatives" / "preprocessed_data" if layout == "openneuro" else partial
    jobs = [
        (s, ses, r)
        for s in range(len(preset.subjects))
        for ses in range(preset.n_sessions)
        for r in range(preset.n_runs)
    ]
    workers = min(workers, len(jobs))
    with tqdm(total=len(jobs), desc=f"twin {preset.name}", unit="run", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                _write_run(partial, eeg_root, model, job)
                bar.update()
        else:
            # spawn, not fork: a fork of a process that already ran torch's thread pools can hang
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_run_writer, initargs=(preset, seed))
            try:
                for future in as_completed([pool.submit(_write_run_in_worker, partial, eeg_root, job)
                                            for job in jobs]):
                    future.result()  # the first failed run raises here
                    bar.update()
            except BaseException:
                pool.shutdown(cancel_futures=True)  # drop the queued runs; the .partial folder goes
                raise
            pool.shutdown()

    manifest = {
        "generator": "eegkit.twin.make_twin",
        "generator_version": GENERATOR_VERSION,
        "preset": preset.name,
        "seed": seed,
        "layout": layout,
        "captions": captions,
        "preset_fields": dataclasses.asdict(preset),
    }
    (partial / TWIN_MANIFEST).write_text(json.dumps(manifest, indent=2))


def _write_run(partial: Path, eeg_root: Path, model: TwinModel, job: tuple[int, int, int]) -> None:
    """One run's three files: EEG ``.npy``, label ``.json`` and ``_image.csv``."""
    s, ses, r = job
    subject, session, run = model.preset.subjects[s], f"ses-{ses + 1:02d}", f"run-{r + 1:02d}"
    stem = f"{subject}_{session}_task-lowSpeed_{run}"
    eeg_dir = eeg_root / subject / session
    raw_dir = partial / subject / session
    eeg_dir.mkdir(parents=True, exist_ok=True)
    raw_dir.mkdir(parents=True, exist_ok=True)
    X, image_ids = model.run_trials(s, ses, r)
    np.save(eeg_dir / f"{stem}_1000Hz.npy", X)
    labels = [CATEGORIES.index(model.specs[i].category) for i in image_ids]
    (eeg_dir / f"{stem}_1000Hz.json").write_text(json.dumps(labels, indent=2))
    # The published CSVs point at resized copies on the experiment PC.
    paths = [
        f"C:\\stimuli\\pic_10000_resized\\{model.specs[i].category}\\"
        f"{image_name(model, i)}_resized.jpg"
        for i in image_ids
    ]
    pd.DataFrame({"FilePath": paths}).to_csv(raw_dir / f"{stem}_image.csv", index=False)


#: The ground truth of a worker process of ``make_twin(..., workers=N)``, drawn once.
_worker_model: TwinModel | None = None


def _init_run_writer(preset: TwinPreset, seed: int) -> None:
    global _worker_model
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency

    # one BLAS/FFT thread a worker: N workers each with a thread per core would
    # oversubscribe the cores N times over
    threadpool_limits(1)
    _worker_model = TwinModel.from_preset(preset, seed)


def _write_run_in_worker(partial: Path, eeg_root: Path, job: tuple[int, int, int]) -> None:
    _write_run(partial, eeg_root, _worker_model, job)


def load_twin_model(root: str | os.PathLike) -> TwinModel:
    """Rebuild the ground truth of the twin at ``root`` from its manifest."""
    manifest_path = Path(root) / TWIN_MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: not found; {root} is not an eegkit twin")
    manifest = json.loads(manifest_path.read_text())
    version = manifest.get("generator_version")
    if version != GENERATOR_VERSION:
        raise ValueError(
            f"{manifest_path}: written by twin generator version {version}, and this "
            f"eegkit draws version {GENERATOR_VERSION}, so its ground truth cannot be "
            "rebuilt; write the twin again with eegkit.twin.make_twin (or delete it "
            "and let open_dataset write it)")
    fields = written_preset_fields(manifest)
    fields["subjects"] = tuple(fields["subjects"])
    return TwinModel.from_preset(TwinPreset(**fields), manifest["seed"])
