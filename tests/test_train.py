import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from eegkit.classification import ClassificationObjective
from eegkit.models import MultiHeadEEGNet, WangFC
from eegkit.train import (
    SubjectBalancedSampler,
    TrainConfig,
    fit,
    predict,
)

N_CHANS, N_TIMES = 8, 50


class EasyTrials(Dataset):
    """Class-dependent means plus noise: a model that trains at all learns it."""

    def __init__(self, n, seed, n_subjects=3, n_classes=4):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, n_classes, (n,), generator=g)
        self.subject = torch.arange(n) % n_subjects
        means = torch.randn(n_classes, N_CHANS, N_TIMES, generator=torch.Generator().manual_seed(99))
        self.X = means[self.y] + 0.5 * torch.randn(n, N_CHANS, N_TIMES, generator=g)
        self.subject_index = self.subject.numpy()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"X": self.X[i], "y": self.y[i], "subject": self.subject[i], "row": torch.tensor(i)}


def small_model(seed=0):
    torch.manual_seed(seed)
    return WangFC(N_CHANS, N_TIMES, 100.0, n_outputs=4, hidden=32, target_sfreq=100.0)


CONFIG = TrainConfig(max_epochs=3, batch_size=16, lr=3e-3, patience=10, seed=1)


def test_fit_learns_and_records_history():
    result = fit(small_model(), ClassificationObjective(), EasyTrials(160, 0), EasyTrials(64, 1), CONFIG, progress=False)
    history = result.history
    assert list(history.columns[:5]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
    assert len(history) == 3 and history["val_acc"].iloc[-1] > 0.8
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    out = predict(result.model, EasyTrials(64, 1))
    assert out["logits"].shape == (64, 4) and (out["logits"].argmax(1) == out["y"]).mean() > 0.8


def test_fit_records_an_objectives_extra_counts_as_shares_of_the_trials():
    from eegkit.train import StepOutput

    class WithEvenLabels(ClassificationObjective):
        """Classification plus one extra count: the batch's trials with an even label."""

        def __call__(self, model, batch):
            out = super().__call__(model, batch)
            return StepOutput(out.loss, out.n_correct, out.n, extra={"even": int((batch["y"] % 2 == 0).sum())})

    train_set, val_set = EasyTrials(96, 0), EasyTrials(40, 1)
    history = fit(small_model(), WithEvenLabels(), train_set, val_set, CONFIG, progress=False).history
    # every epoch sees every trial once, so the shares are those of the whole sets
    np.testing.assert_allclose(history["train_even"], float((train_set.y % 2 == 0).float().mean()))
    np.testing.assert_allclose(history["val_even"], float((val_set.y % 2 == 0).float().mean()))
    plain = fit(small_model(), ClassificationObjective(), train_set, val_set, CONFIG, progress=False).history
    assert not any(c.endswith("_even") for c in plain.columns)


def test_same_seed_same_weights():
    a = fit(small_model(), ClassificationObjective(), EasyTrials(96, 0), EasyTrials(32, 1), CONFIG, progress=False)
    b = fit(small_model(), ClassificationObjective(), EasyTrials(96, 0), EasyTrials(32, 1), CONFIG, progress=False)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k


class Interrupt(Exception):
    pass


class InterruptingObjective(ClassificationObjective):
    """Raises at a given training call, as a killed run would."""

    def __init__(self, at_call):
        super().__init__()
        self.calls, self.at_call = 0, at_call

    def __call__(self, model, batch):
        if model.training:
            self.calls += 1
            if self.calls == self.at_call:
                raise Interrupt
        return super().__call__(model, batch)


@pytest.mark.parametrize("balanced", [True, False])
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, balanced):
    train, val = EasyTrials(96, 0), EasyTrials(32, 1)
    config = TrainConfig(max_epochs=3, batch_size=16, lr=3e-3, patience=10, seed=1, subject_balanced=balanced)
    reference = fit(small_model(), ClassificationObjective(), train, val, config, progress=False)
    checkpoint = tmp_path / "run.pt"
    steps_per_epoch = 96 // 16
    with pytest.raises(Interrupt):  # dies in the middle of epoch 2
        fit(small_model(), InterruptingObjective(steps_per_epoch + 3), train, val, config,
            checkpoint=checkpoint, progress=False)
    assert checkpoint.is_file() and not list(tmp_path.glob(".run.pt*"))  # no temp file left
    resumed = fit(small_model(seed=5), ClassificationObjective(), train, val, config,
                  checkpoint=checkpoint, progress=False)
    assert resumed.history["epoch"].tolist() == [1, 2, 3]
    assert reference.reused_epochs == 0 and resumed.reused_epochs == 1  # epoch 1 came from the checkpoint
    for (k, va), vb in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k
    # a finished run is returned from its checkpoint without training again
    again = fit(small_model(seed=6), InterruptingObjective(1), train, val, config, checkpoint=checkpoint,
                progress=False)
    assert again.best_epoch == resumed.best_epoch and again.reused_epochs == 3


def test_early_stopping_keeps_the_best_epoch():
    config = TrainConfig(max_epochs=30, batch_size=16, lr=3e-2, patience=2, seed=0)
    result = fit(small_model(), ClassificationObjective(), EasyTrials(64, 0), EasyTrials(32, 1), config, progress=False)
    history = result.history
    assert result.best_epoch == history.loc[history["val_loss"].idxmin(), "epoch"]
    if result.stopped_early:
        assert len(history) == result.best_epoch + 2


def test_subject_balanced_sampler_interleaves_subjects():
    subjects = np.array([0] * 50 + [1] * 30 + [2] * 20)
    sampler = SubjectBalancedSampler(subjects, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(100))  # every trial once
    first_rounds = subjects[order[:60]]
    for start in range(0, 60, 3):  # while all subjects have trials, each round of 3 has all
        assert set(first_rounds[start : start + 3]) == {0, 1, 2}
    sampler.set_epoch(1)
    assert list(sampler) != order


class RecordingObjective(ClassificationObjective):
    """Records the subjects of every training batch."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def __call__(self, model, batch):
        if model.training:
            self.batches.append(batch["subject"].tolist())
        return super().__call__(model, batch)


class UnevenTrials(EasyTrials):
    """80 trials of subject 0, 10 of subject 1 and 6 of subject 2."""

    def __init__(self, seed):
        super().__init__(96, seed)
        self.subject = torch.tensor([0] * 80 + [1] * 10 + [2] * 6)
        self.subject_index = self.subject.numpy()


@pytest.mark.parametrize("balanced", [True, False])
def test_multihead_trains_with_the_subject_balanced_sampler(balanced):
    model = MultiHeadEEGNet(N_CHANS, N_TIMES, 100.0, ("a", "b", "c"), n_outputs=4, d=16,
                            n_layers=1, n_heads=2, cnn_kwargs={"target_sfreq": 100.0})
    objective = RecordingObjective()
    result = fit(model, objective, UnevenTrials(0), EasyTrials(48, 1),
                 TrainConfig(max_epochs=2, batch_size=12, lr=3e-3, subject_balanced=balanced), progress=False)
    assert np.isfinite(result.history["val_loss"]).all()
    first = objective.batches[0]
    if balanced:  # rounds of one trial per subject: the rare subjects fill a third of the batch each
        assert [first.count(s) for s in range(3)] == [4, 4, 4]
    else:  # plain shuffling follows the 80/10/6 proportions
        assert first.count(0) > 4


class ShiftedLabels(EasyTrials):
    """The same signals as EasyTrials with every label moved to the next class.

    As validation data, the better a model learns the training mapping, the worse
    its validation loss: the loss rises after the first epochs.
    """

    def __init__(self, n, seed):
        super().__init__(n, seed)
        self.y = (self.y + 1) % 4


def test_fit_returns_the_best_epoch_not_the_last(tmp_path):
    val_set = ShiftedLabels(64, 1)
    config = TrainConfig(max_epochs=5, batch_size=16, lr=3e-3, patience=10, seed=1)
    result = fit(small_model(), ClassificationObjective(), EasyTrials(160, 0), val_set, config, progress=False)
    history = result.history
    assert history["val_loss"].iloc[-1] > history["val_loss"].min() + 0.5  # the rise is clear
    from eegkit.train import evaluate_loss, make_loader

    loss, _ = evaluate_loss(result.model, ClassificationObjective(), make_loader(val_set, 64), torch.device("cpu"))
    assert loss == pytest.approx(history["val_loss"].min(), rel=1e-5)


def test_checkpoints_hold_plain_tensors_and_load_with_weights_only(tmp_path):
    checkpoint = tmp_path / "run.pt"
    fit(small_model(), ClassificationObjective(), EasyTrials(64, 0), EasyTrials(32, 1),
        TrainConfig(max_epochs=2, batch_size=16, seed=1), checkpoint=checkpoint, progress=False)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["state"]["best_epoch"] >= 1 and saved["state"]["best_state"]


def test_resolve_device_explains_a_cuda_request_torch_cannot_serve(monkeypatch):
    from eegkit.train import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ValueError, match=r"device='cuda' but this torch \(.*\) has no CUDA: "
                       r"install a CUDA build \(pip install .*download.pytorch.org/whl/cu12"
                       r".*or use device='auto'"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="finds no CUDA GPU.*nvidia-smi"):
        resolve_device("cuda:0")
    with pytest.raises(ValueError, match="'gpu' is not a torch device"):
        resolve_device("gpu")


def test_fit_with_an_unusable_device_fails_before_training(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ValueError, match="has no CUDA"):
        fit(small_model(), ClassificationObjective(), EasyTrials(16, 0), EasyTrials(8, 1),
            TrainConfig(max_epochs=1, device="cuda"), progress=False)
