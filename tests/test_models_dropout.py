"""eegkit's dropout and transformer layer: the same layer as torch's, with cheaper masks."""

import pytest
import torch
from torch import nn

from eegkit.models.dropout import Dropout, dropout, effective_p, keep_mask
from eegkit.models.multihead import PreNormEncoderLayer


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_each_random_lane_drops_with_probability_p(p):
    torch.manual_seed(0)
    n = 300_000
    # keep_mask fills elements three at a time from one word: every lane must be uniform
    dropped = ~keep_mask((n, 3), p)
    rates = dropped.float().mean(dim=0)
    se = (p * (1 - p) / n) ** 0.5
    assert torch.all((rates - effective_p(p)).abs() < 5 * se), rates


def test_dropout_keeps_the_expected_value_and_routes_gradients_through_kept_elements():
    torch.manual_seed(1)
    x = torch.full((400, 500), 2.0, requires_grad=True)
    y = dropout(x, 0.2)
    kept = y != 0
    assert torch.allclose(y[kept], torch.tensor(2.0 / (1 - effective_p(0.2))))
    assert abs(float(y.detach().mean()) - 2.0) < 0.02
    y.sum().backward()
    assert torch.all(x.grad[~kept] == 0) and torch.allclose(x.grad[kept], torch.tensor(1 / (1 - effective_p(0.2))))


def test_dropout_is_seeded_and_off_in_evaluation():
    x = torch.randn(64, 100)
    torch.manual_seed(5)
    first = dropout(x, 0.3)
    torch.manual_seed(5)
    assert torch.equal(first, dropout(x, 0.3))
    layer = Dropout(0.3).eval()
    assert layer(x) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        dropout(x, -0.1)
    # p so close to 1 that it rounds to 1 on the grid: every element dropped, no division by 0
    assert torch.equal(dropout(x, 1 - 2**-18), torch.zeros_like(x))


def test_encoder_layer_equals_torchs_layer_in_evaluation_with_the_same_state_dict():
    torch.manual_seed(0)
    ours = PreNormEncoderLayer(64, 4, 128, dropout=0.1).eval()
    torchs = nn.TransformerEncoderLayer(64, 4, 128, 0.1, activation="gelu", batch_first=True,
                                        norm_first=True).eval()
    assert ours.state_dict().keys() == torchs.state_dict().keys()
    torchs.load_state_dict(ours.state_dict())
    x = torch.randn(5, 122, 64)
    torch.testing.assert_close(ours(x), torchs(x), rtol=1e-5, atol=1e-5)
    # in training its dropouts act: two draws differ
    ours.train()
    assert not torch.equal(ours(x), ours(x))
    with pytest.raises(ValueError, match="masks"):
        ours(x, src_key_padding_mask=torch.zeros(5, 122, dtype=torch.bool))
    with pytest.raises(ValueError, match="masks"):
        ours(x, is_causal=True)
