"""The PyTorch tutorial's training code as its own script, on MNIST through ``torchvision.datasets.MNIST``.

    python benchmarks/tutorial_script.py [--data DIR] [--epochs 2]

A check on the baseline of ``bench_training.py``: that one runs the tutorial's loop inside the benchmark
process; this runs the tutorial's code as written (its ``Net``, transform, ``DataLoader`` and loop, MNIST
from torchvision's own folder layout) in a process of its own and prints samples/s per epoch. The IDX
files from ``--data`` are unpacked into a temporary ``MNIST/raw`` folder, where torchvision looks.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as transforms
from common import DEFAULT_DATA, print_json
from torch import nn, optim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def unpack(data: Path, root: Path) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in data.glob("*-ubyte*"):
        target = raw / source.name.removesuffix(".gz")
        opener = gzip.open if source.suffix == ".gz" else open
        with opener(source, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        unpack(Path(args.data), Path(root))
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        trainset = torchvision.datasets.MNIST(root=root, train=True, download=False, transform=transform)
        trainloader = torch.utils.data.DataLoader(trainset, batch_size=8, shuffle=True, num_workers=2)
        net = Net()
        criterion = nn.CrossEntropyLoss()
        optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
        rates = []
        for epoch in range(args.epochs):
            running_loss, seen, start = 0.0, 0, time.perf_counter()
            for i, (inputs, labels) in enumerate(trainloader):
                optimizer.zero_grad()
                loss = criterion(net(inputs), labels)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
                seen += len(labels)
                if i % 2000 == 1999:
                    print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 2000:.3f}")
                    running_loss = 0.0
            rates.append(seen / (time.perf_counter() - start))
            print(f"epoch {epoch + 1}: {rates[-1]:,.0f} samples/s")
    print_json("tutorial_script", {"samples_per_second": [round(r) for r in rates]})


if __name__ == "__main__":
    main()
