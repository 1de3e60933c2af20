"""The "My digits" tab: the personal samples the user kept (by label, with counts), delete or relabel them,
and Teach, which fine-tunes the model on hand on them (engine.teaching) on a worker.

Samples are plain PNG files in the user data folder, ``samples/<digit>/<time>.png`` (the ImageFolder
layout ``digit-studio teach`` reads), so they can be looked at, copied and shared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.images import load_image
from engine.teaching import list_samples, move_sample, samples_dir
from gui.evaluation_view import digit_icon, make_gallery


class MyDigitsView(QWidget):
    teach_requested = Signal()
    message = Signal(str)

    def __init__(self, folder: Path | None = None, class_names: tuple[str, ...] = tuple(map(str, range(10)))) -> None:
        super().__init__()
        self.folder = folder or samples_dir()
        self.class_names = class_names
        self.counts_label = QLabel("", objectName="sampleCounts")
        self.counts_label.setWordWrap(True)
        self.label_combo = QComboBox(objectName="samplesLabelCombo")
        self.label_combo.addItem("All digits", None)
        for name in class_names:
            self.label_combo.addItem(f"Digit {name}", name)
        self.label_combo.currentIndexChanged.connect(lambda _: self.refresh())
        self.relabel_combo = QComboBox(objectName="relabelCombo")
        for name in class_names:
            self.relabel_combo.addItem(f"is a {name}", name)
        self.relabel_button = QPushButton("Relabel", objectName="relabelButton")
        self.delete_button = QPushButton("Delete", objectName="deleteSampleButton")
        self.relabel_button.clicked.connect(self.relabel_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.teach_button = QPushButton("Teach", objectName="teachButton")
        self.teach_button.setToolTip(
            "Fine-tune the model on hand on these samples, keeping what it knew "
            "(a few seconds); the taught model answers on the canvas at once"
        )
        self.teach_button.clicked.connect(self.teach_requested)
        self.progress = QProgressBar(objectName="teachProgress")
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.result_label = QLabel(
            "Correct the answer under the canvas (That's a ..., or keys 0-9) to keep a drawing here; then Teach.",
            objectName="teachResult",
        )
        self.result_label.setWordWrap(True)
        self.gallery = make_gallery("samplesGallery")
        self.gallery.setSelectionMode(self.gallery.SelectionMode.ExtendedSelection)

        top = QHBoxLayout()  # the selection's buttons after the filter, wrapped to a second row in a narrow tab
        top.addWidget(self.label_combo)
        top.addStretch(1)
        edit = QHBoxLayout()
        edit.addWidget(QLabel("Selected:"))
        edit.addWidget(self.relabel_combo)
        edit.addWidget(self.relabel_button)
        edit.addWidget(self.delete_button)
        edit.addStretch(1)
        teach = QHBoxLayout()
        teach.addWidget(self.teach_button)
        teach.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.counts_label)
        layout.addLayout(top)
        layout.addWidget(self.gallery, 1)
        layout.addLayout(edit)
        layout.addLayout(teach)
        layout.addWidget(self.result_label)
        self.refresh()

    def samples(self) -> dict[str, list[Path]]:
        return list_samples(self.folder, self.class_names)

    @Slot()
    def refresh(self) -> None:
        samples = self.samples()
        total = sum(len(paths) for paths in samples.values())
        self.counts_label.setText(
            f"{total} samples in {self.folder}: "
            + ", ".join(f"{name}: {len(paths)}" for name, paths in samples.items())
        )
        wanted = self.label_combo.currentData()
        self.gallery.clear()
        for name, paths in samples.items():
            if wanted is not None and name != wanted:
                continue
            for path in paths[-200:]:
                try:
                    pixels = load_image(path)
                except Exception:  # a file changed under us: listed without a picture
                    pixels = np.ones((28, 28), np.float32)
                icon = digit_icon(((1 - pixels) * 255).astype(np.uint8))
                item = QListWidgetItem(icon, name)
                item.setData(Qt.ItemDataRole.UserRole, str(path))
                item.setToolTip(str(path))
                self.gallery.addItem(item)
        self.teach_button.setEnabled(sum(1 for paths in samples.values() if paths) >= 2)

    def selected(self) -> list[Path]:
        return [Path(item.data(Qt.ItemDataRole.UserRole)) for item in self.gallery.selectedItems()]

    @Slot()
    def relabel_selected(self) -> None:
        label = self.relabel_combo.currentData()
        for path in self.selected():
            move_sample(path, label)
        self.refresh()

    @Slot()
    def delete_selected(self) -> None:
        for path in self.selected():
            move_sample(path, None)
        self.refresh()

    def show_teaching(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.teach_button.setEnabled(not running)

    def show_result(self, text: str) -> None:
        self.result_label.setText(text)
