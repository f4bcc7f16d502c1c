"""The ideal observer is a ceiling: no model of the report scores above it, on any protocol.

A small twin (4 subjects, 3 trials per category in each session, so that the
within-session protocol can split every session) at the tiny preset's 122 x 125
samples; every model of the report is trained briefly, as under ``make test``, the
classical references included.
"""

import pandas as pd
import pytest

from eegkit import load_dataset
from eegkit.ceiling import IDEAL_OBSERVER, with_ceiling
from eegkit.classification import run_classification
from eegkit.data.splits import PROTOCOLS, make_split
from eegkit.twin.generator import make_twin
from eegkit.train import TrainConfig

MODELS = ("wang_fc", "eegnet", "shallow", "multihead", "lda", "logistic")
SUBJECTS = ("sub-02", "sub-03", "sub-05", "sub-09")


@pytest.fixture(scope="module")
def three_trial_twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("twin") / "three"
    make_twin(root, preset="tiny", subjects=SUBJECTS, trials_per_category=3,
              progress=False)
    return load_dataset(root, subjects=SUBJECTS)


@pytest.fixture(scope="module")
def table(three_trial_twin):
    data = three_trial_twin
    config = TrainConfig(max_epochs=3, batch_size=32, seed=0, device="cpu")
    rows = []
    for protocol in PROTOCOLS:
        split = make_split(data.trials, protocol)
        for name in MODELS:
            run = run_classification(data, split, name, config, n_boot=20, n_perm=1,
                                     progress=False)
            rows.append(run.results_rows())
    results = pd.concat(rows, ignore_index=True)
    return with_ceiling(results, data, n_noise_trials=600, n_boot=20, n_perm=1)


def test_every_protocol_has_every_model_and_the_ceiling(table):
    accuracy = table[table["metric"] == "accuracy"]
    assert accuracy.groupby("protocol")["model"].nunique().to_dict() == {
        p: len(MODELS) + 1 for p in PROTOCOLS}
    assert (accuracy["model"] == IDEAL_OBSERVER).sum() == len(PROTOCOLS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_model_scores_above_the_ideal_observer(table, protocol):
    accuracy = table[(table["metric"] == "accuracy") & (table["protocol"] == protocol)]
    by_model = accuracy.set_index("model")["value"]
    ceiling = by_model.pop(IDEAL_OBSERVER)
    assert ceiling > 0.05  # above chance: a ceiling that means something
    assert (by_model < ceiling).all(), by_model.to_dict() | {"ceiling": ceiling}
