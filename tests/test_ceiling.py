"""The Bayes ceiling of the twin: the ideal observer that knows the generative model."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from eegkit import CATEGORIES, load_dataset
from eegkit.ceiling import IDEAL_OBSERVER, bayes_ceiling, with_ceiling
from eegkit.data.splits import make_split
from eegkit.twin.generator import TwinModel, load_twin_model, make_twin

FAST = dict(n_boot=100, n_perm=20)


@pytest.fixture(scope="module")
def session_ceiling(tiny_data):
    return bayes_ceiling(tiny_data, make_split(tiny_data.trials, "session"), **FAST)


def _binned(data, rows, n_bins=5):
    """Per-channel means in ``n_bins`` time windows: the features of a small LDA."""
    X = data.get_trials(rows)
    return X.reshape(len(X), X.shape[1], n_bins, -1).mean(axis=-1).reshape(len(X), -1)


def test_ceiling_is_above_chance_below_one(tiny_data, session_ceiling):
    split = make_split(tiny_data.trials, "session")
    c = session_ceiling
    assert c.protocol == "session" and c.part == "test"
    np.testing.assert_array_equal(c.rows, split.test)
    y = tiny_data.trials["category_id"].to_numpy()
    np.testing.assert_array_equal(c.y, y[split.test])
    assert c.n_trials == len(split.test) == 260
    assert c.log_posterior.shape == (260, len(CATEGORIES))
    np.testing.assert_allclose(np.exp(c.log_posterior).sum(axis=1), 1.0, rtol=1e-9)
    low, high = c.ci
    assert 1 / len(CATEGORIES) < low <= c.accuracy <= high < 1.0
    assert c.accuracy == pytest.approx(np.mean(c.y_hat == c.y))
    # common + 20 category templates in each of 5 sessions + 22 attribute values
    assert c.n_dims == 123
    assert "Bayes ceiling (session split, test)" in c.summary()


def test_ceiling_beats_a_trained_decoder_and_the_nearest_true_mean(tiny_data,
                                                                   session_ceiling):
    split = make_split(tiny_data.trials, "session")
    y = tiny_data.trials["category_id"].to_numpy()
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    lda.fit(_binned(tiny_data, split.train), y[split.train])
    lda_accuracy = np.mean(lda.predict(_binned(tiny_data, split.test)) == y[split.test])
    assert session_ceiling.accuracy > lda_accuracy + 0.1

    # Knowing the true means but not the noise (nearest mean in µV) is far from ideal.
    model = load_twin_model(tiny_data.root)
    trials = tiny_data.trials.iloc[split.test]
    pool = np.arange(len(model.specs))
    category = np.array([CATEGORIES.index(s.category) for s in model.specs])
    hits = []
    for (subject, session), part in trials.groupby(["subject", "session"]):
        X = tiny_data.get_trials(split.test[trials.index.get_indexer(part.index)])
        s, e = model.preset.subjects.index(subject), int(session[-2:]) - 1
        means = model.evoked(s, e, pool)
        nearest = ((X[:, None] - means[None]) ** 2).sum(axis=(2, 3)).argmin(axis=1)
        hits.append(category[nearest] == part["category_id"].to_numpy())
    assert session_ceiling.accuracy > np.concatenate(hits).mean() + 0.1


def test_ideal_observer_is_calibrated(session_ceiling):
    # If the noise model were wrong (e.g. a covariance off by a factor of 2), the mean
    # confidence would be far from the accuracy.
    confidence = np.exp(session_ceiling.log_posterior).max(axis=1).mean()
    assert confidence == pytest.approx(session_ceiling.accuracy, abs=0.1)


def test_retrieval_ceiling_is_consistent(session_ceiling):
    table = session_ceiling.retrieval.set_index("metric")["value"]
    scores = session_ceiling.scores.set_index("metric")["value"]
    # Ranking the best caption of each category first: class-aware Recall@k is top-k
    # accuracy of the category posterior.
    assert table["Recall@1 (class-aware)"] == pytest.approx(scores["accuracy"])
    assert table["Recall@5 (class-aware)"] == pytest.approx(scores["top5_accuracy"])
    for kind in ("instance", "class-aware"):
        values = [table[f"Recall@{k} ({kind})"] for k in (1, 3, 5)]
        assert values == sorted(values)
    for k in (1, 3, 5):
        assert table[f"Recall@{k} (instance)"] <= table[f"Recall@{k} (class-aware)"]
    chance = session_ceiling.retrieval.set_index("metric")["chance"]
    assert (table > chance).all()


def test_ceiling_is_one_without_noise_and_chance_without_signal(tmp_path):
    subjects = ("sub-02", "sub-03")
    accuracy = {}
    for name, snr in (("loud", 20.0), ("silent", 1e-3)):
        make_twin(tmp_path / name, preset="tiny", subjects=subjects, snr=snr,
                  progress=False)
        data = load_dataset(tmp_path / name, subjects=subjects)
        split = make_split(data.trials, "session")
        accuracy[name] = bayes_ceiling(data, split, n_noise_trials=500, **FAST).accuracy
    assert accuracy["loud"] == 1.0
    assert accuracy["silent"] < 0.2  # 40 trials, chance 0.05


def test_session_map_is_linear_and_the_noise_decomposes_as_the_observer_assumes():
    model = TwinModel.from_preset("tiny", 0)
    ids = np.array([0, 17, 42])
    subject = 3
    mixing = model.subject_mixing[subject] / model.noise_level[subject]
    for session in range(model.preset.n_sessions):
        A = model.session_matrix(subject, session)
        undone = np.linalg.solve(A, model.evoked(subject, session, ids)
                                 - model.session_offset[subject, session][None, :, None])
        S = model.source_response(subject, session, ids)
        np.testing.assert_allclose(undone, mixing @ S, atol=1e-9)
        noise = model.noise(np.random.default_rng(5), 4, subject, session)
        rng = np.random.default_rng(5)
        rest, wave = model.noise_parts(rng, 4)
        alpha = model.alpha_level[subject, session] * model.alpha_pattern[:, None] * wave[:, None]
        bad = model.bad_channel_noise(rng, 4, subject, session)
        np.testing.assert_allclose(noise, A @ (rest + alpha) + bad, atol=1e-9)
        # the bad-channel noise is on the session's bad channels only
        assert (bad.std(axis=(0, 2)) > 0).tolist() == model.bad_channels[subject, session].tolist()


def test_ceiling_refuses_real_data_and_bad_settings(tiny_data):
    split = make_split(tiny_data.trials, "session")
    real = dataclasses.replace(tiny_data, twin=None)
    with pytest.raises(ValueError, match="only for synthetic data"):
        bayes_ceiling(real, split)
    with pytest.raises(ValueError, match="part='holdout': choose one of"):
        bayes_ceiling(tiny_data, split, part="holdout")
    with pytest.raises(ValueError, match="too few"):
        bayes_ceiling(tiny_data, split, n_noise_trials=50)


def test_with_ceiling_adds_the_ideal_observer_and_each_accuracy_share(tiny_data):
    results = pd.DataFrame({
        "model": ["A", "A", "B"], "protocol": ["session", "session", "cross_subject"],
        "metric": ["accuracy", "top5_accuracy", "accuracy"], "value": [0.3, 0.6, 0.2]})
    table = with_ceiling(results, tiny_data, n_noise_trials=500, **FAST)
    ideal = table[(table["model"] == IDEAL_OBSERVER) & (table["metric"] == "accuracy")]
    assert sorted(ideal["protocol"]) == ["cross_subject", "session"]
    ceiling = ideal.set_index("protocol")["value"]
    assert (ideal["fraction_of_ceiling"] == 1.0).all()
    fraction = table.loc[:2, "fraction_of_ceiling"].to_numpy()
    assert fraction[0] == pytest.approx(0.3 / ceiling["session"])
    assert np.isnan(fraction[1])
    assert fraction[2] == pytest.approx(0.2 / ceiling["cross_subject"])
    assert table["fraction_of_ceiling"][table["metric"] != "accuracy"].isna().all()
    # One observer serves every protocol and gives what bayes_ceiling gives.
    alone = bayes_ceiling(tiny_data, make_split(tiny_data.trials, "session"),
                          n_noise_trials=500, **FAST)
    assert ceiling["session"] == pytest.approx(alone.accuracy)

    real = with_ceiling(results, dataclasses.replace(tiny_data, twin=None))
    assert len(real) == len(results) and real["fraction_of_ceiling"].isna().all()
