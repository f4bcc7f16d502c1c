import pytest
import torch

from eegkit.models import (
    UNKNOWN_SUBJECT,
    ChannelCNN,
    ElectrodeTransformer,
    MultiHeadEEGNet,
    make_model,
    subject_lookup,
)

SUBJECTS = ("sub-02", "sub-03", "sub-05")


@pytest.mark.parametrize("name", ["wang_fc", "eegnet", "shallow", "multihead"])
def test_every_model_maps_trials_to_20_logits(name):
    model = make_model(name, 122, 125, 250.0, subjects=SUBJECTS)
    X = torch.randn(4, 122, 125)
    out = model(X, torch.tensor([0, 1, 2, 0]))
    assert out.shape == (4, 20) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"expects X of shape \(batch, 122, 125\)"):
        model(torch.randn(4, 120, 125), torch.zeros(4, dtype=torch.long))


def test_channel_cnn_keeps_electrode_identity():
    cnn = ChannelCNN(122, 500, 1000.0, d=32).eval()
    X = torch.randn(2, 122, 500)
    tokens = cnn(X)
    assert tokens.shape == (2, 122, 32)
    # the same waveform on two electrodes gives different tokens (electrode embedding)
    X[:, 1] = X[:, 0]
    tokens = cnn(X)
    assert not torch.allclose(tokens[:, 0], tokens[:, 1])
    # and the filters are shared: without the embedding the tokens agree
    assert torch.allclose(tokens[:, 0] - cnn.electrode_embedding[0], tokens[:, 1] - cnn.electrode_embedding[1], atol=1e-5)


def test_each_trial_uses_its_own_subjects_head():
    model = MultiHeadEEGNet(122, 125, 250.0, SUBJECTS).eval()
    X = torch.randn(6, 122, 125)
    subject = torch.tensor([2, 0, 1, 0, 2, 1])
    out = model(X, subject)
    features = model.encoder(X)
    for i, s in enumerate(subject.tolist()):
        expected = model.heads.heads[SUBJECTS[s]](features[i : i + 1])
        torch.testing.assert_close(out[i : i + 1], expected)
    # a subject without a head gets the mean of all heads
    unknown = model(X[:1], torch.tensor([UNKNOWN_SUBJECT]))
    mean = torch.stack([h(features[:1]) for h in model.heads.heads.values()]).mean(0)
    torch.testing.assert_close(unknown, mean)


def test_selective_backprop_leaves_absent_heads_bit_identical():
    """AdamW with weight decay and momentum: an absent head must not move at all."""
    torch.manual_seed(0)
    model = MultiHeadEEGNet(122, 125, 250.0, SUBJECTS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(3):  # several steps, so AdamW has momentum for every head it saw
        subject = torch.tensor([0, 1, 0, 1]) if step < 2 else torch.tensor([0, 0, 0, 0])
        X, y = torch.randn(4, 122, 125), torch.randint(0, 20, (4,))
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(X, subject), y).backward()
        if step == 2:
            assert all(p.grad is None for p in model.heads.heads["sub-03"].parameters())
            head_03 = {k: v.clone() for k, v in model.heads.heads["sub-03"].state_dict().items()}
        optimizer.step()
    after = model.state_dict()
    # sub-05 was never in a batch: bit-identical to its initial weights
    for key in before:
        if key.startswith("heads.heads.sub-05"):
            assert torch.equal(before[key], after[key]), key
    # sub-03 was absent from the last step: that step left it bit-identical
    for key, value in model.heads.heads["sub-03"].state_dict().items():
        assert torch.equal(head_03[key], value), key
    # the present head and the shared encoder did change
    assert not torch.equal(before["heads.heads.sub-02.1.weight"], after["heads.heads.sub-02.1.weight"])
    assert not torch.equal(before["encoder.cnn.electrode_embedding"], after["encoder.cnn.electrode_embedding"])


def test_shared_head_adds_each_subjects_residual_and_serves_unknown_subjects():
    torch.manual_seed(0)
    model = MultiHeadEEGNet(122, 125, 250.0, SUBJECTS, shared_head=True).eval()
    X = torch.randn(5, 122, 125)
    features = model.encoder(X)
    shared = model.heads.shared(features)
    # residual heads start at zero: at initialisation every subject gets the shared head
    torch.testing.assert_close(model(X, torch.tensor([0, 1, 2, 0, 1])), shared)
    for own in model.heads.heads.values():
        torch.nn.init.normal_(own[-1].weight)
    subject = torch.tensor([2, 0, 1, 0, UNKNOWN_SUBJECT])
    out = model(X, subject)
    for i, s in enumerate(subject.tolist()[:4]):
        own = model.heads.heads[SUBJECTS[s]](features[i : i + 1])
        torch.testing.assert_close(out[i : i + 1], shared[i : i + 1] + own)
    # a subject without a head gets the shared head alone
    torch.testing.assert_close(out[4:], shared[4:])


def test_shared_head_trains_on_every_subject_but_absent_residuals_stay_bit_identical():
    torch.manual_seed(0)
    model = MultiHeadEEGNet(122, 125, 250.0, SUBJECTS, shared_head=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        X, y = torch.randn(4, 122, 125), torch.randint(0, 20, (4,))
        torch.nn.functional.cross_entropy(model(X, torch.tensor([0, 1, 0, 1])), y).backward()
        assert all(p.grad is None for p in model.heads.heads["sub-05"].parameters())
        optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("heads.heads.sub-05"))
    assert not torch.equal(before["heads.shared.1.weight"], after["heads.shared.1.weight"])
    assert not torch.equal(before["heads.heads.sub-02.1.weight"], after["heads.heads.sub-02.1.weight"])


def test_subject_lookup_maps_missing_subjects_to_unknown():
    lookup = subject_lookup(("sub-02", "sub-05"), ("sub-02", "sub-03", "sub-05"))
    assert lookup.tolist() == [0, UNKNOWN_SUBJECT, 1]


def test_unknown_model_name():
    with pytest.raises(ValueError, match="name='resnet': choose one of"):
        make_model("resnet", 122, 500, 1000.0)


@pytest.mark.parametrize("readout", ["spatial", "flatten", "summary", "mean"])
def test_transformer_readouts_give_one_vector_per_trial(readout):
    model = MultiHeadEEGNet(122, 125, 250.0, SUBJECTS, d=16, n_heads=2, readout=readout)
    assert model.encoder(torch.randn(3, 122, 125)).shape == (3, 16)


@pytest.mark.parametrize("readout, order_matters", [("mean", False), ("summary", False),
                                                    ("flatten", True), ("spatial", True)])
def test_readouts_pool_or_weight_the_electrodes(readout, order_matters):
    # The transformer has no positional code, so "mean" and "summary" pool the
    # electrode tokens symmetrically; "flatten" and "spatial" weight each electrode
    # (spatial filters) and must see which token is which.
    torch.manual_seed(0)
    transformer = ElectrodeTransformer(12, d=16, n_layers=1, n_heads=2, readout=readout).eval()
    tokens = torch.randn(4, 12, 16)
    permuted = tokens[:, torch.randperm(12)]
    with torch.no_grad():
        same = torch.allclose(transformer(tokens), transformer(permuted), atol=1e-5)
    assert same != order_matters


def test_bad_architecture_choices_are_refused():
    with pytest.raises(ValueError, match="readout='max': choose one of"):
        MultiHeadEEGNet(122, 125, 250.0, SUBJECTS, readout="max")
    with pytest.raises(ValueError, match="activation='relu': choose one of"):
        ChannelCNN(122, 125, 250.0, activation="relu")


def _tokens_by_layers(cnn, X):
    """ChannelCNN.forward before the closed form: every layer on every series."""
    series = X.reshape(-1, 1, X.shape[-1])
    tokens = cnn.project(cnn.temporal(series)).reshape(X.shape[0], X.shape[1], -1)
    return tokens + cnn.electrode_embedding


def _run(cnn, X, forward, seed=1):
    """Tokens, parameter gradients, input gradient and state after one pass."""
    cnn.zero_grad()
    X = X.clone().requires_grad_(True)
    torch.manual_seed(seed)  # the same dropout masks for both implementations
    tokens = forward(cnn, X)
    weights = torch.linspace(-1, 1, tokens.numel(), dtype=tokens.dtype).view_as(tokens)
    (tokens * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in cnn.named_parameters()}
    state = {k: v.clone() for k, v in cnn.state_dict().items()}
    return tokens.detach(), grads, X.grad, state


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_closed_form_channel_cnn_equals_layer_by_layer(training, momentum):
    """The closed form gives the layers' tokens, gradients and BN statistics."""
    import copy

    torch.manual_seed(0)
    cnn = ChannelCNN(7, 200, 400.0, d=8, n_filters=4, n_time_bins=5).double()
    for bn in (cnn.temporal[2], cnn.temporal[6]):
        bn.momentum = momentum
    X = 1.5 * torch.randn(5, 7, 200, dtype=torch.float64) + 0.3
    if not training:  # non-trivial running statistics for eval mode
        cnn.train()(X)
    reference = copy.deepcopy(cnn)
    cnn.train(training), reference.train(training)
    for _ in range(2):  # twice: running statistics and num_batches_tracked agree
        got = _run(cnn, X, lambda m, x: m(x))
        want = _run(reference, X, _tokens_by_layers)
        torch.testing.assert_close(got[0], want[0], rtol=1e-9, atol=1e-10)
        for name in want[1]:
            torch.testing.assert_close(got[1][name], want[1][name], rtol=1e-8,
                                       atol=1e-9, msg=lambda m, n=name: f"{n}: {m}")
        torch.testing.assert_close(got[2], want[2], rtol=1e-8, atol=1e-10)
        assert got[3].keys() == want[3].keys()
        for key in want[3]:
            torch.testing.assert_close(got[3][key], want[3][key], rtol=1e-9, atol=1e-12,
                                       msg=lambda m, key=key: f"state {key}: {m}")


def test_closed_form_channel_cnn_float32_matches_within_rounding():
    import copy

    torch.manual_seed(0)
    cnn = ChannelCNN(122, 500, 1000.0)
    reference = copy.deepcopy(cnn)
    X = torch.randn(4, 122, 500)
    got, want = _run(cnn, X, lambda m, x: m(x)), _run(reference, X, _tokens_by_layers)
    torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[3]["temporal.6.running_var"],
                               want[3]["temporal.6.running_var"], rtol=1e-4, atol=1e-6)


def test_gelu_channel_cnn_runs_layer_by_layer():
    from eegkit.models.multihead import _is_affine_chain

    cnn = ChannelCNN(7, 200, 400.0, d=8, activation="gelu").eval()
    assert not _is_affine_chain(cnn.temporal)
    assert _is_affine_chain(ChannelCNN(7, 200, 400.0, d=8).temporal)
    X = torch.randn(3, 7, 200)
    torch.testing.assert_close(cnn(X), _tokens_by_layers(cnn, X))


def test_multihead_state_dict_keys_unchanged():
    model = MultiHeadEEGNet(122, 125, 250.0, SUBJECTS)
    cnn_keys = [k for k in model.state_dict() if k.startswith("encoder.cnn.")]
    assert cnn_keys == [
        "encoder.cnn.electrode_embedding",
        "encoder.cnn.temporal.1.weight", "encoder.cnn.temporal.1.bias",
        "encoder.cnn.temporal.2.weight", "encoder.cnn.temporal.2.bias",
        "encoder.cnn.temporal.2.running_mean", "encoder.cnn.temporal.2.running_var",
        "encoder.cnn.temporal.2.num_batches_tracked",
        "encoder.cnn.temporal.5.weight", "encoder.cnn.temporal.5.bias",
        "encoder.cnn.temporal.6.weight", "encoder.cnn.temporal.6.bias",
        "encoder.cnn.temporal.6.running_mean", "encoder.cnn.temporal.6.running_var",
        "encoder.cnn.temporal.6.num_batches_tracked",
        "encoder.cnn.project.2.weight", "encoder.cnn.project.2.bias",
    ]


def test_multihead_training_step_unchanged_by_closed_form(monkeypatch):
    """Same seed, same dropout masks: the logits match the layer-by-layer model's."""
    import copy

    from eegkit.models import multihead as models

    torch.manual_seed(0)
    model = MultiHeadEEGNet(16, 200, 400.0, SUBJECTS, d=16, n_heads=2).double().train()
    reference = copy.deepcopy(model)
    X = torch.randn(6, 16, 200, dtype=torch.float64)
    subject = torch.tensor([2, 0, 1, 0, 2, 1])
    torch.manual_seed(1)
    got = model(X, subject)
    monkeypatch.setattr(models, "_is_affine_chain", lambda layers: False)
    torch.manual_seed(1)
    want = reference(X, subject)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
