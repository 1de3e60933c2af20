"""LeNet's fused CPU stem (engine/lenet_stem.py, engine/native/conv_pool.c) against the plain operators,
and the build-on-first-use library loader behind it (engine/native_library.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine import lenet_stem, native_library
from engine.models import LeNet

pytestmark = pytest.mark.skipif(
    native_library.find_compiler()[0] is None or native_library.disabled()
    or lenet_stem.MACHINE.lower() not in lenet_stem.MEASURED_MACHINES,
    reason="needs a C compiler (the kernel is built on first use) on x86-64")


def fused_and_plain(model: LeNet, x: torch.Tensor):
    """The stem's output and the conv layers' gradients, through the kernel and through plain PyTorch."""
    results = []
    for fused in (True, False):
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            if fused:
                out = lenet_stem.stem(x, model.conv1, model.conv2)
                assert type(out.grad_fn).__name__ == "_FusedStemBackward"
            else:
                out = lenet_stem.plain_stem(x, model.conv1, model.conv2)
            torch.manual_seed(1)
            out.backward(torch.randn(out.shape))  # randn_like would follow the layout, which differs
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if "conv" in n}))
    return results


def assert_close_results(fused, plain, rtol=1e-4):
    (out_f, grads_f), (out_p, grads_p) = fused, plain
    torch.testing.assert_close(out_f, out_p, rtol=rtol, atol=1e-5)
    for name in grads_p:
        scale = grads_p[name].abs().max().item() or 1.0
        torch.testing.assert_close(grads_f[name] / scale, grads_p[name] / scale, rtol=rtol, atol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_the_kernel_is_built_and_in_use(fresh_loader):
    status = lenet_stem.kernel_status()
    assert status.available, status.reason
    assert status.path is not None and status.path.exists()
    assert status.path.parent == native_library.native_cache_dir()
    assert "in use" in status.describe()


@pytest.mark.parametrize("batch", [9, 16, 37, 128])
def test_same_values_and_gradients_as_the_plain_operators(batch):
    torch.manual_seed(batch)
    model = LeNet().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, 28, 28)
    assert_close_results(*fused_and_plain(model, x))


@pytest.mark.parametrize("narrower, lanes", [((), 16), (("-mno-avx512f",), 8), (("-mno-avx",), 4)])
def test_every_vector_width_computes_the_same(fresh_loader, monkeypatch, narrower, lanes):
    """The kernel's AVX2 and SSE builds (8 and 4 images per chunk, weight gradients a kernel row at a
    time) built here by turning the wider instructions off, against the plain operators."""
    monkeypatch.setattr(native_library, "FLAG_CHOICES", (("-march=native", *narrower, "-fopenmp"),))
    status = lenet_stem.kernel_status()
    assert status.available, status.reason
    if status.library.lanes > lanes or (not narrower and status.library.lanes < lanes):
        pytest.skip(f"this CPU builds {status.library.lanes}-lane vectors")
    assert status.library.lanes == lanes
    torch.manual_seed(0)
    assert_close_results(*fused_and_plain(LeNet(), torch.randn(21, 1, 28, 28)))


def test_odd_image_sizes_pool_in_floor_mode_like_max_pool2d():
    torch.manual_seed(0)
    model = LeNet()
    assert_close_results(*fused_and_plain(model, torch.randn(20, 1, 29, 31)))


def test_ties_in_a_pooling_window_send_the_gradient_where_max_pool2d_does():
    """Every 2x2 window of conv1's output ties when conv1 reads only its centre tap and the image is
    constant on each aligned 2x2 block; the other taps' gradients then depend on which position won."""
    torch.manual_seed(0)
    model = LeNet()
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[:, 0, 2, 2] = torch.rand(6) + 0.5
        model.conv1.bias.fill_(0.1)
    blocks = torch.rand(32, 1, 14, 14)
    x = blocks.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    conv = F.conv2d(x, model.conv1.weight, model.conv1.bias)
    assert torch.equal(conv[:, :, 0::2, 0::2], conv[:, :, 1::2, 1::2])  # the ties are real
    fused, plain = fused_and_plain(model, x)
    assert_close_results(fused, plain)
    assert fused[1]["conv1.weight"][:, 0, 0, 0].abs().sum() > 0  # a tap other than the centre learns


def test_outputs_the_relu_zeroes_pass_no_gradient():
    torch.manual_seed(0)
    model = LeNet()
    with torch.no_grad():
        model.conv1.bias.fill_(-100.0)  # every pooled value is negative: ReLU zeroes the whole block
    (out_f, grads_f), (out_p, grads_p) = fused_and_plain(model, torch.rand(16, 1, 28, 28))
    assert torch.count_nonzero(grads_f["conv1.weight"]) == 0 and torch.count_nonzero(grads_f["conv1.bias"]) == 0
    torch.testing.assert_close(out_f, out_p)


def test_a_nan_pixel_propagates_as_in_pytorch():
    torch.manual_seed(0)
    model = LeNet()
    x = torch.randn(16, 1, 28, 28)
    x[3, 0, 10, 10] = math.nan
    fused = lenet_stem.stem(x, model.conv1, model.conv2).detach()
    plain = lenet_stem.plain_stem(x, model.conv1, model.conv2).detach()
    assert torch.equal(fused.isnan(), plain.isnan()) and fused.isnan().any()
    assert not fused[torch.arange(16) != 3].isnan().any()
    torch.testing.assert_close(fused.nan_to_num(), plain.nan_to_num(), rtol=1e-4, atol=1e-5)


def test_conv1_gradients_do_not_depend_on_the_thread_count():
    torch.manual_seed(0)
    model = LeNet()
    x = torch.randn(64, 1, 28, 28)
    grads = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model.zero_grad(set_to_none=True)
            lenet_stem.stem(x, model.conv1, model.conv2).sum().backward()
            grads.append((model.conv1.weight.grad.clone(), model.conv1.bias.grad.clone()))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def test_inference_uses_the_kernel_and_matches():
    torch.manual_seed(0)
    model = LeNet().eval()
    x = torch.randn(50, 1, 28, 28)
    with torch.inference_mode():
        fused = model(x)
        with native_library.switched_off():
            plain = model(x)
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ["small batch", "input needs a gradient", "float64", "switched off", "tracing",
                                  "flop counter"])
def test_the_plain_path_runs_where_the_kernel_does_not_apply(case):
    model = LeNet()
    x = torch.randn(8 if case == "small batch" else 16, 1, 28, 28)
    if case == "input needs a gradient":
        x.requires_grad_(True)
    if case == "float64":
        model, x = model.double(), x.double()
    if case == "switched off":
        with native_library.switched_off():
            out = lenet_stem.stem(x, model.conv1, model.conv2)
    elif case == "flop counter":  # a dispatch mode must see every operator: conv1's FLOPs are counted
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            out = lenet_stem.stem(x, model.conv1, model.conv2)
        assert counter.get_total_flops() == 2 * 16 * (24 * 24 * 6 * 25 + 8 * 8 * 16 * 150)
    elif case == "tracing":
        traced = torch.jit.trace(model, x, check_trace=False)
        assert "conv_pool" not in str(traced.graph) and "Python" not in str(traced.graph)
        return
    else:
        out = lenet_stem.stem(x, model.conv1, model.conv2)
    assert type(out.grad_fn).__name__ != "_FusedStemBackward"
    torch.testing.assert_close(out, lenet_stem.plain_stem(x, model.conv1, model.conv2))


def test_lenet_trains_the_same_with_and_without_the_kernel(tiny_dataset):
    from engine.training import TrainConfig, Trainer

    config = TrainConfig.for_model("lenet", epochs=2, batch_size=32, device="cpu")
    fused = Trainer(config, tiny_dataset).run()
    with native_library.switched_off():
        plain = Trainer(config, tiny_dataset).run()
    assert fused.epochs_done == plain.epochs_done == 2
    assert fused.final_loss == pytest.approx(plain.final_loss, rel=1e-3)
    assert fused.test_accuracy == pytest.approx(plain.test_accuracy, abs=0.02)


# ------------------------------------------------------------------------------------------ the loader

@pytest.fixture
def fresh_loader():
    """A loader that has not loaded anything yet in this process, and forgets again afterwards."""
    native_library.forget("conv_pool")
    yield
    native_library.forget("conv_pool")


def test_a_compiler_that_fails_leaves_the_plain_path_with_the_reason(fresh_loader, monkeypatch):
    monkeypatch.setenv("CC", "false")
    status = native_library.load("conv_pool")
    assert not status.available
    assert "false could not build conv_pool.c" in status.reason
    model = LeNet()
    out = lenet_stem.stem(torch.randn(16, 1, 28, 28), model.conv1, model.conv2)
    assert type(out.grad_fn).__name__ != "_FusedStemBackward"


def test_other_architectures_keep_the_plain_operators_until_measured(monkeypatch):
    monkeypatch.setattr(lenet_stem, "MACHINE", "arm64")
    status = lenet_stem.kernel_status()
    assert not status.available and status.reason == "not yet measured against PyTorch's own operators on arm64"
    model = LeNet()
    out = lenet_stem.stem(torch.randn(16, 1, 28, 28), model.conv1, model.conv2)
    assert type(out.grad_fn).__name__ != "_FusedStemBackward"


def test_a_missing_compiler_is_named(fresh_loader, monkeypatch):
    monkeypatch.setenv("CC", "/nowhere/cc")
    assert native_library.load("conv_pool").reason == "the C compiler CC names (/nowhere/cc) was not found"


def test_a_damaged_cached_library_is_built_again(fresh_loader, monkeypatch, tmp_path):
    built = native_library.load("conv_pool")
    assert built.available
    native_library.forget("conv_pool")
    # the same file name in another cache folder (a path this process has not loaded), damaged
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))
    damaged = native_library.native_cache_dir() / built.path.name
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a shared library")
    again = native_library.load("conv_pool")
    assert again.available and again.path == damaged
    assert not damaged.read_bytes().startswith(b"not a shared library")


def test_the_cached_library_is_reused_without_compiling(fresh_loader, monkeypatch):
    built = native_library.load("conv_pool")
    native_library.forget("conv_pool")
    monkeypatch.setattr(native_library, "_build", lambda *a: pytest.fail("compiled again"))
    assert native_library.load("conv_pool").path == built.path


def test_the_about_box_says_whether_the_kernel_is_in_use_without_building_it(fresh_loader, monkeypatch):
    from gui.main_window import about_text

    with monkeypatch.context() as patch:
        patch.setattr(native_library, "_build", lambda *a: pytest.fail("the GUI thread compiled"))
        assert "LeNet's fused CPU kernel: being prepared" in about_text("cpu", "LeNet")
    lenet_stem.kernel_status()  # as the app's warm-up does
    assert "LeNet's fused CPU kernel: in use" in about_text("cpu", "LeNet")
    with native_library.switched_off():
        assert "LeNet's fused CPU kernel: not in use (turned off by DIGIT_STUDIO_NATIVE=0)" in about_text("cpu", "x")
