"""The command line as a user runs it: real processes, exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import report_notice_before_training

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "lenet", "--batch-size", "32", "--device", "cpu", "--quiet"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "a.pt"
    result = run("train", "--data", str(tiny_data), "--epochs", "1", "--out", str(out), "--json", *FAST)
    assert result.returncode == 0, result.stderr
    return out


def test_train_json_summary(tiny_data: Path, trained: Path) -> None:
    result = run("train", "--data", str(tiny_data), "--epochs", "1", "--json", *FAST)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["model"] == "lenet" and summary["device"] == "cpu" and summary["epochs"] == 1
    assert summary["train_seconds"] > 0 and summary["samples_per_second"] > 0
    assert 0 <= summary["test_accuracy"] <= 1 and summary["final_loss"] > 0
    assert summary["checkpoint"] is None


def test_resume_continues_epochs_and_history(tiny_data: Path, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.pt"
    result = run(
        "train",
        "--resume",
        str(trained),
        "--epochs",
        "1",
        "--out",
        str(out),
        "--json",
        "--data",
        str(tiny_data),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["epochs"] == 2
    payload = torch.load(out, weights_only=True)
    assert [e["epoch"] for e in payload["history"]["epochs"]] == [1, 2]
    assert payload["epochs_done"] == 2


def test_missing_data_folder() -> None:
    assert_one_line_error(run("train", "--data", "/nonexistent", "--json"), "/nonexistent")


def test_truncated_images_file(tiny_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    shutil.copytree(tiny_data, folder)
    raw = folder / "train-images-idx3-ubyte"
    import gzip

    raw.write_bytes(gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())[:5000])
    (folder / "train-images-idx3-ubyte.gz").unlink()
    assert_one_line_error(run("train", "--data", str(folder), *FAST), "train-images-idx3-ubyte", "truncated")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "alexnet"], "invalid choice: 'alexnet'"),
        (["--device", "cuda:7"], "device 'cuda:7'"),
        (["--epochs", "0"], "must be at least 1"),
        (["--lr", "abc"], "expected a number"),
    ],
)
def test_bad_flags(tiny_data: Path, args: list[str], needle: str) -> None:
    assert_one_line_error(run("train", "--data", str(tiny_data), *args), needle)


def test_unusable_device_is_reported_before_the_data_is_looked_for(tmp_path: Path) -> None:
    """Without this order a user with no network would be told about the download, not the device."""
    missing = tmp_path / "no-data-here"
    assert_one_line_error(run("train", "--data", str(missing), "--device", "tpu", "--quiet"), "device 'tpu'")


def test_out_folder_must_exist(tiny_data: Path) -> None:
    assert_one_line_error(run("train", "--data", str(tiny_data), "--out", "/no/such/dir/x.pt", *FAST), "/no/such/dir")


def test_evaluate_json(tiny_data: Path, trained: Path) -> None:
    result = run("evaluate", "--checkpoint", str(trained), "--data", str(tiny_data), "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["count"] == 100 and len(report["per_class_accuracy"]) == 10
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 100
    assert report["accuracy"] == pytest.approx(np.trace(matrix) / 100)


def test_evaluate_report_shows_the_confusion_matrix_and_writes_the_csv(
    tiny_data: Path, trained: Path, tmp_path: Path
) -> None:
    from engine.evaluation import read_csv

    table = tmp_path / "eval.csv"
    result = run(
        "evaluate", "--checkpoint", str(trained), "--data", str(tiny_data), "--device", "cpu", "--csv", str(table)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("confusion matrix (rows: true class, columns: predicted):")
    shown = np.array([[int(v) for v in line.split()[1:]] for line in lines[start + 2 : start + 12]])
    names, accuracy, matrix = read_csv(table)
    assert names == [str(i) for i in range(10)] and np.array_equal(shown, matrix) and matrix.sum() == 100
    assert lines[-1] == f"wrote {table}"


@pytest.mark.parametrize("kind", ["malicious", "truncated", "random", "wrong-shape"])
def test_evaluate_refuses_bad_checkpoints(tiny_data: Path, trained: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pt"
    marker = tmp_path / "ran"
    if kind == "malicious":
        import pickle

        class Exploit:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        path.write_bytes(pickle.dumps({"x": Exploit()}))
    elif kind == "truncated":
        path.write_bytes(trained.read_bytes()[:3000])
    elif kind == "random":
        path.write_bytes(os.urandom(2000))
    else:
        payload = torch.load(trained, weights_only=True)
        payload["model_state"]["conv1.weight"] = torch.zeros(1, 1, 1, 1)
        torch.save(payload, path)
    result = run("evaluate", "--checkpoint", str(path), "--data", str(tiny_data))
    assert_one_line_error(result, str(path))
    assert result.stdout == "" and not marker.exists()


def test_devices_json() -> None:
    result = run("devices", "--json")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["devices"][0]["name"] == "cpu" and report["auto"] in [d["name"] for d in report["devices"]]
    kernel = report["cpu_kernels"]["lenet_features"]
    assert kernel["in_use"] == (shutil.which("cc") is not None or shutil.which("gcc") is not None), kernel


def test_devices_says_whether_lenets_cpu_kernel_is_in_use_and_why_not() -> None:
    off = run("devices", env={"DIGIT_STUDIO_NATIVE": "0"})
    assert off.returncode == 0
    assert "LeNet's fused CPU kernel: not in use: turned off by DIGIT_STUDIO_NATIVE=0" in off.stdout
    broken = run("devices", env={"CC": "false"})
    assert "LeNet's fused CPU kernel: not in use: false could not build lenet_features.c" in broken.stdout


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("m.pt2", "pt2"),
        ("m.PT2", "pt2"),
        ("m.onnx", "onnx"),
        ("m.pt", "torchscript"),
        ("m.torchscript.pt", "torchscript"),
        ("m", "pt2"),
        ("m.bin", "pt2"),
    ],
)
def test_export_format_follows_the_file_suffix(name: str, fmt: str) -> None:
    from engine.export import format_for_path

    assert format_for_path(name) == fmt


def test_export_program_by_suffix_matches_checkpoint_for_any_batch(tiny_dataset, trained: Path, tmp_path: Path) -> None:
    from engine import checkpoint
    from engine.data import to_float

    out = tmp_path / "model.pt2"
    result = run("export", "--checkpoint", str(trained), "--out", str(out))  # no --format: .pt2 says which
    assert result.returncode == 0, result.stderr
    exported = torch.export.load(str(out)).module()
    loaded = checkpoint.load(trained)
    for count in (1, 16):  # one drawn digit, and a batch
        images = tiny_dataset.test.images[:count]
        with torch.no_grad():
            expected = loaded.model(to_float(images, loaded.normalization))
            actual = exported(to_float(images))
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")  # TorchScript is, upstream
def test_export_torchscript_matches_checkpoint(tiny_dataset, trained: Path, tmp_path: Path) -> None:
    from engine import checkpoint
    from engine.data import to_float

    out = tmp_path / "model.ts"
    result = run("export", "--checkpoint", str(trained), "--format", "torchscript", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == f"wrote {out}\n"  # no deprecation warnings from PyTorch
    assert {name.split("/")[0] for name in zipfile.ZipFile(out).namelist()} == {"archive"}  # not the temp file's
    exported = torch.jit.load(str(out))
    loaded = checkpoint.load(trained)
    images = tiny_dataset.test.images[:16]
    with torch.no_grad():
        expected = loaded.model(to_float(images, loaded.normalization))
        actual = exported(to_float(images))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_predict_json_sorted_with_empty(trained: Path, tmp_path: Path) -> None:
    canvas = np.full((280, 280), 255, np.uint8)
    Image.fromarray(canvas).save(tmp_path / "b_blank.png")
    canvas[40:240, 130:150] = 0
    Image.fromarray(canvas).save(tmp_path / "a_one.png")
    (tmp_path / "c_broken.png").write_bytes(b"not an image")
    result = run("predict", "--checkpoint", str(trained), str(tmp_path), "--json")
    assert result.returncode == 2, result.stderr  # one input failed; the others' results are kept
    items = json.loads(result.stdout)
    assert [Path(i["path"]).name for i in items] == ["a_one.png", "b_blank.png", "c_broken.png"]
    assert items[0]["label"] is not None and sum(items[0]["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert items[1]["label"] is None
    assert "error" not in items[0] and "c_broken.png" in items[2]["error"] and "label" not in items[2]
    assert result.stderr.count("c_broken.png") == 1


def test_predict_nothing_readable(tmp_path: Path, trained: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"junk")
    result = run("predict", "--checkpoint", str(trained), str(tmp_path / "x.png"))
    assert_one_line_error(result, "x.png", "not an image")


def test_export_onnx_is_one_file_with_the_same_logits(tiny_dataset, trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from engine import checkpoint
    from engine.data import to_float

    out = tmp_path / "model.onnx"
    result = run("export", "--checkpoint", str(trained), "--format", "onnx", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"  # no exporter chatter on stdout
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # weights inside, no temporary left
    session = ort.InferenceSession(str(out))
    loaded = checkpoint.load(trained)
    images = tiny_dataset.test.images[:16]
    with torch.no_grad():
        expected = loaded.model(to_float(images, loaded.normalization)).numpy()
    actual = session.run(None, {"images": to_float(images).numpy()})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_evaluate_on_a_data_set_of_other_classes_is_refused(trained: Path, tmp_path: Path) -> None:
    from tests.helpers import write_dataset

    clothes = write_dataset(tmp_path / "fashion-mnist")
    result = run("evaluate", "--checkpoint", str(trained), "--data", str(clothes))
    assert_one_line_error(result, "recognises the MNIST (handwritten digits) classes", "Fashion-MNIST")
    resumed = run("train", "--resume", str(trained), "--epochs", "1", "--data", str(clothes), "--quiet")
    assert_one_line_error(resumed, "choose the data set the model was trained on")


def test_evaluate_csv_into_a_missing_folder_is_refused_before_evaluating(trained: Path, tmp_path: Path) -> None:
    result = run(
        "evaluate",
        "--checkpoint",
        str(trained),
        "--data",
        str(tmp_path / "no-data"),
        "--csv",
        str(tmp_path / "gone" / "eval.csv"),
    )
    assert_one_line_error(result, "cannot write", "gone", "does not exist")  # not the missing data folder


def test_export_into_a_missing_folder(trained: Path) -> None:
    assert_one_line_error(run("export", "--checkpoint", str(trained), "--out", "/no/such/dir/m.pt"), "/no/such/dir")


def test_train_prints_notices_even_when_quiet(tiny_data: Path, monkeypatch, capsys) -> None:
    """In-process, so that a notice can be injected: this checks the command line passes it on to stderr
    and keeps stdout JSON."""
    from engine import cli

    report_notice_before_training(monkeypatch, "CUDA graph capture failed, so training goes on without graphs")
    assert cli.main(["train", "--data", str(tiny_data), "--epochs", "1", "--json", *FAST]) == 0
    captured = capsys.readouterr()
    assert f"{cli.PROG}: note: CUDA graph capture failed" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["epochs"] == 1


def test_train_summary_line_says_where_the_checkpoint_is(tiny_data: Path, tmp_path: Path, capsys) -> None:
    from engine import cli

    out = tmp_path / "run.pt"
    assert cli.main(["train", "--data", str(tiny_data), "--epochs", "1", "--out", str(out), *FAST]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("test accuracy ") and " after 1 epoch (" in line and line.endswith(f"; saved in {out}")
    assert out.is_file()


def test_resume_of_a_checkpoint_from_a_device_this_computer_lacks_continues_on_one_it_has(
    tiny_data: Path, trained: Path, tmp_path: Path
) -> None:
    """A model trained on a GPU server continues on a laptop without --device, and says so."""
    from engine import checkpoint as ckpt

    payload = torch.load(trained, weights_only=True)
    payload["config"]["device"] = "cuda:7"
    gpu_trained = ckpt.save(payload, tmp_path / "gpu.pt")
    result = run("train", "--resume", str(gpu_trained), "--epochs", "1", "--json", "--data", str(tiny_data), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "gpu.pt trained on cuda:7, which this computer does not have; it continues on" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["epochs"] == 2
    assert_one_line_error(
        run(
            "train",
            "--resume",
            str(gpu_trained),
            "--epochs",
            "1",
            "--device",
            "cuda:7",
            "--data",
            str(tiny_data),
            "--quiet",
        ),
        "device 'cuda:7' is not available",
    )


def test_a_checkpoint_finds_the_folder_it_was_trained_from_without_data(
    tiny_data: Path, trained: Path, tmp_path: Path
) -> None:
    """No --data, no $DIGIT_STUDIO_DATA, an empty cache: the folder recorded in the checkpoint serves."""
    result = run("evaluate", "--checkpoint", str(trained), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"] == str(tiny_data.resolve())
    result = run("train", "--resume", str(trained), "--epochs", "1", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["epochs"] == 2


def test_predict_reads_a_number_with_digit_boxes(tmp_path: Path) -> None:
    from tests.drawn_digits import SHAPES, render
    from tests.numbers import compose

    parts = [255 - render(SHAPES[d][0], size=200, box=160, left=20, top=20, pen=14) for d in (4, 2)]
    Image.fromarray(255 - compose(parts, [24], np.random.default_rng(0))).save(tmp_path / "number.png")
    Image.fromarray(255 - parts[0]).save(tmp_path / "one.png")
    result = run("predict", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    number, one = json.loads(result.stdout)
    assert number["text"] == "42" and number["label"] is None and number["probabilities"] is None
    assert [d["label"] for d in number["digits"]] == [4, 2]
    (x0, y0, w0, h0), (x1, _, w1, _) = (d["box"] for d in number["digits"])
    assert x0 + w0 <= x1 and 100 < h0 <= 200 and w1 > 0
    assert one["text"] == "4" and one["label"] == 4 and len(one["probabilities"]) == 10
    assert len(one["digits"]) == 1 and one["digits"][0]["confidence"] == pytest.approx(max(one["probabilities"]))
    plain = run("predict", str(tmp_path / "number.png"))
    assert plain.returncode == 0 and plain.stdout.startswith(f"{tmp_path / 'number.png'}: 42 (digits ")


def test_predict_keeps_every_other_result_when_reading_one_file_fails(tmp_path: Path, monkeypatch, capsys) -> None:
    from engine import cli, reading

    canvas = np.full((120, 120), 255, np.uint8)
    canvas[20:100, 55:65] = 0
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(canvas).save(tmp_path / name)
    (tmp_path / "d.png").write_bytes(b"not an image")
    real = reading.read_number

    def failing_on_b(predictor, image, *args, **kwargs):
        if failing_on_b.calls == 1:  # the second file, b.png, in sorted order
            failing_on_b.calls += 1
            raise ValueError("zero-size array")
        failing_on_b.calls += 1
        return real(predictor, image, *args, **kwargs)

    failing_on_b.calls = 0
    monkeypatch.setattr(reading, "read_number", failing_on_b)
    status = cli.main(["predict", str(tmp_path), "--json"])
    items = json.loads(capsys.readouterr().out)
    assert status == 1  # an internal error outranks the bad input's 2
    assert [Path(i["path"]).name for i in items] == ["a.png", "b.png", "c.png", "d.png"]
    assert items[0]["text"] == items[2]["text"] != "" and "error" not in items[0]
    assert "internal error" in items[1]["error"] and "b.png" in items[1]["error"]
    assert "not an image" in items[3]["error"]


def test_predict_answers_in_the_order_given_and_the_cli_names_its_version(tmp_path: Path) -> None:
    from PIL import Image

    names = ["z.png", "a.png", "m.png"]
    for name in names:
        Image.new("L", (28, 28), 0).save(tmp_path / name)
    result = run("predict", *(str(tmp_path / n) for n in names), "--json")
    assert result.returncode == 0, result.stderr
    assert [Path(r["path"]).name for r in json.loads(result.stdout)] == names
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("digit-studio ")
    assert "opens the app" in run("--help").stdout.replace("\n", " ")
