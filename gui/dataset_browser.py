"""A small data set browser: page through training or test images with their labels, filter by label."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from gui.evaluation_view import digit_icon, make_gallery

PAGE_SIZE = 120


class DatasetBrowser(QWidget):
    """Shows the data set the loader loads; a clicked image goes to the canvas (``send_to_canvas``)."""

    send_to_canvas = Signal(object)  # an image (uint8 28x28 array) to classify on the canvas
    message = Signal(str)
    error = Signal(str, str)

    def __init__(self, loader: Any) -> None:
        super().__init__()
        self.loader = loader
        self.dataset: Any = None
        self.indices = np.zeros(0, dtype=np.int64)
        self.page = 0

        self.load_button = QPushButton("Load data set", objectName="browserLoadButton")
        self.load_button.clicked.connect(lambda: loader.ensure(self.set_dataset))
        self.split_combo = QComboBox(objectName="browserSplitCombo")
        self.split_combo.addItem("Training images", "train")
        self.split_combo.addItem("Test images", "test")
        self.label_combo = QComboBox(objectName="browserLabelCombo")
        self.label_combo.addItem("All labels", -1)
        for i in range(10):
            self.label_combo.addItem(f"Label {i}", i)
        self.prev_button = QPushButton("◀ Previous", objectName="browserPrevButton")
        self.next_button = QPushButton("Next ▶", objectName="browserNextButton")
        self.page_label = QLabel("No data set loaded", objectName="browserPageLabel")
        self.page_label.setWordWrap(True)  # wraps rather than widening the tab for a long data set name
        self.grid = make_gallery("datasetGrid")
        self.grid.itemClicked.connect(self._send_to_canvas)
        self.grid.itemActivated.connect(self._send_to_canvas)  # Enter on the current image: keyboard users too
        self.split_combo.currentIndexChanged.connect(lambda _: self._filter())
        self.label_combo.currentIndexChanged.connect(lambda _: self._filter())
        self.prev_button.clicked.connect(lambda: self.show_page(self.page - 1))
        self.next_button.clicked.connect(lambda: self.show_page(self.page + 1))
        for button in (self.prev_button, self.next_button):
            button.setEnabled(False)  # until a data set is shown
        self.load_button.setToolTip("Load the data set chosen on the left (Data set) to page through it")

        # two rows, so that the tab fits beside the other panels on a laptop screen (see main_window)
        choose = QHBoxLayout()
        for widget in (self.load_button, self.split_combo, self.label_combo):
            choose.addWidget(widget)
        choose.addStretch(1)
        pages = QHBoxLayout()
        pages.addWidget(self.prev_button)
        pages.addWidget(self.next_button)
        pages.addWidget(self.page_label, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(choose)
        layout.addLayout(pages)
        layout.addWidget(self.grid, 1)
        loader.loaded.connect(self.set_dataset)

    @Slot(object)
    def set_dataset(self, dataset: Any) -> None:
        self.dataset = dataset
        for i in range(10):
            name = dataset.class_names[i] if i < len(dataset.class_names) else str(i)
            self.label_combo.setItemText(i + 1, f"{i}: {name}" if name != str(i) else f"Label {i}")
        self._filter()

    def _split(self) -> Any:
        return self.dataset.train if self.split_combo.currentData() == "train" else self.dataset.test

    def _filter(self) -> None:
        if self.dataset is None:
            return
        labels = self._split().labels.numpy()
        wanted = self.label_combo.currentData()
        self.indices = np.arange(len(labels)) if wanted == -1 else np.flatnonzero(labels == wanted)
        self.show_page(0)

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.indices) // PAGE_SIZE))

    def show_page(self, page: int) -> None:
        if self.dataset is None:
            return
        self.page = min(max(page, 0), self.pages - 1)
        split = self._split()
        self.grid.clear()
        chunk = self.indices[self.page * PAGE_SIZE : (self.page + 1) * PAGE_SIZE]
        names = self.dataset.class_names
        for index in chunk:
            label = int(split.labels[int(index)])
            item = QListWidgetItem(digit_icon(split.images[int(index)].numpy()), f"{names[label]}")
            item.setData(Qt.ItemDataRole.UserRole, int(index))
            item.setToolTip(f"image {int(index)}, label {names[label]}")
            self.grid.addItem(item)
        self.page_label.setText(
            f"{self.dataset.name}: page {self.page + 1} of {self.pages} ({len(self.indices):,} images)"
        )
        self.prev_button.setEnabled(self.page > 0)
        self.next_button.setEnabled(self.page < self.pages - 1)

    def shown_labels(self) -> list[int]:
        split = self._split()
        return [int(split.labels[self.grid.item(i).data(Qt.ItemDataRole.UserRole)]) for i in range(self.grid.count())]

    def _send_to_canvas(self, item: QListWidgetItem) -> None:
        index = item.data(Qt.ItemDataRole.UserRole)
        self.send_to_canvas.emit(self._split().images[index].numpy())
        self.message.emit(f"{self.split_combo.currentText()[:-7]} image {index} sent to the canvas")
