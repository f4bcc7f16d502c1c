import numpy as np
import pytest
import torch

from eegkit.classification import ClassificationObjective
from eegkit.data.augment import AUGMENTATIONS, make_augmentation, time_shift


def test_time_shift_moves_each_trial_by_its_own_shift():
    X = torch.arange(10.0).repeat(2, 3, 1)  # (2 trials, 3 channels, 10 samples)
    out, y = time_shift(X, torch.tensor([4, 7]), torch.tensor([2, -1]))
    assert torch.equal(out[0, :, 2:], X[0, :, :-2]) and torch.equal(out[0, :, :2], X[0, :, -2:])
    assert torch.equal(out[1, :, :-1], X[1, :, 1:])
    assert torch.equal(y, torch.tensor([4, 7]))


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_augmentation_changes_some_trials_and_keeps_the_shape(name):
    X = torch.randn(64, 8, 200)
    out = make_augmentation([name], sfreq=1000.0, seed=0)(X, torch.zeros(64))[0]
    assert out.shape == X.shape
    changed = (out != X).flatten(1).any(dim=1)
    assert 0 < changed.sum() < len(X)  # about half the trials, never all of them


def test_augmentation_depends_on_seed_and_epoch_only():
    X, y = torch.randn(32, 8, 200), torch.zeros(32)
    names = list(AUGMENTATIONS)
    first = make_augmentation(names, 1000.0, seed=3, epoch=2)(X, y)[0]
    assert torch.equal(first, make_augmentation(names, 1000.0, seed=3, epoch=2)(X, y)[0])
    assert not torch.equal(first, make_augmentation(names, 1000.0, seed=3, epoch=3)(X, y)[0])
    assert torch.equal(make_augmentation([], 1000.0)(X, y)[0], X)
    with pytest.raises(ValueError, match=r"names\[0\]='mixup': choose one of"):
        make_augmentation(["mixup"], 1000.0)


def test_objective_augments_training_batches_only():
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, X, subject):
            seen.append(X.clone())
            return torch.zeros(len(X), 20, requires_grad=True)

    model = Recorder()
    objective = ClassificationObjective(augment=["channels_dropout"], sfreq=250.0, seed=0)
    batch = {"X": torch.randn(64, 8, 50), "y": torch.zeros(64, dtype=torch.long),
             "subject": torch.zeros(64, dtype=torch.long)}
    objective(model.train(), batch)
    objective(model.eval(), batch)
    assert not torch.equal(seen[0], batch["X"])
    assert torch.equal(seen[1], batch["X"])
    with pytest.raises(ValueError, match="sfreq"):
        ClassificationObjective(augment=["time_shift"])
    np.testing.assert_equal(objective.augment, ("channels_dropout",))
