"""Losses of handout 5.5 against hand computations, gradients and edge cases."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eegkit.retrieval.losses import (
    CategoryCELoss,
    CombinedLoss,
    CosineLoss,
    DebiasedInfoNCELoss,
    InfoNCELoss,
    KDLoss,
    make_loss,
    teacher_distribution,
)

D, N_CLASSES = 3, 20


def unit(a):
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def t(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


def log_softmax_np(z, axis=1):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# fixed tiny example: B = 4, D = 3
EEG = unit([[1.0, 0.2, 0.1], [0.1, 1.0, -0.3], [-0.5, 0.4, 1.0], [0.7, -0.6, 0.2]])
TXT = unit([[0.9, 0.1, 0.3], [0.0, 1.0, 0.1], [-0.2, 0.1, 1.0], [0.5, -0.9, 0.0]])
IDS = [0, 1, 2, 3]


def naive_infonce_np(eeg, txt, tau):
    """Handout 5.5.4: -1/N sum_i log(exp Z_ii / sum_j exp Z_ij)."""
    Z = eeg @ txt.T / tau
    return float(-np.mean(np.diag(Z) - np.log(np.exp(Z).sum(axis=1))))


# ---------------------------------------------------------------------------
# cosine
# ---------------------------------------------------------------------------


def test_cosine_matches_hand_computation():
    expected = np.mean([1 - EEG[i] @ TXT[i] for i in range(4)])
    got = CosineLoss()(t(EEG), t(TXT))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert CosineLoss()(t(EEG), t(EEG)).abs() < 1e-6
    assert set(CosineLoss()(t(EEG), t(TXT), output_dict=True)) == {"cos"}


# ---------------------------------------------------------------------------
# teacher and KD
# ---------------------------------------------------------------------------


def test_teacher_distribution_is_softmax_of_cosine():
    image = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 4.0]])  # not unit norm on purpose
    bank = TXT
    cos = unit(image) @ bank.T
    expected = np.exp(cos / 0.1) / np.exp(cos / 0.1).sum(axis=1, keepdims=True)
    q = teacher_distribution(image, bank, tau_t=0.1)
    assert q.dtype == torch.float32 and q.shape == (2, 4)
    np.testing.assert_allclose(q.numpy(), expected, rtol=1e-5)
    image_t = t(image).requires_grad_()
    q_t = teacher_distribution(image_t, t(bank), tau_t=0.1)
    assert not q_t.requires_grad
    np.testing.assert_allclose(q_t.numpy(), expected, rtol=1e-5)
    assert teacher_distribution(image[0], bank).shape == (1, 4)
    with pytest.raises(ValueError, match="tau_t"):
        teacher_distribution(image, bank, tau_t=0)
    with pytest.raises(ValueError, match="same dim"):
        teacher_distribution(image, bank[:, :2])


def test_kd_matches_hand_computation_and_kl_div():
    bank = TXT
    q = np.array([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25],
                  [0.0, 0.0, 1.0, 0.0], [0.1, 0.2, 0.3, 0.4]])  # exact zeros
    log_p = log_softmax_np(EEG @ bank.T / 0.2)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * (np.log(q) - log_p), 0.0)
    expected = terms.sum(axis=1).mean()
    kd = KDLoss(tau_s=0.2)
    got = kd(t(EEG), t(bank), t(q))
    assert torch.isfinite(got)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    reference = F.kl_div(kd.student_log_probs(t(EEG), t(bank)), t(q),
                         reduction="batchmean")
    assert float(got) == pytest.approx(float(reference), rel=1e-5)
    np.testing.assert_allclose(kd.student_log_probs(t(EEG), t(bank)).numpy(), log_p,
                               rtol=1e-5, atol=1e-6)


def test_kd_is_zero_when_student_reproduces_teacher():
    image = unit([[1.0, 0.5, 0.0], [0.0, 0.3, 1.0]])
    teacher = teacher_distribution(image, TXT, tau_t=0.05)
    loss = KDLoss(tau_s=0.05)(t(image), t(TXT), teacher)
    assert abs(float(loss)) < 1e-5
    # a different student temperature is not a reproduction
    assert float(KDLoss(tau_s=0.5)(t(image), t(TXT), teacher)) > 1e-3


def test_kd_rejects_bad_teacher():
    kd = KDLoss()
    with pytest.raises(ValueError, match="teacher must have shape"):
        kd(t(EEG), t(TXT), torch.ones(4, 3) / 3)
    with pytest.raises(ValueError, match="teacher_distribution"):
        kd(t(EEG), t(TXT), t(EEG @ TXT.T))  # similarities, not probabilities


# ---------------------------------------------------------------------------
# InfoNCE
# ---------------------------------------------------------------------------


def test_infonce_distinct_ids_equals_handout_formula():
    expected = naive_infonce_np(EEG, TXT, 0.1)
    for mode in ("positive", "mask"):
        loss = InfoNCELoss(temperature=0.1, duplicates=mode)
        assert float(loss(t(EEG), t(TXT), IDS)) == pytest.approx(expected, rel=1e-5)
    Z = InfoNCELoss(temperature=0.1).logits(t(EEG), t(TXT))
    np.testing.assert_allclose(Z.numpy(), EEG @ TXT.T / 0.1, rtol=1e-5, atol=1e-6)


def test_infonce_symmetric_averages_rows_and_columns():
    e2t = naive_infonce_np(EEG, TXT, 0.1)
    t2e = naive_infonce_np(TXT, EEG, 0.1)  # columns of Z are rows of Z.T
    loss = InfoNCELoss(temperature=0.1, symmetric=True)
    out = loss(t(EEG), t(TXT), IDS, output_dict=True)
    assert float(out["infonce"]) == pytest.approx((e2t + t2e) / 2, rel=1e-5)
    assert float(out["infonce_e2t"]) == pytest.approx(e2t, rel=1e-5)
    assert float(out["infonce_t2e"]) == pytest.approx(t2e, rel=1e-5)


def test_infonce_duplicate_modes_follow_their_formulas():
    ids = [5, 5, 7, 9]  # rows 0 and 1 share a caption
    txt = TXT.copy()
    txt[1] = txt[0]  # same caption, same embedding
    tau = 0.2
    E = np.exp(EEG @ txt.T / tau)
    same = np.equal.outer(ids, ids)
    positive = -np.mean([np.log(E[i, same[i]].sum() / E[i].sum()) for i in range(4)])
    keep = ~same | np.eye(4, dtype=bool)
    mask = -np.mean([np.log(E[i, i] / E[i, keep[i]].sum()) for i in range(4)])
    got_pos = float(InfoNCELoss(temperature=tau, duplicates="positive")(
        t(EEG), t(txt), ids))
    got_mask = float(InfoNCELoss(temperature=tau, duplicates="mask")(
        t(EEG), t(txt), ids))
    assert got_pos == pytest.approx(positive, rel=1e-5)
    assert got_mask == pytest.approx(mask, rel=1e-5)
    assert abs(got_pos - got_mask) > 1e-3
    assert abs(got_pos - naive_infonce_np(EEG, txt, tau)) > 1e-3
    pm = InfoNCELoss().positive_mask(torch.tensor(ids))
    np.testing.assert_array_equal(pm.numpy(), same)


def test_infonce_rejects_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="duplicates"):
        InfoNCELoss(duplicates="ignore")
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=-1)
    with pytest.raises(ValueError, match="same shape as eeg"):
        InfoNCELoss()(t(EEG), t(TXT[:3]), IDS)
    with pytest.raises(ValueError, match="caption_ids"):
        InfoNCELoss()(t(EEG), t(TXT), [0, 1, 2])


# ---------------------------------------------------------------------------
# debiased InfoNCE
# ---------------------------------------------------------------------------


def test_debiased_matches_weighted_formula():
    ids = [0, 1, 2, 3]
    sim = TXT @ TXT.T
    loss = DebiasedInfoNCELoss(temperature=0.1, strategy="downweight", margin=0.3)
    w = np.clip(1 - np.maximum(sim - 0.3, 0) / 0.7, 0, 1)
    np.fill_diagonal(w, 1)
    Z = EEG @ TXT.T / 0.1
    expected = -np.mean(np.diag(Z) - np.log((w * np.exp(Z)).sum(axis=1)))
    got = loss(t(EEG), t(TXT), ids)  # text_sim computed from txt
    assert float(got) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(loss.weights(ids, text_sim=t(sim)).numpy(), w,
                               rtol=1e-5, atol=1e-6)


def test_debiased_with_unit_weights_equals_naive_infonce():
    zeros = torch.zeros(4, 4)  # every caption less similar than the margin
    loss = DebiasedInfoNCELoss(temperature=0.1, strategy="downweight")
    assert torch.equal(loss.weights(IDS, text_sim=zeros), torch.ones(4, 4))
    expected = naive_infonce_np(EEG, TXT, 0.1)
    assert float(loss(t(EEG), t(TXT), IDS, text_sim=zeros)) == pytest.approx(
        expected, rel=1e-5)
    same_class = DebiasedInfoNCELoss(temperature=0.1, strategy="same_class")
    assert float(same_class(t(EEG), t(TXT), IDS, categories=[0, 1, 2, 3])) == \
        pytest.approx(expected, rel=1e-5)
    topk0 = DebiasedInfoNCELoss(temperature=0.1, strategy="topk", k=0)
    assert float(topk0(t(EEG), t(TXT), IDS)) == pytest.approx(expected, rel=1e-5)
    # with duplicated ids, unit weights elsewhere = InfoNCE's "mask" mode
    ids = [1, 1, 2, 3]
    mask = InfoNCELoss(temperature=0.1, duplicates="mask")(t(EEG), t(TXT), ids)
    assert float(loss(t(EEG), t(TXT), ids, text_sim=zeros)) == pytest.approx(
        float(mask), rel=1e-5)


@pytest.mark.parametrize("strategy", ["downweight", "topk", "same_class"])
def test_debiased_positive_weight_is_one_and_duplicates_zero(strategy):
    ids = torch.tensor([3, 3, 1, 3, 2])
    txt = torch.tensor(unit(np.random.default_rng(0).normal(size=(5, D))),
                       dtype=torch.float32)
    txt[1] = txt[3] = txt[0]
    sim = (txt @ txt.T).requires_grad_()
    loss = DebiasedInfoNCELoss(strategy=strategy, k=2)
    w = loss.weights(ids, categories=torch.zeros(5, dtype=torch.long), text_sim=sim)
    assert not w.requires_grad
    assert torch.equal(w.diagonal(), torch.ones(5))
    same = (ids[:, None] == ids[None, :]) & ~torch.eye(5, dtype=torch.bool)
    assert torch.equal(w[same], torch.zeros(int(same.sum())))
    # all captions identical: only the positive is left, the loss is 0
    all_same = torch.zeros(5, dtype=torch.long)
    w = loss.weights(all_same, categories=all_same, text_sim=torch.ones(5, 5))
    assert torch.equal(w, torch.eye(5))


def test_downweight_is_one_below_margin_and_decreasing_above():
    s = torch.linspace(-1, 1, 41)
    sim = torch.zeros(42, 42)
    sim[0, 1:] = s
    w = DebiasedInfoNCELoss(strategy="downweight", margin=0.5).weights(
        torch.arange(42), text_sim=sim)[0, 1:]
    below = s < 0.5
    assert torch.equal(w[below], torch.ones(int(below.sum())))
    above = w[s >= 0.5]
    assert bool((above[1:] < above[:-1]).all())
    np.testing.assert_allclose(above.numpy(), 1 - (s[s >= 0.5].numpy() - 0.5) / 0.5,
                               atol=1e-6)
    assert float(w[-1]) == pytest.approx(0.0, abs=1e-6)  # identical caption


def test_topk_removes_exactly_k_most_similar_captions():
    rng = np.random.default_rng(1)
    sim = torch.tensor(rng.uniform(-1, 1, size=(6, 6)), dtype=torch.float32)
    for k in (1, 2, 3):
        w = DebiasedInfoNCELoss(strategy="topk", k=k).weights(torch.arange(6),
                                                              text_sim=sim)
        for i in range(6):
            others = [j for j in range(6) if j != i]
            top = sorted(others, key=lambda j: -float(sim[i, j]))[:k]
            assert {j for j in others if w[i, j] == 0} == set(top)
            assert int((w[i] == 0).sum()) == k
    # k larger than the number of other captions: every negative is removed
    w = DebiasedInfoNCELoss(strategy="topk", k=10).weights(torch.arange(3),
                                                           text_sim=sim[:3, :3])
    assert torch.equal(w, torch.eye(3))


def test_topk_counts_distinct_captions_and_breaks_ties_by_index():
    # ids: anchor 0, caption 7 appears twice (cols 1, 2), captions 8 and 9 once
    ids = torch.tensor([0, 7, 7, 8, 9])
    sim = torch.zeros(5, 5)
    sim[0] = torch.tensor([1.0, 0.9, 0.9, 0.5, 0.5])
    w = DebiasedInfoNCELoss(strategy="topk", k=1).weights(ids, text_sim=sim)
    # k = 1 caption: both copies of caption 7 removed, 8 and 9 kept
    np.testing.assert_array_equal(w[0].numpy(), [1, 0, 0, 1, 1])
    w = DebiasedInfoNCELoss(strategy="topk", k=2).weights(ids, text_sim=sim)
    # tie between captions 8 (col 3) and 9 (col 4): the lower index goes first
    np.testing.assert_array_equal(w[0].numpy(), [1, 0, 0, 0, 1])


def test_same_class_removes_same_category_and_needs_categories():
    cats = torch.tensor([4, 4, 2, 4])
    loss = DebiasedInfoNCELoss(strategy="same_class")
    w = loss.weights(IDS, categories=cats)
    expected = (cats[:, None] != cats[None, :]).float()
    expected.fill_diagonal_(1)
    assert torch.equal(w, expected)
    with pytest.raises(ValueError, match="needs categories"):
        loss(t(EEG), t(TXT), IDS)


def test_debiased_rejects_bad_settings():
    with pytest.raises(ValueError, match="strategy='remove': choose one of"):
        DebiasedInfoNCELoss(strategy="remove")
    with pytest.raises(ValueError, match="margin"):
        DebiasedInfoNCELoss(margin=1.0)
    with pytest.raises(ValueError, match="k must be"):
        DebiasedInfoNCELoss(k=-1)
    with pytest.raises(ValueError, match="text_sim"):
        DebiasedInfoNCELoss().weights(IDS)
    with pytest.raises(ValueError, match="text_sim must have shape"):
        DebiasedInfoNCELoss().weights(IDS, text_sim=torch.zeros(3, 3))


# ---------------------------------------------------------------------------
# cross-entropy
# ---------------------------------------------------------------------------


def test_category_ce_matches_hand_computation():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(4, N_CLASSES))
    y = np.array([0, 19, 3, 3])
    expected = -np.mean(log_softmax_np(u)[np.arange(4), y])
    got = CategoryCELoss()(t(u), torch.tensor(y))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    smooth = CategoryCELoss(label_smoothing=0.1)(t(u), torch.tensor(y))
    logp = log_softmax_np(u)
    expected_smooth = np.mean(-0.9 * logp[np.arange(4), y] - 0.1 * logp.mean(axis=1))
    assert float(smooth) == pytest.approx(expected_smooth, rel=1e-5)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 20\)"):
        CategoryCELoss()(t(u), torch.tensor([0, 1, 2, 20]))


# ---------------------------------------------------------------------------
# gradients and edge cases, every loss
# ---------------------------------------------------------------------------


def _run(name, eeg, txt, ids, tau=0.07, head=None):
    """Value of loss ``name`` on (eeg, txt) with a bank = txt, categories = ids."""
    if name == "cos":
        return CosineLoss()(eeg, txt)
    if name == "kd":
        teacher = teacher_distribution(txt.detach() + 0.3, txt.detach(), tau_t=0.1)
        return KDLoss(tau_s=tau)(eeg, txt, teacher)
    if name.startswith("infonce"):
        mode, symmetric = name.split("_")[1], True
        return InfoNCELoss(temperature=tau, duplicates=mode, symmetric=symmetric)(
            eeg, txt, ids)
    if name.startswith("debiased"):
        strategy = name.split("_", 1)[1]
        return DebiasedInfoNCELoss(temperature=tau, strategy=strategy)(
            eeg, txt, ids, categories=ids % 2)
    if name == "ce":
        return CategoryCELoss()(head(eeg) / tau, ids % N_CLASSES)
    raise AssertionError(name)


LOSS_NAMES = ["cos", "kd", "infonce_positive", "infonce_mask", "debiased_downweight",
              "debiased_topk", "debiased_same_class", "ce"]


def _encoder_batch(batch, seed=0):
    torch.manual_seed(seed)
    encoder = nn.Linear(5, D)
    head = nn.Linear(D, N_CLASSES)
    X = torch.randn(batch, 5)
    eeg = F.normalize(encoder(X), dim=1)
    txt = F.normalize(torch.randn(batch, D), dim=1)
    return encoder, head, eeg, txt


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradient_reaches_the_eeg_encoder(name):
    encoder, head, eeg, txt = _encoder_batch(4)
    ids = torch.tensor([0, 1, 2, 1])
    loss = _run(name, eeg, txt, ids, tau=0.1, head=head)
    loss.backward()
    grad = encoder.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("case", ["batch_of_one", "all_same_caption", "tau_1e-3",
                                  "tau_100"])
def test_edge_cases_are_finite(name, case):
    batch = 1 if case == "batch_of_one" else 4
    tau = {"tau_1e-3": 1e-3, "tau_100": 100.0}.get(case, 0.07)
    encoder, head, eeg, txt = _encoder_batch(batch, seed=3)
    ids = torch.arange(batch)
    if case == "all_same_caption":
        ids = torch.zeros(batch, dtype=torch.long)
        txt = txt[:1].expand(batch, -1)
    loss = _run(name, eeg, txt, ids, tau=tau, head=head)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(encoder.weight.grad).all()
    if case == "all_same_caption" and name.startswith(("infonce", "debiased")):
        assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)  # no negative


# ---------------------------------------------------------------------------
# combined loss and factory
# ---------------------------------------------------------------------------


def _combined_inputs():
    rng = np.random.default_rng(4)
    bank = t(unit(rng.normal(size=(6, D))))
    return dict(
        eeg=t(EEG), txt=t(TXT), caption_ids=torch.tensor([0, 1, 1, 2]),
        categories=torch.tensor([0, 0, 1, 1]), logits=t(rng.normal(size=(4, 20))),
        y=torch.tensor([0, 5, 5, 19]), bank=bank,
        teacher=teacher_distribution(rng.normal(size=(4, D)), bank),
    )


def test_combined_sums_weighted_terms_and_names_them():
    lambdas = {"cos": 0.5, "kd": 2.0, "infonce": 0.3, "debiased": 1.5, "ce": 0.1}
    combined = CombinedLoss(lambdas=lambdas, temperature=0.1, tau_s=0.2,
                            debias_strategy="topk", debias_k=1)
    inp = _combined_inputs()
    eeg, txt, ids = inp["eeg"], inp["txt"], inp["caption_ids"]
    parts = {
        "cos": CosineLoss()(eeg, txt),
        "kd": KDLoss(tau_s=0.2)(eeg, inp["bank"], inp["teacher"]),
        "infonce": InfoNCELoss(temperature=0.1)(eeg, txt, ids),
        "debiased": DebiasedInfoNCELoss(temperature=0.1, strategy="topk", k=1)(
            eeg, txt, ids),
        "ce": CategoryCELoss()(inp["logits"], inp["y"]),
    }
    out = combined(eeg, txt, ids, **{k: inp[k] for k in
                   ("categories", "logits", "y", "bank", "teacher")}, output_dict=True)
    assert set(out) == {"loss", *lambdas}
    for name, value in parts.items():
        assert float(out[name]) == pytest.approx(float(value), rel=1e-6)
    expected = sum(lambdas[n] * float(v) for n, v in parts.items())
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-6)
    total = combined(eeg, txt, ids, logits=inp["logits"], y=inp["y"],
                     bank=inp["bank"], teacher=inp["teacher"])
    assert float(total) == pytest.approx(expected, rel=1e-6)


def test_combined_zero_lambda_terms_are_not_computed():
    inp = _combined_inputs()
    combined = CombinedLoss(lambdas={"cos": 1.0, "ce": 0.0})
    out = combined(inp["eeg"], inp["txt"], inp["caption_ids"], output_dict=True)
    assert set(out) == {"loss", "cos"}  # no logits needed, ce is off
    assert float(out["loss"]) == pytest.approx(float(out["cos"]))


def test_combined_kd_warmup_uses_only_kd():
    inp = _combined_inputs()
    combined = CombinedLoss(lambdas={"kd": 0.5, "debiased": 1.0}, kd_warmup_epochs=2)
    kd = float(KDLoss()(inp["eeg"], inp["bank"], inp["teacher"]))
    for epoch in (0, 1):
        combined.set_epoch(epoch)
        out = combined(inp["eeg"], inp["txt"], inp["caption_ids"], bank=inp["bank"],
                       teacher=inp["teacher"], output_dict=True)
        assert set(out) == {"loss", "kd"}
        assert float(out["loss"]) == pytest.approx(0.5 * kd, rel=1e-6)
    combined.set_epoch(2)
    out = combined(inp["eeg"], inp["txt"], inp["caption_ids"], bank=inp["bank"],
                   teacher=inp["teacher"], output_dict=True)
    assert set(out) == {"loss", "kd", "debiased"}
    assert float(out["loss"]) == pytest.approx(
        0.5 * kd + float(out["debiased"]), rel=1e-6)
    with pytest.raises(ValueError, match="epoch must be"):
        combined.set_epoch(-1)


def test_combined_errors_name_the_problem():
    with pytest.raises(ValueError, match="valid terms are"):
        CombinedLoss(lambdas={"cosine": 1.0})
    with pytest.raises(ValueError, match="kd_warmup_epochs"):
        CombinedLoss(lambdas={"cos": 1.0}, kd_warmup_epochs=3)
    with pytest.raises(ValueError, match="every term off"):
        CombinedLoss(lambdas={"cos": 0.0})
    with pytest.raises(ValueError, match=">= 0"):
        CombinedLoss(lambdas={"cos": -1.0})
    inp = _combined_inputs()
    with pytest.raises(ValueError, match="'kd' term .* needs bank, teacher"):
        CombinedLoss(lambdas={"kd": 1.0})(inp["eeg"], inp["txt"], inp["caption_ids"])
    with pytest.raises(ValueError, match="'ce' term .* needs logits"):
        CombinedLoss(lambdas={"ce": 1.0})(inp["eeg"], inp["txt"], inp["caption_ids"],
                                          y=inp["y"])
    with pytest.raises(ValueError, match="needs categories"):
        CombinedLoss(lambdas={"debiased": 1.0}, debias_strategy="same_class")(
            inp["eeg"], inp["txt"], inp["caption_ids"])


def test_make_loss_is_the_one_construction_path():
    for name in ("cos", "kd", "infonce", "debiased", "ce"):
        loss = make_loss(name)
        assert isinstance(loss, CombinedLoss) and loss.lambdas == {name: 1.0}
    loss = make_loss("debiased", debias_strategy="topk", debias_k=3, temperature=0.2)
    term = loss.terms["debiased"]
    assert (term.strategy, term.k, term.temperature) == ("topk", 3, 0.2)
    loss = make_loss({"kd": 1.0, "infonce": 0.5}, kd_warmup_epochs=1, tau_s=0.3)
    assert loss.lambdas == {"kd": 1.0, "infonce": 0.5} and loss.kd_warmup_epochs == 1
    assert loss.terms["kd"].tau_s == 0.3
    loss = make_loss("combined", lambdas={"cos": 1.0, "ce": 0.2})
    assert loss.lambdas == {"cos": 1.0, "ce": 0.2}
    with pytest.raises(ValueError, match=r"spec='clip': choose one of \[.*\] or a dict of lambdas"):
        make_loss("clip")
    with pytest.raises(ValueError, match="needs lambdas"):
        make_loss("combined")
