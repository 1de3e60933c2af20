"""Exports: the model (torch.export, TorchScript, ONNX) on a worker, and the tables and pictures of the
training curves, the evaluation and the run comparison, each with the same guard and the same report.

:class:`Exporter` asks where through the :class:`gui.dialogs.Dialogs`, refuses a path that would write
over an input (``CheckpointDocument.may_write``) and says what came of it: the files in the status line,
or why not in a dialog. It has no widget; the views it exports hand it their ``write`` functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from engine import checkpoint as ckpt
from gui.dialogs import Dialogs, ask_export_path
from gui.document import CheckpointDocument
from gui.loss_plot import TrainingPlots
from gui.runs_view import RunsView
from gui.settings import AppSettings
from gui.workers import ExportWorker, Job

MODEL_FILTERS = {
    "PyTorch program, torch.export (*.pt2)": "pt2",
    "TorchScript (*.pt)": "torchscript",
    "ONNX (*.onnx)": "onnx",
}
CURVE_FILTERS = {"CSV table (*.csv)": ".csv", "PNG image (*.png)": ".png"}


class Exporter(QObject):
    status = Signal(str)

    def __init__(
        self,
        document: CheckpointDocument,
        plots: TrainingPlots,
        runs: RunsView,
        settings: AppSettings,
        dialogs: Dialogs,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document, self.plots, self.runs, self.settings, self.dialogs = document, plots, runs, settings, dialogs
        self.job = Job(self)

    def model_dialog(self) -> None:
        from engine.export import SUFFIXES, format_for_path

        if self.job.running:
            self.status.emit("An export is still being written; try again when it is done")
            return
        if not self.document.model.can_save:
            self.dialogs.error("Export", "Nothing to export yet: train a model or open a checkpoint.")
            return
        path, chosen = self.dialogs.save_file(
            "Export model", self.settings.checkpoints_dir / "digits.pt2", ";;".join(MODEL_FILTERS)
        )
        if not path:
            return
        # a typed suffix wins; with none, the chosen filter decides and adds its suffix
        fmt = format_for_path(path, default=MODEL_FILTERS.get(chosen, "pt2"))
        if not Path(path).suffix:
            path += SUFFIXES[fmt]
        if not self.document.may_write(path, "Export failed", keep_model_file=True):
            return
        self.status.emit(f"Exporting {fmt} model to {path}...")
        self.job.start(
            ExportWorker(ckpt.from_payload(self.document.model.payload()), fmt, path),
            exported=self._exported,
            failed=self._failed,
        )

    def curves_dialog(self) -> None:
        """The loss and accuracy curves as shown (a live run's too): a CSV table or a PNG image."""
        if self.plots.is_empty():
            self.dialogs.error("Export training curves", "Nothing to export yet: train a model or open a checkpoint.")
            return
        path, chosen = ask_export_path(
            self.dialogs, self.settings, "Export training curves", "training.csv", ";;".join(CURVE_FILTERS)
        )
        if path:
            self.curves(path, default_suffix=CURVE_FILTERS.get(chosen, ".csv"))

    def curves(self, path: str | Path, default_suffix: str = ".csv") -> Path | None:
        """A typed .png or .csv suffix wins; with neither, ``default_suffix`` is added."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".png"):
            path, suffix = path.with_name(path.name + default_suffix), default_suffix
        write = self.plots.write_png if suffix == ".png" else self.plots.write_csv
        written = self.write(lambda: [write(path)], path)
        return written[0] if written else None

    @Slot()
    def runs_dialog(self) -> None:
        path, _ = ask_export_path(self.dialogs, self.settings, "Export run comparison", "runs.csv", "CSV table (*.csv)")
        if path:
            self.run_comparison(path)

    def run_comparison(self, path: str | Path) -> list[Path] | None:
        """The selected runs as a CSV table and their overlaid curves as a PNG of the same name."""
        path = Path(path) if Path(path).suffix.lower() == ".csv" else Path(f"{path}.csv")
        return self.write(lambda: list(self.runs.export(path)), path)

    @Slot(object, str)
    def write(self, write: Callable[[], list[Path]], path: str | Path) -> list[Path] | None:
        """Run an export's ``write`` (which returns the files written) and say what came of it. Returns the
        files, or None when it failed."""
        if not self.document.may_write(path, "Export failed", keep_model_file=True):
            return None
        try:
            written = write()
        except OSError as exc:
            self.dialogs.error("Export failed", f"cannot write {path}: {exc.strerror or exc}")
            return None
        self.status.emit("Wrote " + ", ".join(str(p) for p in written))
        return written

    @Slot(str, str)
    def _exported(self, fmt: str, path: str) -> None:
        self.status.emit(f"Exported {fmt} model to {path}")

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.dialogs.error("Export failed", message)

    def shutdown(self) -> None:
        self.job.wait()
