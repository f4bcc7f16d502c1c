"""The share of embedding variance that categories explain, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from eegkit.metrics.embeddings import category_variance_share


def test_share_matches_a_hand_computation():
    # rows normalise to (1,0), (0,1), (1,0); overall mean (2/3, 1/3);
    # total SS = 2/9 + 8/9 + 2/9 = 4/3; category "a" has mean (1/2, 1/2), n=2:
    # 2 * (1/36 + 1/36) = 1/9; "b" has mean (1, 0), n=1: 1/9 + 1/9 = 2/9;
    # between SS = 1/3, share = (1/3) / (4/3) = 1/4
    X = np.array([[3.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    assert category_variance_share(X, ["a", "a", "b"]) == pytest.approx(0.25)


def test_share_is_one_for_point_categories_and_zero_for_equal_means():
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert category_variance_share(X, [0, 0, 1, 1]) == pytest.approx(1.0)
    assert category_variance_share(X, [0, 1, 0, 1]) == pytest.approx(0.0)


def test_share_equals_anova_eta_squared_on_random_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = rng.integers(0, 4, 60)
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    mu = Z.mean(0)
    between = sum((y == c).sum() * ((Z[y == c].mean(0) - mu) ** 2).sum() for c in np.unique(y))
    assert category_variance_share(X, y) == pytest.approx(between / ((Z - mu) ** 2).sum())


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="categories must have shape"):
        category_variance_share(np.eye(3), [0, 1])
    with pytest.raises(ValueError, match="zero norm"):
        category_variance_share(np.array([[1.0, 0.0], [0.0, 0.0]]), [0, 1])
