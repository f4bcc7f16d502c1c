"""How an embedding space is organised: the share of its variance that a labelling explains."""

from __future__ import annotations

import numpy as np


def category_variance_share(embeddings, categories) -> float:
    """Between-category sum of squares over total, of L2-normalised embeddings.

    The embeddings are L2-normalised first (as cosine retrieval sees them). With
    ``mu`` the mean of all rows and ``mu_c`` the mean of the rows of category ``c``
    (``n_c`` rows), the share is ``sum_c n_c |mu_c - mu|^2 / sum_i |x_i - mu|^2``:
    0 when every category has the same mean, 1 when each category is a single
    point. It is the eta-squared of a one-way ANOVA, summed over dimensions.

    Parameters
    ----------
    embeddings : array-like, shape (n_items, dim)
        E.g. CLIP text embeddings of a caption bank.
    categories : array-like, shape (n_items,)
        Category label of each row (any hashable values).

    Returns
    -------
    share : float, in [0, 1]
    """
    X = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(categories)
    if X.ndim != 2:
        raise ValueError(f"embeddings must have shape (n_items, dim); got shape {X.shape}.")
    if labels.shape != (len(X),):
        raise ValueError(f"categories must have shape ({len(X)},) to match embeddings; "
                         f"got shape {labels.shape}.")
    if len(X) < 2:
        raise ValueError(f"need at least 2 embeddings to split their variance; got {len(X)}.")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise ValueError("an embedding has zero norm; it cannot be L2-normalised.")
    X = X / norms
    centred = X - X.mean(axis=0)
    total = float((centred ** 2).sum())
    if total == 0:
        raise ValueError("all embeddings are equal after normalisation; the share is undefined.")
    _, codes = np.unique(labels, return_inverse=True)
    counts = np.bincount(codes)
    sums = np.zeros((len(counts), X.shape[1]))
    np.add.at(sums, codes, centred)
    between = float(((sums ** 2).sum(axis=1) / counts).sum())  # sum_c n_c |mu_c - mu|^2
    return between / total
