import pytest
import torch

from engine.errors import ConfigError
from engine.models import build_model, model_names, parameter_count


def test_lenet_is_the_tutorial_network() -> None:
    model = build_model("lenet")
    assert parameter_count(model) == 44_426
    assert [type(m).__name__ for m in model.children()] == ["Conv2d", "Conv2d", "Linear", "Linear", "Linear"]


@pytest.mark.parametrize("name", model_names())
def test_every_model_maps_a_batch_to_ten_logits(name: str) -> None:
    model = build_model(name).eval()
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_default_model_is_small_enough_to_bundle() -> None:
    assert parameter_count(build_model("digitnet")) < 400_000  # < 1.6 MB of float32


def test_unknown_model() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        build_model("resnet")
