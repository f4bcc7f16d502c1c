"""Fixed vocabulary of ds005589: electrode names, categories and subjects.

The published files carry no channel names (the run's ``_1000Hz.json`` is a list of
labels), so eegkit ships a default montage. It is **not** the recording's own cap
layout, which the dataset does not publish: it is a 122-electrode subset of the
10-05 system (Oostenveld & Praamstra, 2001, *Clin. Neurophysiol.* 112:713), named as
in MNE-Python's ``colin27_1005`` montage: the 86 positions of the 10-10 system (MNE's
``colin27_1020`` without the old aliases T3/T4/T5/T6 and the mastoid/ear
references, with I1/I2 for O9/O10, which the 10-05 template lacks)
plus 36 half-positions over the parieto-occipital and central scalp, where visual
evoked responses are largest. Pass ``channel_names=`` to the loader to override it.
"""

from __future__ import annotations

import numpy as np

#: 122 electrode names of the 10-05 system (see the module docstring for the source).
DEFAULT_CHANNELS: tuple[str, ...] = (
    "Fp1", "Fpz", "Fp2", "AF9", "AF7", "AF5", "AF3", "AF1", "AFz", "AF2", "AF4", "AF6",
    "AF8", "AF10", "F9", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8", "F10",
    "FT9", "FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "FT10", "T9",
    "T7", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "T8", "T10", "TP9", "TP7", "CP5",
    "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "TP8", "TP10", "P9", "P7", "P5", "P3",
    "P1", "Pz", "P2", "P4", "P6", "P8", "P10", "PO9", "PO7", "PO5", "PO3", "PO1", "POz",
    "PO2", "PO4", "PO6", "PO8", "PO10", "O1", "Oz", "O2", "I1", "Iz", "I2", "PPO9h",
    "PPO7h", "PPO5h", "PPO3h", "PPO1h", "PPO2h", "PPO4h", "PPO6h", "PPO8h", "PPO10h",
    "POO9h", "POO7h", "POO5h", "POO3h", "POO1h", "POO2h", "POO4h", "POO6h", "POO8h",
    "POO10h", "OI1h", "OI2h", "CCP5h", "CCP3h", "CCP1h", "CCP2h", "CCP4h", "CCP6h",
    "CPP5h", "CPP3h", "CPP1h", "CPP2h", "CPP4h", "CPP6h", "FCC1h", "FCC2h",
)

#: The 20 object categories; a label index is the position in this alphabetical list.
CATEGORIES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "flower", "horse", "motorbike", "person", "sheep",
    "sofa", "train", "tvmonitor",
)

#: The 13 subjects of the course handout (section 2.3).
HANDOUT_SUBJECTS: tuple[str, ...] = (
    "sub-02", "sub-03", "sub-05", "sub-09", "sub-14", "sub-15", "sub-17", "sub-19",
    "sub-20", "sub-23", "sub-24", "sub-28", "sub-29",
)

#: Every subject of the published set with all 5 sessions x 4 low-speed runs
#: (the handout's 13 plus sub-26).
PUBLISHED_COMPLETE_SUBJECTS: tuple[str, ...] = tuple(
    sorted(HANDOUT_SUBJECTS + ("sub-26",))
)

MONTAGE_NAME = "colin27_1005"


def channel_positions(channel_names: tuple[str, ...] | list[str] = DEFAULT_CHANNELS):
    """3-D head positions of electrodes, from MNE's template montage.

    Parameters
    ----------
    channel_names : sequence of str, default=DEFAULT_CHANNELS
        Names of the 10-05 system.

    Returns
    -------
    positions : ndarray, shape (n_chans, 3), metres
        Positions in MNE's head frame (x right, y front, z up).

    Raises
    ------
    ValueError
        If a name is not a position of the 10-05 template.
    """
    import mne

    montage = mne.channels.make_standard_montage(MONTAGE_NAME)
    known = montage.get_positions()["ch_pos"]
    unknown = [name for name in channel_names if name not in known]
    if unknown:
        raise ValueError(
            f"channel names {unknown[:5]} are not 10-05 positions of MNE's "
            f"{MONTAGE_NAME!r} montage; pass channel names of the 10-05 system"
        )
    return np.array([known[name] for name in channel_names], dtype=float)


def make_info(channel_names=DEFAULT_CHANNELS, sfreq: float = 1000.0):
    """An ``mne.Info`` for scalp maps, with the template montage set.

    Parameters
    ----------
    channel_names : sequence of str, default=DEFAULT_CHANNELS
    sfreq : float, default=1000.0
        Sampling rate in Hz.
    """
    import mne

    info = mne.create_info(list(channel_names), sfreq=sfreq, ch_types="eeg")
    info.set_montage(mne.channels.make_standard_montage(MONTAGE_NAME))
    return info
