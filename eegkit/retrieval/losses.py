"""Losses that align EEG embeddings with CLIP's caption space (handout 5.5).

Every loss is a small :class:`torch.nn.Module`: settings are keyword-only arguments
of ``__init__``, tensors go to ``forward``, and ``forward(..., output_dict=True)``
returns the named terms instead of one scalar. Sub-steps (logits, positive masks,
negative weights, student log-probabilities) are methods that can be tested alone.

Shared tensor names
-------------------
eeg : Tensor, shape (batch, dim), unit norm
    EEG encoder + projection head output, L2-normalised (handout 5.5.1).
txt : Tensor, shape (batch, dim), unit norm
    CLIP text embedding of each trial's caption.
caption_ids : LongTensor, shape (batch,)
    Caption (= image) index of each trial. The same image is shown in many trials,
    so a batch may hold the same caption id several times; the contrastive losses
    never treat a copy of the positive caption as a negative.
categories : LongTensor, shape (batch,)
    Category (0..19) of each trial.
bank : Tensor, shape (n_captions, dim), unit norm
    CLIP text embeddings of the caption bank the KD distributions run over.
teacher : Tensor, shape (batch, n_captions)
    Rows of :func:`teacher_distribution`, one per trial.

Terms (names used by ``lambdas``, ``make_loss`` and ``output_dict``)
--------------------------------------------------------------------
``"cos"``       :class:`CosineLoss`            1 - eeg_i . txt_i       (5.5.3)
``"kd"``        :class:`KDLoss`                KL(teacher || student)   (5.5.3)
``"infonce"``   :class:`InfoNCELoss`           naive InfoNCE            (5.5.4)
``"debiased"``  :class:`DebiasedInfoNCELoss`   weighted InfoNCE         (5.5.4)
``"ce"``        :class:`CategoryCELoss`        category cross-entropy   (5.5.5)

:class:`CombinedLoss` adds them with weights ``lambdas`` and an optional KD-only
warm-up (5.5.6); :func:`make_loss` is the one place that turns a config into a loss.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eegkit._checks import check_option
#: The loss terms of handout 5.5.6 and how tables name them.
TERM_LABELS = {"cos": "cos", "kd": "KD", "infonce": "InfoNCE", "debiased": "debiased", "ce": "CE"}
TERMS = tuple(TERM_LABELS)
DUPLICATE_MODES = ("positive", "mask")
DEBIAS_STRATEGIES = ("downweight", "topk", "same_class")


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------


def _check_positive(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a positive number, got {value!r}") from exc
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _check_embeddings(eeg: Tensor, txt: Tensor, txt_name: str = "txt") -> None:
    if eeg.ndim != 2:
        raise ValueError(
            f"eeg must have shape (batch, dim), got {tuple(eeg.shape)}; "
            "flatten the encoder output and project it before the loss"
        )
    if txt.shape != eeg.shape:
        raise ValueError(
            f"{txt_name} must have the same shape as eeg {tuple(eeg.shape)}, got "
            f"{tuple(txt.shape)}; pass one caption embedding per EEG trial"
        )


def _as_ids(name: str, ids, batch: int, device: torch.device) -> Tensor:
    if ids is None:
        raise ValueError(f"{name} is required, shape ({batch},)")
    ids = torch.as_tensor(ids, device=device)
    if ids.shape != (batch,):
        raise ValueError(
            f"{name} must have shape (batch,) = ({batch},), got {tuple(ids.shape)}"
        )
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {ids.dtype}")
    return ids


def _as_square(name: str, matrix, batch: int, like: Tensor) -> Tensor:
    matrix = torch.as_tensor(matrix, device=like.device).detach().to(like.dtype)
    if matrix.shape != (batch, batch):
        raise ValueError(
            f"{name} must have shape (batch, batch) = ({batch}, {batch}), "
            f"got {tuple(matrix.shape)}; pass txt @ txt.T of this batch's captions"
        )
    return matrix


def _is_count(value) -> bool:
    """True for an integer >= 0 (bools excluded)."""
    return (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            and value >= 0)


def _named(name: str, value: Tensor, output_dict: bool):
    return {name: value} if output_dict else value


# ---------------------------------------------------------------------------
# 5.5.3 similarity-based KD: cosine alignment
# ---------------------------------------------------------------------------


class CosineLoss(nn.Module):
    """Cosine alignment with the trial's own caption, ``mean_i (1 - eeg_i . txt_i)``.

    Handout 5.5.3 (similarity-based KD). The inputs are expected to be unit norm
    already (the loss does not normalise them), so the value lies in [0, 2].
    """

    def forward(self, eeg: Tensor, txt: Tensor, output_dict: bool = False):
        """Mean cosine distance between matched rows.

        Parameters
        ----------
        eeg : Tensor, shape (batch, dim), unit norm
        txt : Tensor, shape (batch, dim), unit norm
        output_dict : bool, default=False
            Return ``{"cos": loss}`` instead of the scalar.

        Returns
        -------
        loss : Tensor, shape ()
        """
        _check_embeddings(eeg, txt)
        loss = (1 - (eeg * txt).sum(dim=1)).float().mean()
        return _named("cos", loss, output_dict)


# ---------------------------------------------------------------------------
# 5.5.3 logit-based KD
# ---------------------------------------------------------------------------


@torch.no_grad()
def teacher_distribution(image_emb, bank_emb, tau_t: float = 0.07) -> Tensor:
    """CLIP's distribution over the caption bank for each image (teacher ``q``).

    ``q_ij = softmax_j(cos(img_i, txt_j) / tau_t)`` (handout 5.5.3). Both inputs are
    L2-normalised here, so raw CLIP features may be passed. Compute it once per
    image and cache it; index the cache with each trial's image.

    Parameters
    ----------
    image_emb : ndarray or Tensor, shape (n_images, dim) or (dim,)
        CLIP image embeddings.
    bank_emb : ndarray or Tensor, shape (n_captions, dim)
        CLIP text embeddings of the caption bank (the same bank, in the same order,
        as ``bank`` given to :class:`KDLoss`).
    tau_t : float, default=0.07
        Teacher temperature; smaller is sharper.

    Returns
    -------
    teacher : Tensor, shape (n_images, n_captions), float32, rows sum to 1
        On ``image_emb``'s device (CPU for numpy input); carries no gradient.
    """
    tau_t = _check_positive("tau_t", tau_t)
    image = torch.as_tensor(image_emb).detach().float()
    bank = torch.as_tensor(bank_emb).detach().float().to(image.device)
    if image.ndim == 1:
        image = image[None]
    if image.ndim != 2 or bank.ndim != 2 or image.shape[1] != bank.shape[1]:
        raise ValueError(
            "image_emb must be (n_images, dim) and bank_emb (n_captions, dim) with "
            f"the same dim, got {tuple(image.shape)} and {tuple(bank.shape)}; "
            "pass CLIP image and text embeddings of the same model"
        )
    sim = F.normalize(image, dim=1) @ F.normalize(bank, dim=1).T
    return torch.softmax(sim / tau_t, dim=1)


class KDLoss(nn.Module):
    """Logit-based distillation ``KL(q || p)`` over a caption bank (handout 5.5.3).

    ``p = softmax(eeg @ bank.T / tau_s)`` is the student's distribution over the
    ``n_captions`` captions of the bank and ``q`` the teacher's
    (:func:`teacher_distribution`). The loss is the batch mean of
    ``sum_j q_j (log q_j - log p_j)``, with ``q_j log q_j = 0`` where ``q_j = 0``
    (``torch.xlogy``), so a teacher with exact zeros gives no NaN. It equals
    ``F.kl_div(log_p, q, reduction="batchmean")`` and is 0 when ``p == q``.

    Cost: one (batch, n_captions) matrix.

    Parameters
    ----------
    tau_s : float, default=0.07
        Student temperature.
    """

    def __init__(self, *, tau_s: float = 0.07):
        super().__init__()
        self.tau_s = _check_positive("tau_s", tau_s)

    def student_log_probs(self, eeg: Tensor, bank: Tensor) -> Tensor:
        """Student log-distribution ``log p``.

        Parameters
        ----------
        eeg : Tensor, shape (batch, dim), unit norm
        bank : Tensor, shape (n_captions, dim), unit norm

        Returns
        -------
        log_p : Tensor, shape (batch, n_captions), float32, ``logsumexp`` over rows is 0
        """
        if eeg.ndim != 2 or bank.ndim != 2 or eeg.shape[1] != bank.shape[1]:
            raise ValueError(
                f"eeg must be (batch, dim) and bank (n_captions, dim) with the same "
                f"dim, got {tuple(eeg.shape)} and {tuple(bank.shape)}"
            )
        return torch.log_softmax((eeg @ bank.T).float() / self.tau_s, dim=1)

    def forward(self, eeg: Tensor, bank: Tensor, teacher: Tensor,
                output_dict: bool = False):
        """Batch mean of ``KL(teacher_i || student_i)``.

        Parameters
        ----------
        eeg : Tensor, shape (batch, dim), unit norm
        bank : Tensor, shape (n_captions, dim), unit norm
        teacher : Tensor, shape (batch, n_captions)
            Probabilities (rows sum to 1), e.g. rows of :func:`teacher_distribution`.
        output_dict : bool, default=False
            Return ``{"kd": loss}`` instead of the scalar.

        Returns
        -------
        loss : Tensor, shape ()
        """
        log_p = self.student_log_probs(eeg, bank)
        teacher = torch.as_tensor(teacher, device=log_p.device).detach().float()
        if teacher.shape != log_p.shape:
            raise ValueError(
                f"teacher must have shape (batch, n_captions) = {tuple(log_p.shape)}, "
                f"got {tuple(teacher.shape)}; index the cached teacher_distribution "
                "with this batch's images"
            )
        row_sums = teacher.sum(dim=1)
        if bool((teacher < 0).any()) or not torch.allclose(
            row_sums, torch.ones_like(row_sums), atol=1e-3
        ):
            raise ValueError(
                "teacher rows must be probabilities (>= 0, summing to 1), got row sums "
                f"in [{float(row_sums.min()):.4g}, {float(row_sums.max()):.4g}]; pass "
                "teacher_distribution(...) rather than raw similarities"
            )
        kl = torch.xlogy(teacher, teacher) - teacher * log_p
        loss = kl.sum(dim=1).mean()
        return _named("kd", loss, output_dict)


# ---------------------------------------------------------------------------
# 5.5.4 contrastive alignment
# ---------------------------------------------------------------------------


def _same_caption(caption_ids: Tensor) -> Tensor:
    return caption_ids[:, None] == caption_ids[None, :]


class InfoNCELoss(nn.Module):
    """InfoNCE between EEG and caption embeddings (handout 5.5.4, naive form).

    Logits ``Z_ij = eeg_i . txt_j / temperature``. The handout's naive loss
    ``-1/N sum_i log(exp Z_ii / sum_j exp Z_ij)`` treats every ``j != i`` as a
    negative, which is wrong when the batch holds the same caption twice
    (the same image shown in several trials). ``duplicates`` says what to do then:

    - ``"positive"``: every ``j`` with trial i's caption id is a positive,
      ``loss_i = -log(sum_{j: id_j = id_i} exp Z_ij / sum_j exp Z_ij)``
      (multi-positive / SupCon-style numerator, as in CLIP with shared captions).
      The pull on the caption is shared among its copies.
    - ``"mask"``: only ``(i, i)`` is the positive and the copies ``j != i`` are
      removed from the denominator,
      ``loss_i = -log(exp Z_ii / sum_{j: j = i or id_j != id_i} exp Z_ij)``.

    With all caption ids distinct, both equal the naive InfoNCE. If every row has
    the same caption, both give 0 (there is no negative). ``symmetric=True``
    averages this EEG->text loss (rows of ``Z``) with the text->EEG one (columns of
    ``Z``, the same mask transposed), as in CLIP.

    Cost: one (batch, batch) matrix.

    Parameters
    ----------
    temperature : float, default=0.07
        Fixed softmax temperature tau.
    symmetric : bool, default=False
        Also use the text->EEG direction and average the two.
    duplicates : {"positive", "mask"}, default="positive"
        Treatment of same-caption pairs ``j != i`` (see above).
    """

    def __init__(self, *, temperature: float = 0.07, symmetric: bool = False,
                 duplicates: str = "positive"):
        super().__init__()
        self.temperature = _check_positive("temperature", temperature)
        self.symmetric = bool(symmetric)
        self.duplicates = check_option("duplicates", duplicates, DUPLICATE_MODES)

    def logits(self, eeg: Tensor, txt: Tensor) -> Tensor:
        """``Z = eeg @ txt.T / temperature``.

        Parameters
        ----------
        eeg : Tensor, shape (batch, dim), unit norm
        txt : Tensor, shape (batch, dim), unit norm

        Returns
        -------
        Z : Tensor, shape (batch, batch), float32
            Row i: EEG trial i against every caption of the batch.
        """
        _check_embeddings(eeg, txt)
        return (eeg @ txt.T).float() / self.temperature

    def positive_mask(self, caption_ids) -> Tensor:
        """Which pairs share a caption (the diagonal included).

        Parameters
        ----------
        caption_ids : LongTensor, shape (batch,)

        Returns
        -------
        positive : BoolTensor, shape (batch, batch), symmetric
            ``positive[i, j]`` is True when ``caption_ids[i] == caption_ids[j]``.
        """
        caption_ids = torch.as_tensor(caption_ids)
        if caption_ids.ndim != 1:
            raise ValueError(
                f"caption_ids must have shape (batch,), got {tuple(caption_ids.shape)}"
            )
        return _same_caption(caption_ids)

    def _direction(self, Z: Tensor, positive: Tensor) -> Tensor:
        """Per-row loss of ``Z`` (rows are anchors)."""
        if self.duplicates == "positive":
            numerator = torch.logsumexp(Z.masked_fill(~positive, -torch.inf), dim=1)
            return torch.logsumexp(Z, dim=1) - numerator
        eye = torch.eye(len(Z), dtype=torch.bool, device=Z.device)
        kept = ~positive | eye
        denominator = torch.logsumexp(Z.masked_fill(~kept, -torch.inf), dim=1)
        return denominator - Z.diagonal()

    def forward(self, eeg: Tensor, txt: Tensor, caption_ids, output_dict: bool = False):
        """Mean InfoNCE over the batch.

        Parameters
        ----------
        eeg : Tensor, shape (batch, dim), unit norm
        txt : Tensor, shape (batch, dim), unit norm
        caption_ids : LongTensor, shape (batch,)
        output_dict : bool, default=False
            Return ``{"infonce": loss}``; with ``symmetric`` also
            ``"infonce_e2t"`` and ``"infonce_t2e"`` (the two directions).

        Returns
        -------
        loss : Tensor, shape ()
        """
        Z = self.logits(eeg, txt)
        ids = _as_ids("caption_ids", caption_ids, len(Z), Z.device)
        positive = self.positive_mask(ids)
        e2t = self._direction(Z, positive).mean()
        if not self.symmetric:
            return _named("infonce", e2t, output_dict)
        t2e = self._direction(Z.T, positive.T).mean()
        loss = (e2t + t2e) / 2
        if output_dict:
            return {"infonce": loss, "infonce_e2t": e2t, "infonce_t2e": t2e}
        return loss


class DebiasedInfoNCELoss(nn.Module):
    """Weighted InfoNCE with soft or removed false negatives (handout 5.5.4).

    ``L = -1/N sum_i log(exp Z_ii / sum_j w_ij exp Z_ij)`` with
    ``Z = eeg @ txt.T / temperature``, computed stably as
    ``logsumexp_j(Z_ij + log w_ij) - Z_ii`` (``log 0 = -inf``: a removed ``j``
    drops out of the denominator). The weights (:meth:`weights`) carry no gradient:

    - ``w_ii = 1``: the positive is never down-weighted;
    - ``w_ij = 0`` for ``j != i`` with trial i's caption id: a copy of the
      positive caption is not a negative;
    - every other ``j`` follows ``strategy``:

      ``"downweight"`` (default)
          ``w_ij = 1 - relu(s_ij - margin) / (1 - margin)``, clipped to [0, 1],
          with ``s`` the caption-caption cosine in CLIP space (``text_sim``):
          1 for captions less similar than ``margin``, falling linearly to 0 for
          identical captions. Cf. [1]_.
      ``"topk"``
          Removal: ``w_ij = 0`` for the ``k`` *distinct captions* most similar to
          trial i's caption (by ``text_sim``), every copy of them in the batch
          included; 1 otherwise. A caption's score is its largest ``s_ij`` over its
          copies; ties go to the caption whose first copy comes first in the batch.
          Counting captions rather than entries keeps copies of the same caption
          together (they have the same text, so removing some but not others would
          be arbitrary). Fewer than ``k`` other captions: all are removed.
      ``"same_class"``
          ``w_ij = 0`` when ``categories[j] == categories[i]``, else 1.

    With all weights 1 (e.g. ``"downweight"`` and every ``s_ij < margin``) and
    distinct caption ids it equals the naive InfoNCE; with duplicated ids it equals
    :class:`InfoNCELoss` with ``duplicates="mask"``.

    Cost: (batch, batch) matrices; ``"topk"`` also (batch, n_unique_captions).

    Parameters
    ----------
    temperature : float, default=0.07
        Fixed softmax temperature tau.
    strategy : {"downweight", "topk", "same_class"}, default="downweight"
    k : int, default=1
        Number of distinct captions removed per anchor (``"topk"`` only).
    margin : float, default=0.5
        Cosine above which negatives are down-weighted, in [0, 1) (``"downweight"``
        only).

    References
    ----------
    .. [1] Chuang et al. (2020). Debiased contrastive learning. NeurIPS.
    """

    def __init__(self, *, temperature: float = 0.07, strategy: str = "downweight",
                 k: int = 1, margin: float = 0.5):
        super().__init__()
        self.temperature = _check_positive("temperature", temperature)
        self.strategy = check_option("strategy", strategy, DEBIAS_STRATEGIES)
        if not _is_count(k):
            raise ValueError(f"k must be an integer >= 0, got {k!r}")
        self.k = int(k)
        if not 0 <= float(margin) < 1:
            raise ValueError(
                f"margin must be in [0, 1) (a cosine below which negatives keep "
                f"weight 1), got {margin!r}"
            )
        self.margin = float(margin)

    def logits(self, eeg: Tensor, txt: Tensor) -> Tensor:
        """``Z = eeg @ txt.T / temperature``, shape (batch, batch), float32."""
        _check_embeddings(eeg, txt)
        return (eeg @ txt.T).float() / self.temperature

    @torch.no_grad()
    def weights(self, caption_ids, categories=None, text_sim=None) -> Tensor:
        """Negative weights ``w`` (see the class docstring for the rules).

        Parameters
        ----------
        caption_ids : LongTensor, shape (batch,)
        categories : LongTensor, shape (batch,), optional
            Needed by ``strategy="same_class"``.
        text_sim : Tensor, shape (batch, batch), optional
            Caption-caption cosine, ``txt @ txt.T``; needed by ``"downweight"`` and
            ``"topk"`` (``forward`` computes it from ``txt`` when not given).

        Returns
        -------
        w : Tensor, shape (batch, batch), float32, in [0, 1], no gradient
            ``w[i, i] == 1``; ``w[i, j] == 0`` for other copies of caption i.
        """
        ids = torch.as_tensor(caption_ids)
        if ids.ndim != 1:
            raise ValueError(
                f"caption_ids must have shape (batch,), got {tuple(ids.shape)}"
            )
        batch, device = len(ids), ids.device
        ids = _as_ids("caption_ids", ids, batch, device)
        same = _same_caption(ids)
        if self.strategy == "same_class":
            if categories is None:
                raise ValueError(
                    'strategy="same_class" needs categories, shape (batch,); pass '
                    'categories=... or choose strategy="downweight" or "topk"'
                )
            cats = _as_ids("categories", categories, batch, device)
            w = (cats[:, None] != cats[None, :]).float()
        else:
            if text_sim is None:
                raise ValueError(
                    f'strategy="{self.strategy}" needs text_sim, shape (batch, batch); '
                    "pass text_sim=txt @ txt.T (forward does this from txt)"
                )
            sim = _as_square("text_sim", text_sim, batch,
                             torch.empty(0, device=device)).float()
            if self.strategy == "downweight":
                w = 1 - torch.relu(sim - self.margin) / (1 - self.margin)
                w = w.clamp(0, 1)
            else:
                w = 1 - self._topk_removed(ids, sim).float()
        w = w.masked_fill(same, 0.0)
        w.fill_diagonal_(1.0)
        return w

    def _topk_removed(self, ids: Tensor, sim: Tensor) -> Tensor:
        """BoolTensor (batch, batch): j's caption is among row i's k nearest."""
        batch = len(ids)
        if self.k == 0:
            return torch.zeros(batch, batch, dtype=torch.bool, device=ids.device)
        _, inverse = torch.unique(ids, return_inverse=True)
        n_unique = int(inverse.max()) + 1
        index = inverse[None, :].expand(batch, -1)
        score = torch.full((batch, n_unique), -torch.inf, device=sim.device)
        score = score.scatter_reduce(1, index, sim, reduce="amax")
        # a row's own caption is never one of its negatives
        score[torch.arange(batch, device=ids.device), inverse] = -torch.inf
        positions = torch.arange(batch, device=ids.device)
        first = torch.full((n_unique,), batch, device=ids.device, dtype=torch.long)
        first = first.scatter_reduce(0, inverse, positions, reduce="amin")
        by_first = torch.argsort(first)
        order = torch.sort(score[:, by_first], dim=1, descending=True,
                           stable=True).indices
        k = min(self.k, n_unique - 1)
        removed_caps = torch.zeros(batch, n_unique, dtype=torch.bool, device=ids.device)
        removed_caps.scatter_(1, by_first[order[:, :k]], True)
        return removed_caps[:, inverse]

    def forward(self, eeg: Tensor, txt: Tensor, caption_ids, categories=None,
                text_sim=None, output_dict: bool = False):
        """Mean weighted InfoNCE (EEG -> text).

        Parameters
        ----------
        eeg : Tensor, shape (batch, dim), unit norm
        txt : Tensor, shape (batch, dim), unit norm
        caption_ids : LongTensor, shape (batch,)
        categories : LongTensor, shape (batch,), optional
            Needed by ``strategy="same_class"``.
        text_sim : Tensor, shape (batch, batch), optional
            Caption-caption cosine; default ``txt.detach() @ txt.detach().T``.
        output_dict : bool, default=False
            Return ``{"debiased": loss}`` instead of the scalar.

        Returns
        -------
        loss : Tensor, shape ()
        """
        Z = self.logits(eeg, txt)
        ids = _as_ids("caption_ids", caption_ids, len(Z), Z.device)
        if text_sim is None and self.strategy != "same_class":
            detached = txt.detach().float()
            text_sim = detached @ detached.T
        w = self.weights(ids, categories=categories, text_sim=text_sim)
        loss = (torch.logsumexp(Z + torch.log(w), dim=1) - Z.diagonal()).mean()
        return _named("debiased", loss, output_dict)


# ---------------------------------------------------------------------------
# 5.5.5 category supervision
# ---------------------------------------------------------------------------


class CategoryCELoss(nn.Module):
    """Category cross-entropy ``-log softmax(u)_y`` (handout 5.5.5).

    Parameters
    ----------
    label_smoothing : float, default=0.0
        As in :func:`torch.nn.functional.cross_entropy`, in [0, 1).
    """

    def __init__(self, *, label_smoothing: float = 0.0):
        super().__init__()
        if not 0 <= float(label_smoothing) < 1:
            raise ValueError(
                f"label_smoothing must be in [0, 1), got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: Tensor, y, output_dict: bool = False):
        """Mean cross-entropy over the batch.

        Parameters
        ----------
        logits : Tensor, shape (batch, n_classes)
            Classifier scores ``u`` (n_classes = 20 categories).
        y : LongTensor, shape (batch,)
            Category of each trial, in [0, n_classes).
        output_dict : bool, default=False
            Return ``{"ce": loss}`` instead of the scalar.

        Returns
        -------
        loss : Tensor, shape ()
        """
        if logits.ndim != 2:
            raise ValueError(
                f"logits must have shape (batch, n_classes), got {tuple(logits.shape)}"
            )
        y = _as_ids("y", y, len(logits), logits.device)
        if bool(((y < 0) | (y >= logits.shape[1])).any()):
            raise ValueError(
                f"y must lie in [0, {logits.shape[1]}) (one logit per class), got "
                f"values in [{int(y.min())}, {int(y.max())}]"
            )
        loss = F.cross_entropy(logits.float(), y.long(),
                               label_smoothing=self.label_smoothing)
        return _named("ce", loss, output_dict)


# ---------------------------------------------------------------------------
# 5.5.6 combined objective
# ---------------------------------------------------------------------------

# the forward arguments each term needs, in the order they are reported
_TERM_INPUTS = {
    "cos": ("txt",),
    "kd": ("bank", "teacher"),
    "infonce": ("txt", "caption_ids"),
    "debiased": ("txt", "caption_ids"),
    "ce": ("logits", "y"),
}
_INPUT_HINTS = {
    "txt": "txt (caption embeddings, shape (batch, dim))",
    "caption_ids": "caption_ids (shape (batch,))",
    "bank": "bank (caption bank embeddings, shape (n_captions, dim))",
    "teacher": "teacher (rows of teacher_distribution, shape (batch, n_captions))",
    "logits": "logits (classifier scores, shape (batch, 20))",
    "y": "y (categories, shape (batch,))",
    "categories": "categories (shape (batch,))",
}


class CombinedLoss(nn.Module):
    """``sum_t lambda_t L_t`` over the terms of handout 5.5.6, with a KD warm-up.

    Terms with a zero or missing lambda are not computed. While
    ``epoch < kd_warmup_epochs`` (see :meth:`set_epoch`) only ``lambda_kd * L_kd``
    is used, so the student first learns CLIP's ranking before the contrastive
    terms shape the geometry.

    Parameters
    ----------
    lambdas : dict of str to float
        Weights keyed by ``{"cos", "kd", "infonce", "debiased", "ce"}``, >= 0.
    kd_warmup_epochs : int, default=0
        Number of first epochs (0-based ``epoch < kd_warmup_epochs``) that use only
        the KD term; needs ``lambdas["kd"] > 0``. Call :meth:`set_epoch` at the start
        of every epoch: the epoch counter starts at 0 and never moves by itself.
    temperature : float, default=0.07
        Temperature of the ``"infonce"`` and ``"debiased"`` terms.
    tau_s : float, default=0.07
        Student temperature of the ``"kd"`` term.
    debias_strategy : {"downweight", "topk", "same_class"}, default="downweight"
    debias_k : int, default=1
    debias_margin : float, default=0.5
        Settings of :class:`DebiasedInfoNCELoss` (``strategy``, ``k``, ``margin``).
    symmetric : bool, default=False
        Symmetric ``"infonce"`` term (the debiased term is EEG->text only).
    duplicates : {"positive", "mask"}, default="positive"
        Same-caption handling of the ``"infonce"`` term (:class:`InfoNCELoss`).
    label_smoothing : float, default=0.0
        Of the ``"ce"`` term.

    Attributes
    ----------
    terms : dict of str to nn.Module
        The loss of each term with a positive lambda.
    epoch : int
        Current epoch, as last given to :meth:`set_epoch`.
    """

    def __init__(self, *, lambdas: Mapping[str, float], kd_warmup_epochs: int = 0,
                 temperature: float = 0.07, tau_s: float = 0.07,
                 debias_strategy: str = "downweight", debias_k: int = 1,
                 debias_margin: float = 0.5, symmetric: bool = False,
                 duplicates: str = "positive", label_smoothing: float = 0.0):
        super().__init__()
        if not isinstance(lambdas, Mapping):
            raise ValueError(
                f"lambdas must be a dict keyed by {list(TERMS)}, got {type(lambdas)}"
            )
        unknown = sorted(set(lambdas) - set(TERMS))
        if unknown:
            raise ValueError(
                f"unknown loss terms {unknown} in lambdas; "
                f"valid terms are {list(TERMS)}"
            )
        self.lambdas = {}
        for name, value in lambdas.items():
            value = float(value)
            if not np.isfinite(value) or value < 0:
                raise ValueError(
                    f"lambdas[{name!r}] must be finite and >= 0, got {value}"
                )
            if value > 0:
                self.lambdas[name] = value
        if not self.lambdas:
            raise ValueError(
                f"lambdas {dict(lambdas)} switch every term off; give at least one of "
                f"{list(TERMS)} a positive weight"
            )
        if not _is_count(kd_warmup_epochs):
            raise ValueError(
                f"kd_warmup_epochs must be an integer >= 0, got {kd_warmup_epochs!r}"
            )
        self.kd_warmup_epochs = int(kd_warmup_epochs)
        if self.kd_warmup_epochs > 0 and "kd" not in self.lambdas:
            raise ValueError(
                f"kd_warmup_epochs={kd_warmup_epochs} uses only the KD term, but "
                "lambdas['kd'] is 0 or missing; give 'kd' a positive weight or set "
                "kd_warmup_epochs=0"
            )
        builders = {
            "cos": lambda: CosineLoss(),
            "kd": lambda: KDLoss(tau_s=tau_s),
            "infonce": lambda: InfoNCELoss(temperature=temperature, symmetric=symmetric,
                                           duplicates=duplicates),
            "debiased": lambda: DebiasedInfoNCELoss(
                temperature=temperature, strategy=debias_strategy, k=debias_k,
                margin=debias_margin),
            "ce": lambda: CategoryCELoss(label_smoothing=label_smoothing),
        }
        # built in TERMS order so output_dict and the sum have a fixed order
        self.terms = nn.ModuleDict(
            {name: builders[name]() for name in TERMS if name in self.lambdas}
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the current (0-based) epoch; decides whether the KD warm-up is on."""
        if not _is_count(epoch):
            raise ValueError(f"epoch must be an integer >= 0 (0-based), got {epoch!r}")
        self.epoch = int(epoch)

    @property
    def active_terms(self) -> tuple[str, ...]:
        """Names of the terms the current epoch computes."""
        if self.epoch < self.kd_warmup_epochs:
            return ("kd",)
        return tuple(self.terms)

    def _check_inputs(self, given: dict) -> None:
        for name in self.active_terms:
            needed = list(_TERM_INPUTS[name])
            if name == "debiased" and self.terms[name].strategy == "same_class":
                needed.append("categories")
            missing = [arg for arg in needed if given[arg] is None]
            if missing:
                hints = ", ".join(_INPUT_HINTS[arg] for arg in missing)
                raise ValueError(
                    f"the {name!r} term (lambda {self.lambdas[name]:g}) needs "
                    f"{', '.join(missing)}; pass {hints}, or set lambdas[{name!r}] to 0"
                )

    def forward(self, eeg: Tensor, txt: Tensor | None, caption_ids=None, *,
                categories=None, logits: Tensor | None = None, y=None,
                bank: Tensor | None = None, teacher: Tensor | None = None,
                text_sim: Tensor | None = None, output_dict: bool = False):
        """Weighted sum of the active terms.

        Parameters
        ----------
        eeg : Tensor, shape (batch, dim), unit norm
        txt : Tensor, shape (batch, dim), unit norm
            Needed by ``"cos"``, ``"infonce"`` and ``"debiased"``.
        caption_ids : LongTensor, shape (batch,)
            Needed by ``"infonce"`` and ``"debiased"``.
        categories : LongTensor, shape (batch,), optional
            Needed by ``"debiased"`` with ``debias_strategy="same_class"``.
        logits : Tensor, shape (batch, 20), optional
            Classifier scores, needed by ``"ce"``.
        y : LongTensor, shape (batch,), optional
            Categories, needed by ``"ce"``.
        bank : Tensor, shape (n_captions, dim), unit norm, optional
            Needed by ``"kd"``.
        teacher : Tensor, shape (batch, n_captions), optional
            Needed by ``"kd"``.
        text_sim : Tensor, shape (batch, batch), optional
            Caption-caption cosine for ``"debiased"``; default from ``txt``.
        output_dict : bool, default=False
            Return ``{"loss": total, "<term>": unweighted value, ...}`` for the
            terms of the current epoch (:attr:`active_terms`).

        Returns
        -------
        loss : Tensor, shape ()
        """
        self._check_inputs(dict(txt=txt, caption_ids=caption_ids, categories=categories,
                                logits=logits, y=y, bank=bank, teacher=teacher))
        values = {}
        for name in self.active_terms:
            term = self.terms[name]
            if name == "cos":
                values[name] = term(eeg, txt)
            elif name == "kd":
                values[name] = term(eeg, bank, teacher)
            elif name == "infonce":
                values[name] = term(eeg, txt, caption_ids)
            elif name == "debiased":
                values[name] = term(eeg, txt, caption_ids, categories=categories,
                                    text_sim=text_sim)
            else:
                values[name] = term(logits, y)
        total = sum(self.lambdas[name] * value for name, value in values.items())
        if output_dict:
            return {"loss": total, **values}
        return total


def make_loss(spec: str | Mapping[str, float], **kwargs) -> CombinedLoss:
    """Build the training loss from a config: the one place that chooses it.

    Parameters
    ----------
    spec : str or dict of str to float
        A term name ``{"cos", "kd", "infonce", "debiased", "ce"}`` (that term alone,
        lambda 1), ``"combined"`` (``lambdas=`` must then be in ``kwargs``), or a
        dict of lambdas as for :class:`CombinedLoss`.
    **kwargs
        Passed through to :class:`CombinedLoss`: term settings such as
        ``tau_s`` (kd), ``temperature``, ``symmetric``, ``duplicates`` (infonce),
        ``debias_strategy``, ``debias_k``, ``debias_margin`` (debiased),
        ``label_smoothing`` (ce) and ``kd_warmup_epochs``.

    Returns
    -------
    loss : CombinedLoss
        Always the same type, so training code calls it the same way.

    Examples
    --------
    >>> loss = make_loss("debiased", debias_strategy="topk", debias_k=2)
    >>> loss = make_loss({"kd": 1.0, "debiased": 0.5}, kd_warmup_epochs=3)
    """
    if isinstance(spec, Mapping):
        if "lambdas" in kwargs:
            raise ValueError("give the lambdas either as spec or as lambdas=, not both")
        return CombinedLoss(lambdas=spec, **kwargs)
    names = (*TERMS, "combined")
    check_option("spec", spec, names, hint="or a dict of lambdas")
    if spec == "combined":
        if "lambdas" not in kwargs:
            raise ValueError(
                'make_loss("combined") needs lambdas=..., e.g. '
                "lambdas={'kd': 1.0, 'debiased': 0.5}; or pass the dict as spec"
            )
        return CombinedLoss(**kwargs)
    if "lambdas" in kwargs:
        raise ValueError(
            f"make_loss({spec!r}) uses lambda 1 for {spec!r}; pass a dict of lambdas "
            "as spec to weight several terms"
        )
    return CombinedLoss(lambdas={spec: 1.0}, **kwargs)
