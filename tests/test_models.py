import pytest
import torch

from engine.errors import ConfigError
from engine.models import build_model, model_names, parameter_count


def test_lenet_is_the_tutorial_network() -> None:
    model = build_model("lenet")
    assert parameter_count(model) == 44_426
    assert [type(m).__name__ for m in model.children()] == ["Conv2d", "Conv2d", "Linear", "Linear", "Linear"]


def test_lenet_computes_the_tutorials_function_and_gradients() -> None:
    """LeNet pools before its ReLUs for speed; values and gradients must equal the tutorial's order."""
    from torch.nn import functional as F

    def tutorial_forward(net, x):
        x = F.max_pool2d(F.relu(net.conv1(x)), 2)
        x = F.max_pool2d(F.relu(net.conv2(x)), 2)
        x = F.relu(net.fc1(torch.flatten(x, 1)))
        return net.fc3(F.relu(net.fc2(x)))

    torch.manual_seed(0)
    model = build_model("lenet")
    x = torch.rand(16, 1, 28, 28)
    x[:, :, :6] = 0  # blank rows, as on MNIST's borders, where pooled values tie
    ours, theirs = model(x), tutorial_forward(model, x)
    torch.testing.assert_close(ours, theirs)
    ours_grads = torch.autograd.grad(ours.square().sum(), list(model.parameters()))
    their_grads = torch.autograd.grad(theirs.square().sum(), list(model.parameters()))
    for a, b in zip(ours_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", model_names())
def test_every_model_maps_a_batch_to_ten_logits(name: str) -> None:
    model = build_model(name).eval()
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_default_model_is_small_enough_to_bundle() -> None:
    assert parameter_count(build_model("digitnet")) < 400_000  # < 1.6 MB of float32


def test_unknown_model() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        build_model("resnet")
