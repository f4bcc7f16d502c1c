import numpy as np
import torch
from conftest import ENCODER

from eegkit.data.alignment import euclidean_alignment, inverse_sqrt, subject_covariances
from eegkit.data.splits import make_split
from eegkit.data.torchdata import SplitDatasets


def test_inverse_sqrt_whitens_and_shrinkage_keeps_flat_directions_finite():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6))
    cov = A @ A.T + 0.1 * np.eye(6)
    W = inverse_sqrt(cov, shrinkage=0.0)
    np.testing.assert_allclose(W @ cov @ W.T, np.eye(6), atol=1e-8)
    np.testing.assert_allclose(W, W.T)
    flat = np.diag([1.0, 1.0, 0.0])  # a dead electrode
    assert np.isfinite(inverse_sqrt(flat, shrinkage=0.1)).all()


def test_aligned_training_trials_of_each_subject_have_identity_covariance(small_data):
    sets = SplitDatasets.from_split(small_data, make_split(small_data.trials, "session"))
    covariances = subject_covariances(sets.train)
    assert sorted(covariances) == sorted(np.unique(sets.train.subject_index).tolist())
    for subject, cov in covariances.items():
        W = inverse_sqrt(cov, shrinkage=0.0)
        np.testing.assert_allclose(W @ cov @ W.T, np.eye(len(cov)), atol=1e-6)
        # the mean covariance of the subject's own training trials, and of no other trial
        mine = np.flatnonzero(sets.train.subject_index == subject)
        X = np.stack([sets.train[i]["X"].numpy() for i in mine]).astype(np.float64)
        X -= X.mean(axis=2, keepdims=True)
        np.testing.assert_allclose(cov, np.mean([x @ x.T / x.shape[1] for x in X], axis=0), rtol=1e-5, atol=1e-8)


def test_run_classification_starts_the_subject_layer_at_the_training_alignment(small_data, normalizer_rows,
                                                                               monkeypatch):
    import eegkit.classification as classification
    from eegkit.classification import run_classification
    from eegkit.train import TrainConfig

    split = make_split(small_data.trials, "session")
    seen = []
    original = classification.euclidean_alignment

    def spy(dataset, *args, **kwargs):
        seen.append(np.sort(dataset.rows))
        return original(dataset, *args, **kwargs)

    monkeypatch.setattr(classification, "euclidean_alignment", spy)
    captured = {}
    original_fit = classification.fit

    def fit_spy(model, *args, **kwargs):
        captured["weights"] = {s: w.detach().clone() for s, w in model.subject_layer.weights.items()}
        return original_fit(model, *args, **kwargs)

    monkeypatch.setattr(classification, "fit", fit_spy)
    run_classification(small_data, split, "multihead", TrainConfig(max_epochs=1, device="cpu"),
                       model_kwargs={**ENCODER, "subject_layer": True}, align_subjects=True,
                       n_boot=10, n_perm=10, progress=False)
    assert len(seen) == 1 and np.array_equal(seen[0], np.sort(split.train))  # training trials only
    expected = euclidean_alignment(SplitDatasets.from_split(small_data, split).train)
    for index, matrix in expected.items():
        torch.testing.assert_close(captured["weights"][small_data.subjects[index]], torch.from_numpy(matrix))


def test_recording_aligner_whitens_each_recording_with_its_own_trials_in_its_part(small_data):
    """normalization="aligned": every recording of every part has (shrunk) identity mean
    covariance, computed from that recording's trials in that part only."""
    from eegkit.data.torchdata import RecordingAligner
    from eegkit.data.torchdata import recording_index

    split = make_split(small_data.trials, "session")
    sets = SplitDatasets.from_split(small_data, split, "aligned")
    assert isinstance(sets.test.normalizer, RecordingAligner)
    of_row = recording_index(small_data.trials)
    for part in ("train", "test"):
        dataset = getattr(sets, part)
        rows = dataset.rows
        rec = of_row[rows[0]]
        mine = np.flatnonzero(of_row[rows] == rec)
        X = np.stack([dataset[i]["X"].numpy() for i in mine]).astype(np.float64)
        raw = small_data.get_trials(rows[mine]).astype(np.float64)
        raw -= raw.mean(axis=2, keepdims=True)  # each trial centred on its time mean
        R = np.einsum("bct,bdt->cd", raw, raw) / (raw.shape[0] * raw.shape[2])
        W = inverse_sqrt(R, 0.05)  # from this recording's trials of this part, and no other
        np.testing.assert_allclose(X, np.einsum("cd,bdt->bct", W, raw), rtol=1e-3, atol=1e-3 * np.abs(X).max())
    # the test part's aligner knows only the test rows
    try:
        sets.test.normalizer.normalize_batch(np.zeros((1, small_data.n_chans, small_data.n_times), np.float32),
                                             split.train[:1])
    except ValueError as error:
        assert "not in the trials this aligner was fitted on" in str(error)
    else:
        raise AssertionError("a training row was aligned by the test part's aligner")
