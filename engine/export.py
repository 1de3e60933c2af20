"""Exporting a checkpoint for use outside Digit Studio.

Formats: ``pt2``, a ``torch.export`` program (PyTorch's recommended format; load it with
``torch.export.load(path).module()``); ``torchscript``, for existing TorchScript / libtorch users (deprecated
upstream: loading it warns); ``onnx``, with the ``onnx`` extra. The exported module takes images as float
(N, 1, 28, 28) in [0, 1], ink bright (the output of :func:`engine.preprocess.preprocess`), any N, and
returns logits: the checkpoint's normalisation is built in, so nobody has to copy the constants by hand.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.checkpoint import Checkpoint
from engine.errors import UserError
from engine.files import atomic_write, folder_problem

FORMATS = ("pt2", "torchscript", "onnx")
SUFFIXES = {"pt2": ".pt2", "torchscript": ".pt", "onnx": ".onnx"}


def format_for_path(path: Path | str, default: str = "pt2") -> str:
    """The format a file name asks for by its suffix (``.pt2``, ``.onnx``, ``.pt``), else ``default``."""
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt, known in SUFFIXES.items() if known == suffix), default)


class NormalizedModel(nn.Module):
    def __init__(self, model: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)  # type: ignore[operator]  # buffers, not modules


def export(checkpoint: Checkpoint, fmt: str, out: Path | str) -> Path:
    out = Path(out).expanduser()
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})")
    problem = folder_problem(out.parent)
    if problem is not None:
        raise UserError(f"cannot export to {out}: folder {out.parent} {problem}")
    module = NormalizedModel(checkpoint.model, checkpoint.normalization.mean, checkpoint.normalization.std).eval()
    example = torch.zeros(2, 1, 28, 28)

    def write(tmp: str) -> None:
        if fmt == "pt2":
            _export_program(module, example, tmp)
        elif fmt == "torchscript":
            _export_torchscript(module, example, tmp)
        else:
            _export_onnx(module, example, tmp)

    try:
        return atomic_write(out, write)
    except OSError as exc:
        raise UserError(f"cannot export to {out}: {exc.strerror or exc}") from exc


def _export_program(module: nn.Module, example: torch.Tensor, path: str) -> None:
    program = torch.export.export(module, (example,), dynamic_shapes={"images": {0: torch.export.Dim("batch")}})
    buffer = io.BytesIO()  # torch.export.save wants a buffer or a name ending in .pt2, not atomic_write's temp name
    torch.export.save(program, buffer)
    Path(path).write_bytes(buffer.getvalue())


def _export_torchscript(module: nn.Module, example: torch.Tensor, path: str) -> None:
    # PyTorch warns, with its own source paths, that tracing and saving are deprecated: the format is
    # offered for existing TorchScript users, and its deprecation is said in the help instead. Saved to a
    # buffer, as the archive's inner folder is otherwise named after atomic_write's temporary file.
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit\.")
        torch.jit.save(torch.jit.trace(module, example), buffer)
    Path(path).write_bytes(buffer.getvalue())


def _export_onnx(module: nn.Module, example: torch.Tensor, path: str) -> None:
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None:
        raise UserError("ONNX export needs the onnx extra: pip install 'digit-studio[onnx]'")
    torch.onnx.export(
        module,
        (example,),
        path,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
        external_data=False,  # one self-contained file (the weights are small)
        verbose=False,  # the exporter otherwise narrates its stages on stdout, which scripts read
    )
