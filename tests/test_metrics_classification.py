import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
)

from eegkit.metrics import (
    accuracy,
    balanced_accuracy,
    confusion_matrix,
    per_subject_accuracy,
    permutation_p_value,
    score_table,
    top_k_accuracy,
)


def test_hand_computed_small_example():
    y = np.array([0, 0, 0, 1, 2, 2])
    y_hat = np.array([0, 1, 0, 1, 0, 2])
    assert accuracy(y, y_hat) == pytest.approx(4 / 6)
    assert balanced_accuracy(y, y_hat, 3) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    cm = confusion_matrix(y, y_hat, 3)
    np.testing.assert_allclose(cm, [[2 / 3, 1 / 3, 0], [0, 1, 0], [1 / 2, 0, 1 / 2]])
    logits = np.array([[3, 2, 1], [1, 3, 2], [3, 1, 2], [1, 3, 2], [3, 2, 1], [1, 2, 3]], float)
    # trials 1 (class 0: top-2 is {1, 2}) and 4 (class 2: top-2 is {0, 1}) miss
    assert top_k_accuracy(y, logits, 2) == pytest.approx(4 / 6)


def test_agrees_with_torchmetrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 20, 500)
    logits = rng.normal(size=(500, 20))
    y_hat = logits.argmax(1)
    t_y, t_logits = torch.from_numpy(y), torch.from_numpy(logits)
    assert accuracy(y, y_hat) == pytest.approx(float(multiclass_accuracy(t_logits, t_y, 20, average="micro")))
    assert balanced_accuracy(y, y_hat) == pytest.approx(float(multiclass_accuracy(t_logits, t_y, 20, average="macro")))
    assert top_k_accuracy(y, logits, 5) == pytest.approx(
        float(multiclass_accuracy(t_logits, t_y, 20, average="micro", top_k=5)))
    np.testing.assert_allclose(confusion_matrix(y, y_hat, normalize=False),
                               multiclass_confusion_matrix(t_logits, t_y, 20).numpy())


def test_chance_predictions_are_not_significant_and_good_ones_are():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 20, 400)
    random_logits = rng.normal(size=(400, 20))
    table = score_table(y, random_logits, n_boot=200, n_perm=200).set_index("metric")
    assert table.loc["accuracy", "p_value"] > 0.01
    assert table.loc["accuracy", "ci_low"] <= 0.05 + 0.03
    informative = random_logits.copy()
    informative[np.arange(400), y] += 1.5
    table = score_table(y, informative, n_boot=200, n_perm=200).set_index("metric")
    assert table.loc["accuracy", "p_value"] < 0.01
    assert table.loc["accuracy", "ci_low"] < table.loc["accuracy", "value"] < table.loc["accuracy", "ci_high"]
    assert table.loc["top5_accuracy", "chance"] == pytest.approx(0.25)


def test_permutation_p_value_is_never_zero():
    y = np.arange(20).repeat(5)
    p = permutation_p_value(lambda yp: accuracy(yp, y), y, 1.0, n_perm=99)
    assert p == pytest.approx(1 / 100)


def test_per_subject_accuracy():
    y = np.array([0, 1, 0, 1])
    y_hat = np.array([0, 1, 1, 1])
    table = per_subject_accuracy(y, y_hat, np.array([0, 0, 1, 1]), ("sub-02", "sub-03"), n_boot=50)
    assert table["subject"].tolist() == ["sub-02", "sub-03"]
    assert table["accuracy"].tolist() == [1.0, 0.5]
