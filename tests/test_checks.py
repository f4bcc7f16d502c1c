"""eegkit._checks: one wording for every "choose one of" error."""

import pytest

from eegkit._checks import check_option
from eegkit.models import make_model
from eegkit.models.classical import make_classical
from eegkit.retrieval.losses import make_loss
from eegkit.twin.preset import get_preset


def test_check_option_returns_an_allowed_value():
    assert check_option("layout", "course", ("course", "openneuro")) == "course"
    assert check_option("subject_layer", "fixed", (False, True, "fixed")) == "fixed"


def test_check_option_names_the_argument_the_value_and_the_choices():
    with pytest.raises(ValueError) as info:
        check_option("preset", "huge", {"tiny": 1, "default": 2, "full": 3})
    assert str(info.value) == "preset='huge': choose one of ['tiny', 'default', 'full']"
    with pytest.raises(ValueError, match=r"spec='clip': choose one of \['cos'\] or a dict"):
        check_option("spec", "clip", ("cos",), hint="or a dict of lambdas")


@pytest.mark.parametrize("call", [
    lambda: get_preset("huge"),
    lambda: make_model("resnet", 122, 500, 1000.0),
    lambda: make_classical("svm"),
    lambda: make_loss("clip"),
])
def test_library_choices_use_the_one_wording(call):
    with pytest.raises(ValueError, match=r"^\w+='\w+': choose one of \["):
        call()
