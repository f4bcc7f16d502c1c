"""Train / validation / test splits of the trial table, as named protocols.

* ``session`` (default, handout 2.7): per subject, 3 sessions train, 1 validation,
  1 test. Which sessions is configurable.
* ``cross_subject``: whole subjects held out for validation and test.
* ``within_session``: each (subject, session)'s trials split by category-stratified
  shuffle, Wang et al.'s within-session setting (~10 % accuracy in their paper).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eegkit._checks import check_option
PROTOCOLS = ("session", "cross_subject", "within_session")


@dataclass(frozen=True, repr=False)
class Split:
    """Row positions of the trial table in each part of a protocol.

    Attributes
    ----------
    protocol : str
    train, val, test : ndarray of int
        Row positions in ``EEGData.trials``, ascending.
    description : str
        One line a report can print.
    """

    protocol: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    description: str

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(rows)}" for name, rows in self.parts().items())
        return f"Split({self.protocol!r}, {sizes} trials: {self.description})"

    def summary(self, trials: pd.DataFrame) -> pd.DataFrame:
        """Trials, subjects and sessions in each part."""
        rows = []
        for name, rows_ in self.parts().items():
            part = trials.iloc[rows_]
            rows.append(
                {
                    "split": name,
                    "n_trials": len(part),
                    "n_subjects": part["subject"].nunique(),
                    "sessions": ", ".join(sorted(part["session"].unique())),
                }
            )
        return pd.DataFrame(rows)


def _rows(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def _session_names(values: Sequence[str | int]) -> list[str]:
    return [f"ses-{v:02d}" if isinstance(v, (int, np.integer)) else str(v) for v in values]


def make_split(
    trials: pd.DataFrame,
    protocol: str = "session",
    *,
    train_sessions: Sequence[str | int] | None = None,
    val_sessions: Sequence[str | int] | None = None,
    test_sessions: Sequence[str | int] | None = None,
    val_subjects: Sequence[str] | None = None,
    test_subjects: Sequence[str] | None = None,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> Split:
    """Split the trial table by a named protocol.

    Parameters
    ----------
    trials : DataFrame
        ``EEGData.trials``.
    protocol : {"session", "cross_subject", "within_session"}, default="session"
    train_sessions, val_sessions, test_sessions : sequence of str or int, optional
        ``session`` protocol: the sessions of each part, the same for every subject.
        Default: the first three sessions in order train, the fourth validation,
        the fifth test.
    val_subjects, test_subjects : sequence of str, optional
        ``cross_subject`` protocol: held-out subjects. Default: the last subject
        (in sorted order) for test, the one before it for validation.
    fractions : (float, float, float), default=(0.6, 0.2, 0.2)
        ``within_session`` protocol: train/validation/test share of each category's
        trials within every (subject, session).
    seed : int, default=0
        ``within_session`` protocol: seed of the shuffle.

    Returns
    -------
    split : Split

    Raises
    ------
    ValueError
        On an unknown protocol, a session or subject that is not in the table, or
        parts that overlap.
    """
    check_option("protocol", protocol, PROTOCOLS)
    if protocol == "session":
        return _session_split(trials, train_sessions, val_sessions, test_sessions)
    if protocol == "cross_subject":
        return _cross_subject_split(trials, val_subjects, test_subjects)
    return _within_session_split(trials, fractions, seed)


def _session_split(trials, train_sessions, val_sessions, test_sessions) -> Split:
    sessions = sorted(trials["session"].unique())
    if train_sessions is None and val_sessions is None and test_sessions is None:
        if len(sessions) < 3:
            raise ValueError(
                f"the session protocol needs at least 3 sessions; the table has {sessions}"
            )
        train_sessions, val_sessions, test_sessions = sessions[:-2], sessions[-2:-1], sessions[-1:]
    parts = {
        "train": _session_names(train_sessions or []),
        "val": _session_names(val_sessions or []),
        "test": _session_names(test_sessions or []),
    }
    for name, chosen in parts.items():
        if not chosen:
            raise ValueError(f"{name}_sessions is empty; give every part at least one session")
        unknown = sorted(set(chosen) - set(sessions))
        if unknown:
            raise ValueError(f"{name}_sessions {unknown} are not in the data ({sessions})")
    flat = [s for chosen in parts.values() for s in chosen]
    if len(flat) != len(set(flat)):
        raise ValueError(f"a session is in two parts: {parts}")
    session = trials["session"].to_numpy()
    masks = {name: np.isin(session, chosen) for name, chosen in parts.items()}
    description = "per subject: " + "; ".join(
        f"{name} {', '.join(chosen)}" for name, chosen in parts.items()
    )
    return Split("session", *(_rows(m) for m in masks.values()), description)


def _cross_subject_split(trials, val_subjects, test_subjects) -> Split:
    subjects = sorted(trials["subject"].unique())
    if isinstance(val_subjects, str):
        val_subjects = [val_subjects]
    if isinstance(test_subjects, str):
        test_subjects = [test_subjects]
    if test_subjects is None:
        test_subjects = subjects[-1:]
    if val_subjects is None:
        rest = [s for s in subjects if s not in test_subjects]
        val_subjects = rest[-1:]
    for name, chosen in (("val", val_subjects), ("test", test_subjects)):
        unknown = sorted(set(chosen) - set(subjects))
        if unknown:
            raise ValueError(f"{name}_subjects {unknown} are not in the data ({subjects})")
    if set(val_subjects) & set(test_subjects):
        raise ValueError(f"subjects {sorted(set(val_subjects) & set(test_subjects))} are in both val and test")
    subject = trials["subject"].to_numpy()
    val = np.isin(subject, list(val_subjects))
    test = np.isin(subject, list(test_subjects))
    train = ~(val | test)
    if not train.any():
        raise ValueError("no subject is left for training")
    description = (
        f"train on {train.sum()} trials of {len(subjects) - len(val_subjects) - len(test_subjects)} "
        f"subjects; val {', '.join(val_subjects)}; test {', '.join(test_subjects)}"
    )
    return Split("cross_subject", _rows(train), _rows(val), _rows(test), description)


def _within_session_split(trials, fractions, seed) -> Split:
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive shares summing to 1, not {fractions}")
    rng = np.random.default_rng(seed)
    assignment = np.full(len(trials), -1)
    groups = trials.groupby(["subject", "session", "category_id"], sort=True).indices
    for rows in groups.values():
        rows = rng.permutation(rows)
        n_val = max(1, round(fractions[1] * len(rows)))
        n_test = max(1, round(fractions[2] * len(rows)))
        n_train = len(rows) - n_val - n_test
        if n_train < 1:
            raise ValueError(
                f"a (subject, session, category) group has {len(rows)} trials, too few "
                "for three parts; use the session protocol"
            )
        assignment[rows[:n_train]] = 0
        assignment[rows[n_train : n_train + n_val]] = 1
        assignment[rows[n_train + n_val :]] = 2
    description = (
        "within every (subject, session), each category's trials shuffled into "
        f"train/val/test = {fractions[0]:.0%}/{fractions[1]:.0%}/{fractions[2]:.0%}"
    )
    return Split(
        "within_session",
        _rows(assignment == 0),
        _rows(assignment == 1),
        _rows(assignment == 2),
        description,
    )
