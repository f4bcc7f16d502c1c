"""Where ds005589's files are: the two layouts, the list of runs, the subjects chosen.

Two layouts are recognised from the root folder:

* ``course`` (handout 2.2.3): ``sub-XX/ses-YY/`` holds each run's ``_1000Hz.npy``,
  ``_1000Hz.json`` and ``_image.csv``;
* ``openneuro`` (the published ds005589): the ``.npy`` and ``.json`` live under
  ``derivatives/preprocessed_data/sub-XX/ses-YY/`` and the ``_image.csv`` in the raw
  ``sub-XX/ses-YY/`` folder.

Only folder listings are read here; :mod:`eegkit.data.loading` opens the files.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eegkit.data.channels import HANDOUT_SUBJECTS

#: Epoch window of the published preprocessing (0 to 500 ms after onset). The
#: sampling rate of a run whose JSON carries none is ``n_times / EPOCH_SECONDS``.
EPOCH_SECONDS = 0.5
N_SESSIONS = 5
TWIN_MANIFEST = "eegkit_twin.json"
_RUN_RE = re.compile(
    r"^(?P<subject>sub-[^_]+)_(?P<session>ses-[^_]+)_task-lowSpeed_"
    r"(?P<run>run-[^_]+)_(?P<kind>1000Hz\.npy|1000Hz\.json|image\.csv)$"
)


class DatasetError(ValueError):
    """A ds005589 file is missing or does not agree with the others.

    The message names the file, what is wrong with it and how to fix it.
    """


@dataclass(frozen=True)
class RunFiles:
    """The three files of one low-speed run."""

    subject: str
    session: str
    run: str
    npy: Path
    json: Path
    csv: Path


def detect_layout(root: str | os.PathLike) -> str:
    """Say which ds005589 layout lives at ``root``.

    Returns
    -------
    layout : {"course", "openneuro"}
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: no such folder. Point EEGKIT_DATA (or data_dir=) at the "
            "ds005589 root, or leave it unset to use the synthetic twin."
        )
    if (root / "derivatives" / "preprocessed_data").is_dir():
        return "openneuro"
    _refuse_a_folder_inside_the_dataset(root)
    if any(root.glob("sub-*/ses-*/*_task-lowSpeed_run-*_1000Hz.npy")):
        return "course"
    raise DatasetError(
        f"{root}: found neither derivatives/preprocessed_data/ (OpenNeuro layout) nor "
        "sub-XX/ses-YY/*_task-lowSpeed_run-ZZ_1000Hz.npy (course layout); is this "
        "the ds005589 root?"
    )


def _refuse_a_folder_inside_the_dataset(root: Path) -> None:
    """Name the dataset root when ``root`` is a folder inside it (a common first mistake)."""
    if root.name == "preprocessed_data" and root.parent.name == "derivatives":
        dataset = root.parent.parent
        raise DatasetError(
            f"{root}: this is the derivatives/preprocessed_data folder of the published "
            f"(OpenNeuro) layout, whose _image.csv files sit in the raw folders beside it. "
            f"Point data_dir (or EEGKIT_DATA) at the dataset root, {dataset}"
        )
    if re.fullmatch(r"sub-\w+", root.name) and any(root.glob("ses-*")):
        raise DatasetError(
            f"{root}: this is one subject's folder. Point data_dir (or EEGKIT_DATA) at the "
            f"dataset root that holds it, {root.parent}, and choose subjects with "
            f"subjects=[{root.name!r}]"
        )
    if re.fullmatch(r"ses-\w+", root.name) and re.fullmatch(r"sub-\w+", root.parent.name):
        raise DatasetError(
            f"{root}: this is one session's folder. Point data_dir (or EEGKIT_DATA) at the "
            f"dataset root, {root.parent.parent}, and choose it with subjects=[{root.parent.name!r}], "
            f"sessions=[{root.name!r}]"
        )


def scan_runs(root: str | os.PathLike, layout: str | None = None) -> pd.DataFrame:
    """List every low-speed run's files without opening any of them.

    Returns
    -------
    runs : DataFrame
        Columns ``subject``, ``session``, ``run``, ``npy``, ``json``, ``csv`` (paths,
        or None where the file is missing), sorted by subject, session and run.
    """
    root = Path(root)
    layout = layout or detect_layout(root)
    eeg_dir = root / "derivatives" / "preprocessed_data" if layout == "openneuro" else root
    found: dict[tuple[str, str, str], dict[str, Path]] = {}
    patterns = [(eeg_dir, "1000Hz.npy"), (eeg_dir, "1000Hz.json"), (root, "image.csv")]
    for base, suffix in patterns:
        for path in base.glob(f"sub-*/ses-*/*_task-lowSpeed_run-*_{suffix}"):
            match = _RUN_RE.match(path.name)
            if match is None:
                continue
            key = (match["subject"], match["session"], match["run"])
            found.setdefault(key, {})[match["kind"]] = path
    rows = [
        {
            "subject": s,
            "session": ses,
            "run": r,
            "npy": files.get("1000Hz.npy"),
            "json": files.get("1000Hz.json"),
            "csv": files.get("image.csv"),
        }
        for (s, ses, r), files in sorted(found.items())
    ]
    return pd.DataFrame(rows, columns=["subject", "session", "run", "npy", "json", "csv"])


def complete_subjects(
    root: str | os.PathLike, n_sessions: int = N_SESSIONS
) -> tuple[str, ...]:
    """Subjects with ``n_sessions`` sessions that all have the full number of runs.

    The full number of runs is the largest any session of the dataset has (4 in
    ds005589). Only folder listings are read.
    """
    runs = scan_runs(root)
    if runs.empty:
        return ()
    per_session = runs.groupby(["subject", "session"]).size()
    full = per_session.max()
    complete = per_session[per_session == full].groupby(level="subject").size()
    return tuple(sorted(complete[complete >= n_sessions].index))


def _normalise_session(session: str | int) -> str:
    return f"ses-{int(session):02d}" if isinstance(session, int) else str(session)


def _select_subjects(root: Path, runs: pd.DataFrame, subjects) -> tuple[str, ...]:
    present = set(runs["subject"])
    if isinstance(subjects, str) and subjects == "complete":
        chosen = complete_subjects(root)
        if not chosen:
            raise DatasetError(f"{root}: no subject has all {N_SESSIONS} sessions")
        return chosen
    if isinstance(subjects, str) and subjects != "handout":
        subjects = (subjects,)  # one subject ID, not its characters
    chosen = HANDOUT_SUBJECTS if subjects in (None, "handout") else tuple(subjects)
    missing = [s for s in chosen if s not in present]
    if missing:
        raise DatasetError(
            f"{root}: subject(s) {missing} have no low-speed runs here (found "
            f"{sorted(present)}). Pass subjects='complete' to use the subjects that "
            "have all sessions, or a list of subject IDs."
        )
    return tuple(chosen)


def _warn_incomplete_subjects(root: Path, runs: pd.DataFrame) -> None:
    """Warn (once per call) about chosen subjects that lack some of the 5 sessions.

    They are loaded as they are: a session split then has fewer (or no) test trials
    for them. ``subjects="complete"`` keeps only subjects with every session.
    """
    sessions = runs.groupby("subject")["session"].unique()
    partial = {s: sorted(v) for s, v in sessions.items() if len(v) < N_SESSIONS}
    if partial:
        listed = "; ".join(f"{s} has only {', '.join(v)}" for s, v in partial.items())
        warnings.warn(
            f"{root}: {listed} (of {N_SESSIONS} sessions). These subjects are loaded as they "
            "are; pass subjects='complete' to keep only subjects with every session.",
            stacklevel=3,
        )
