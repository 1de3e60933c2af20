"""LeNet's fused CPU kernel (engine/lenet_features.py, engine/native/lenet_features.c) against the plain operators,
and the build-on-first-use library loader behind it (engine/native_library.py)."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine import lenet_features, native_library
from engine.models import LeNet

pytestmark = pytest.mark.skipif(
    native_library.find_compiler()[0] is None
    or native_library.disabled()
    or lenet_features.MACHINE.lower() not in lenet_features.MEASURED_MACHINES,
    reason="needs a C compiler (the kernel is built on first use) on x86-64",
)


def ran_fused(out: torch.Tensor) -> bool:
    return "digit_studio_lenet_features" in type(out.grad_fn).__name__


def fused_and_plain(model: LeNet, x: torch.Tensor):
    """The features and the conv layers' gradients, through the kernel and through plain PyTorch."""
    results = []
    for fused in (True, False):
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            if fused:
                out = lenet_features.features(x, model.conv1, model.conv2, fused=True)
                assert ran_fused(out)
            else:
                out = lenet_features.plain_features(x, model.conv1, model.conv2)
            torch.manual_seed(1)
            out.backward(torch.randn(out.shape))
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if "conv" in n}))
    return results


def assert_close_results(fused, plain, rtol=1e-4):
    (out_f, grads_f), (out_p, grads_p) = fused, plain
    torch.testing.assert_close(out_f, out_p, rtol=rtol, atol=1e-5)
    for name in grads_p:
        scale = grads_p[name].abs().max().item() or 1.0
        torch.testing.assert_close(
            grads_f[name] / scale, grads_p[name] / scale, rtol=rtol, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}"
        )


def test_the_kernel_is_built_and_in_use(fresh_loader):
    status = lenet_features.kernel_status()
    assert status.available, status.reason
    assert status.path is not None and status.path.exists()
    assert status.path.parent == native_library.native_cache_dir()
    assert "in use" in status.describe()


@pytest.mark.parametrize("batch", [lenet_features.MIN_BATCH, 16, 37, 128])
def test_same_values_and_gradients_as_the_plain_operators(batch):
    torch.manual_seed(batch)
    model = LeNet().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, 28, 28)
    assert_close_results(*fused_and_plain(model, x))


@pytest.mark.parametrize("narrower, lanes", [((), 16), (("-mno-avx512f",), 8), (("-mno-avx",), 4)])
def test_every_vector_width_computes_the_same(fresh_loader, monkeypatch, narrower, lanes):
    """The kernel's AVX2 and SSE builds (8 and 4 images per chunk, 16 vector registers: weight gradients a
    kernel row at a time, one output channel at a time) built here by turning the wider instructions off."""
    monkeypatch.setattr(native_library, "FLAG_CHOICES", (("-march=native", *narrower, "-fopenmp"),))
    status = lenet_features.kernel_status()
    assert status.available, status.reason
    if status.library.lanes > lanes or (not narrower and status.library.lanes < lanes):
        pytest.skip(f"this CPU builds {status.library.lanes}-lane vectors")
    assert status.library.lanes == lanes
    torch.manual_seed(0)
    assert_close_results(*fused_and_plain(LeNet(), torch.randn(21, 1, 28, 28)))


@pytest.mark.parametrize("size", [(29, 31), (16, 16), (17, 40)])
def test_other_image_sizes_pool_in_floor_mode_like_max_pool2d(size):
    """Odd sizes leave a row or column that each pooling drops; 16 is the smallest both poolings fit."""
    torch.manual_seed(0)
    assert_close_results(*fused_and_plain(LeNet(), torch.randn(20, 1, *size)))


def blocky(images: int, block: int, offset: int) -> torch.Tensor:
    """28x28 images constant on aligned block x block squares, the grid shifted by ``offset`` pixels."""
    cells = torch.rand(images, 1, 28 // block + 2, 28 // block + 2)
    big = cells.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)
    return big[:, :, block - offset : block - offset + 28, block - offset : block - offset + 28].contiguous()


def centre_tap_only(conv: torch.nn.Conv2d) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, 2, 2] = torch.rand(conv.weight.shape[:2]) + 0.5
        conv.bias.fill_(0.1)


def test_ties_in_both_poolings_send_the_gradient_where_max_pool2d_does():
    """With each convolution reading only its centre tap, an image constant on 4x4 squares makes all four
    values of every pooling window equal, in both poolings; the other taps' gradients then depend on
    which position of each window won."""
    torch.manual_seed(0)
    model = LeNet()
    centre_tap_only(model.conv1)
    centre_tap_only(model.conv2)
    x = blocky(32, block=4, offset=2)  # conv1's centre is 2 pixels in, and pool1 halves the grid
    conv1 = F.conv2d(x, model.conv1.weight, model.conv1.bias)
    assert torch.equal(conv1[:, :, 0::2, 0::2], conv1[:, :, 1::2, 1::2])  # the ties are real
    conv2 = F.conv2d(F.relu(F.max_pool2d(conv1, 2)), model.conv2.weight, model.conv2.bias)
    assert torch.equal(conv2[:, :, 0::2, 0::2], conv2[:, :, 1::2, 1::2])
    fused, plain = fused_and_plain(model, x)
    assert_close_results(fused, plain)
    for name in ("conv1.weight", "conv2.weight"):  # a tap other than the centre learns
        assert fused[1][name][:, :, 0, 0].abs().sum() > 0


@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_outputs_a_relu_zeroes_pass_no_gradient(layer):
    torch.manual_seed(0)
    model = LeNet()
    with torch.no_grad():
        getattr(model, layer).bias.fill_(-100.0)  # every pooled value is negative: the ReLU zeroes them all
    (out_f, grads_f), (out_p, grads_p) = fused_and_plain(model, torch.rand(16, 1, 28, 28))
    silent = ["conv1.weight", "conv1.bias"] + (["conv2.weight", "conv2.bias"] if layer == "conv2" else [])
    assert all(torch.count_nonzero(grads_f[name]) == 0 for name in silent)
    if layer == "conv2":
        assert torch.count_nonzero(out_f) == 0
    assert_close_results((out_f, grads_f), (out_p, grads_p))


def test_a_nan_pixel_propagates_as_in_pytorch():
    torch.manual_seed(0)
    model = LeNet()
    x = torch.randn(16, 1, 28, 28)
    x[3, 0, 10, 10] = math.nan
    fused = lenet_features.features(x, model.conv1, model.conv2, fused=True).detach()
    plain = lenet_features.plain_features(x, model.conv1, model.conv2).detach()
    assert torch.equal(fused.isnan(), plain.isnan()) and fused.isnan().any()
    assert not fused[torch.arange(16) != 3].isnan().any()
    torch.testing.assert_close(fused.nan_to_num(), plain.nan_to_num(), rtol=1e-4, atol=1e-5)


def test_gradients_do_not_depend_on_the_thread_count():
    torch.manual_seed(0)
    model = LeNet()
    x = torch.randn(64, 1, 28, 28)
    grads = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model.zero_grad(set_to_none=True)
            lenet_features.features(x, model.conv1, model.conv2, fused=True).sum().backward()
            grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    finally:
        torch.set_num_threads(before)
    assert len(grads[0]) == 4 and all(torch.equal(a, b) for a, b in zip(*grads))


def test_threads_running_the_kernel_at_once_do_not_share_scratch_memory():
    """The app may evaluate on one thread while it trains on another; each keeps its own workspaces."""
    torch.manual_seed(0)
    model = LeNet()
    inputs = [torch.randn(48, 1, 28, 28) for _ in range(4)]
    expected = [lenet_features.plain_features(x, model.conv1, model.conv2).detach() for x in inputs]
    results: dict[int, list[torch.Tensor]] = {}

    def work(k: int) -> None:
        results[k] = [
            lenet_features.features(inputs[k], model.conv1, model.conv2, fused=True).detach() for _ in range(30)
        ]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, outs in results.items():
        for out in outs:
            torch.testing.assert_close(out, expected[k], rtol=1e-4, atol=1e-5)


def test_a_second_derivative_is_refused_rather_than_wrong():
    model = LeNet()
    out = lenet_features.features(torch.randn(16, 1, 28, 28), model.conv1, model.conv2, fused=True)
    (grad,) = torch.autograd.grad(out.square().sum(), model.conv1.weight, create_graph=True)
    with pytest.raises(RuntimeError, match="no autograd formula was registered"):
        grad.sum().backward()


def test_the_model_is_plain_pytorch_unless_the_trainer_opts_in(tiny_dataset):
    """A LeNet as built runs plain operators (a FLOP counter sees its convolutions); a CPU Trainer turns the
    kernel on for its model."""
    from torch.utils.flop_counter import FlopCounterMode

    from engine.config import TrainConfig
    from engine.training import Trainer

    model = LeNet()
    assert model.fused is False
    with FlopCounterMode(display=False) as counter:
        out = model(torch.randn(16, 1, 28, 28))
    assert counter.get_total_flops() >= 2 * 16 * (24 * 24 * 6 * 25 + 8 * 8 * 16 * 150)
    assert not ran_fused(out)
    assert Trainer(TrainConfig.for_model("lenet", device="cpu"), tiny_dataset).model.fused is True


@pytest.mark.parametrize("fused", [False, True])
def test_torch_func_grad_over_lenet_works_with_the_kernel_built(fused):
    torch.manual_seed(0)
    model = LeNet()
    model.fused = fused
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    expected = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss(p, x, y):
        return F.cross_entropy(torch.func.functional_call(model, p, (x,)), y)

    grads = torch.func.grad(loss)(params, x, y)
    for (name, grad), want in zip(grads.items(), expected):
        torch.testing.assert_close(grad, want, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
    batched = torch.func.vmap(model)(x.view(4, 8, 1, 28, 28))
    torch.testing.assert_close(batched.reshape(32, 10), model(x), rtol=1e-4, atol=1e-5)


def test_export_sees_the_registered_operator():
    torch.manual_seed(0)
    model = LeNet().eval()
    model.fused = True
    x = torch.randn(8, 1, 28, 28)
    program = torch.export.export(model, (x,))
    assert "digit_studio.lenet_features" in str(program.graph)
    torch.testing.assert_close(program.module()(x), model(x))


def test_inference_uses_the_kernel_and_matches():
    torch.manual_seed(0)
    model = LeNet().eval()
    model.fused = True
    x = torch.randn(50, 1, 28, 28)
    with torch.inference_mode():
        fused = model(x)
        with native_library.switched_off():
            plain = model(x)
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ["small batch", "input needs a gradient", "float64", "switched off", "tracing"])
def test_the_plain_path_runs_where_the_kernel_does_not_apply(case):
    model = LeNet()
    x = torch.randn(lenet_features.MIN_BATCH - 1 if case == "small batch" else 16, 1, 28, 28)
    if case == "input needs a gradient":
        x.requires_grad_(True)
    if case == "float64":
        model, x = model.double(), x.double()
    if case == "switched off":
        with native_library.switched_off():
            out = lenet_features.features(x, model.conv1, model.conv2, fused=True)
    elif case == "tracing":  # a model as built (not opted in) traces to plain operators other programs run
        traced = torch.jit.trace(model, x, check_trace=False)
        assert "digit_studio" not in str(traced.graph) and "PythonOp" not in str(traced.graph)
        return
    else:
        out = lenet_features.features(x, model.conv1, model.conv2, fused=True)
    assert not ran_fused(out)
    torch.testing.assert_close(out, lenet_features.plain_features(x, model.conv1, model.conv2))


def test_lenet_trains_the_same_with_and_without_the_kernel(tiny_dataset):
    from engine.config import TrainConfig
    from engine.training import Trainer

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
    native_library.forget("lenet_features")
    yield
    native_library.forget("lenet_features")


def test_a_compiler_that_fails_leaves_the_plain_path_with_the_reason(fresh_loader, monkeypatch):
    monkeypatch.setenv("CC", "false")
    status = native_library.load("lenet_features")
    assert not status.available
    assert "false could not build lenet_features.c" in status.reason
    model = LeNet()
    out = lenet_features.features(torch.randn(16, 1, 28, 28), model.conv1, model.conv2, fused=True)
    assert not ran_fused(out)


def test_other_architectures_keep_the_plain_operators_until_measured(monkeypatch):
    monkeypatch.setattr(lenet_features, "MACHINE", "arm64")
    status = lenet_features.kernel_status()
    assert not status.available and status.reason == "not yet measured against PyTorch's own operators on arm64"
    model = LeNet()
    out = lenet_features.features(torch.randn(16, 1, 28, 28), model.conv1, model.conv2, fused=True)
    assert not ran_fused(out)


def test_a_cache_folder_that_cannot_be_written_is_named(fresh_loader, monkeypatch, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    status = native_library.load("lenet_features")
    assert not status.available
    assert f"cannot write to {native_library.native_cache_dir()}" in status.reason
    model = LeNet()
    out = lenet_features.features(torch.randn(16, 1, 28, 28), model.conv1, model.conv2, fused=True)
    assert not ran_fused(out)


def test_a_missing_compiler_is_named(fresh_loader, monkeypatch):
    monkeypatch.setenv("CC", "/nowhere/cc")
    assert native_library.load("lenet_features").reason == "the C compiler CC names (/nowhere/cc) was not found"


def test_a_damaged_cached_library_is_built_again(fresh_loader, monkeypatch, tmp_path):
    built = native_library.load("lenet_features")
    assert built.available
    native_library.forget("lenet_features")
    # the same file name in another cache folder (a path this process has not loaded), damaged
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))
    damaged = native_library.native_cache_dir() / built.path.name
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a shared library")
    again = native_library.load("lenet_features")
    assert again.available and again.path == damaged
    assert not damaged.read_bytes().startswith(b"not a shared library")


def test_the_cached_library_is_reused_without_compiling(fresh_loader, monkeypatch):
    built = native_library.load("lenet_features")
    native_library.forget("lenet_features")
    monkeypatch.setattr(native_library, "_build", lambda *a: pytest.fail("compiled again"))
    assert native_library.load("lenet_features").path == built.path


def test_the_about_box_says_whether_the_kernel_is_in_use_without_building_it(fresh_loader, monkeypatch):
    from gui.help import about_html as about_text

    with monkeypatch.context() as patch:
        patch.setattr(native_library, "_build", lambda *a: pytest.fail("the GUI thread compiled"))
        assert "LeNet's fused CPU kernel: being prepared" in about_text("cpu", "LeNet")
    lenet_features.kernel_status()  # as the app's warm-up does
    assert "LeNet's fused CPU kernel: in use" in about_text("cpu", "LeNet")
    with native_library.switched_off():
        assert "LeNet's fused CPU kernel: not in use (turned off by DIGIT_STUDIO_NATIVE=0)" in about_text("cpu", "x")


def test_openmp_only_with_a_compiler_whose_runtime_is_pytorchs(monkeypatch):
    """Clang links LLVM's libomp; PyTorch's Linux wheels run GCC's libgomp: two runtimes in one process
    fight over threads, so such a build goes without OpenMP."""
    monkeypatch.setattr(native_library, "_torch_openmp_runtime", lambda: "libgomp")
    monkeypatch.setattr(native_library, "_compiler_family", lambda compiler: "clang")
    assert native_library.flag_choices("clang") == (("-march=native",),)
    monkeypatch.setattr(native_library, "_compiler_family", lambda compiler: "gcc")
    assert native_library.flag_choices("cc") == native_library.FLAG_CHOICES


def test_a_cached_library_replaced_after_its_build_is_not_loaded_but_built_again(fresh_loader, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    built = native_library.load("lenet_features")
    assert built.available and (built.path.parent / (built.path.name + ".sha256")).is_file()
    native_library.forget("lenet_features")
    original = built.path.read_bytes()
    built.path.unlink()  # a new file under the name: the one this process has mapped stays as it was
    built.path.write_bytes(original[:-16] + bytes(16))  # someone else's bytes under the built name
    loaded = []
    real_cdll = native_library.ctypes.CDLL
    monkeypatch.setattr(
        native_library.ctypes, "CDLL", lambda path: loaded.append(Path(path).read_bytes()) or real_cdll(path)
    )
    again = native_library.load("lenet_features")
    assert again.available and loaded and all(data == original for data in loaded)  # only the genuine build ran
