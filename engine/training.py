"""The training loop: a :class:`Trainer` owns a model, its optimiser and history, and trains them.

It reports through ``on_event`` with the plain-data events of :mod:`engine.events` and is steered by a
:class:`engine.events.TrainingControl`; its configuration is :class:`engine.config.TrainConfig`.

Reproducibility: the model is initialised from ``seed``; each epoch's shuffling and augmentation draw
from a generator seeded with (seed, epoch). So a run resumed from a checkpoint at an epoch boundary
draws exactly what the uninterrupted run would have, and ends with the same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from engine import distributed
from engine.augment import NUMBERS_PER_SAMPLE, apply_augmentation, draw_augmentation, take_samples
from engine.config import TrainConfig
from engine.cpu_tuning import cpu_threads_for
from engine.cuda_graphs import GraphedStep, make_step
from engine.data import Dataset, Normalization, Split, to_float
from engine.devices import copy_to, resolve_device
from engine.errors import ConfigError, TrainingError
from engine.evaluation import evaluate
from engine.events import EpochEvent, EventCallback, FailedEvent, FinishedEvent, NoticeEvent, StepEvent, TrainingControl
from engine.history import History
from engine.models import build_model, model_arguments, model_spec
from engine.optim import (
    fused_optimizer,
    learning_rate,
    load_optimizer_state,
    make_optimizer,
    portable_optimizer_state,
    steps_per_epoch,
    to_cpu,
)


@dataclass
class _Progress:
    """What one call of :meth:`Trainer.run` has done so far, across its epochs."""

    train_seconds: float = 0.0
    samples: int = 0
    final_loss: float = float("nan")
    stopped: bool = False


@dataclass
class _Losses:
    """Step losses summed on the device between two logged points (a read-back each step would stall a
    GPU), and the epoch's total so far."""

    pending: torch.Tensor  # (loss sum, samples right) since the last logged point
    count: int = 0
    epoch_sum: float = 0.0
    epoch_batches: int = 0
    epoch_correct: float = 0.0
    epoch_samples: int = 0
    lr: float = 0.0


class Trainer:
    """Owns a model, its optimiser and history, and trains them on one data set and device.

    ``state()`` is the last completed epoch as plain CPU data (what a checkpoint holds), so a stop or
    a crash mid-epoch never leaves a half-trained epoch in a saved file.
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset,
        *,
        model_state: dict[str, torch.Tensor] | None = None,
        optimizer_state: dict[str, Any] | None = None,
        history: History | None = None,
        epochs_done: int = 0,
        model_kwargs: dict[str, Any] | None = None,
        normalization: Normalization | None = None,
    ) -> None:
        self.config = config.validate()
        self.dataset = dataset
        self.device = resolve_device(config.device)
        # Under torchrun (engine.distributed) each process trains its share of global batches of
        # world-size times batch_size images; a plain run is a world of one.
        self.world = distributed.current()
        self.global_batch = config.batch_size * (self.world.size if self.world else 1)
        self._loss_scale = [1.0]  # a process's summed loss times this, averaged over the world: the global mean
        self.normalization = normalization or dataset.normalization
        self.model_kwargs = model_arguments(config.model, **(model_kwargs or {}))
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, **self.model_kwargs)
        if model_state is not None:
            self.model.load_state_dict(model_state, strict=True)
        if hasattr(self.model, "fused"):  # LeNet's fused CPU kernel, where it applies (engine.lenet_features)
            self.model.fused = self.device.type == "cpu"  # type: ignore[assignment]
        # Channels-last convolutions are 1.2-1.7x faster for these models on a CPU (benchmarks/), except
        # at the tiny batches a model's registry entry names; the CUDA path keeps PyTorch's default layout.
        self.channels_last = (
            self.device.type == "cpu"
            and self.world is None  # DDP's buckets: the default layout
            and config.batch_size > model_spec(config.model).default_layout_up_to
        )
        self.model.to(
            self.device,
            memory_format=torch.channels_last
            if self.channels_last  # type: ignore[call-overload]
            else torch.preserve_format,
        )
        # On CUDA each full batch's step is replayed from a graph (engine.cuda_graphs): 3x faster per
        # step for these launch-bound models on an H200. Anomaly detection needs the eager autograd engine.
        self.cuda_graphs = self.device.type == "cuda" and not config.detect_anomaly and self.world is None
        self.graphed_step: GraphedStep | None = None  # the last run's, for diagnostics
        self.optimizer = make_optimizer(
            config, self.model, fused=fused_optimizer(self.device), capturable=self.cuda_graphs
        )
        if optimizer_state is not None:
            load_optimizer_state(self.optimizer, optimizer_state)
        if self.cuda_graphs:  # a graph reads the learning rate from memory the loop updates
            for group in self.optimizer.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
        self.history = history or History()
        self.epochs_done = epochs_done
        min_batch = model_spec(config.model).min_batch_size * (self.world.size if self.world else 1)
        self.steps_per_epoch = steps_per_epoch(len(dataset.train), self.global_batch, min_batch)
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"{config.model} needs at least {min_batch} training images; {dataset.name} has {len(dataset.train)}"
            )
        self.global_step = epochs_done * self.steps_per_epoch
        self._epoch_state = self._capture()

    # -- state ------------------------------------------------------------------------------------------
    def _capture(self) -> dict[str, Any]:
        return {
            "model_state": to_cpu(self.model.state_dict()),
            "optimizer_state": portable_optimizer_state(self.optimizer),
            "scheduler_state": {
                "step": self.global_step,
                "total_steps": self.total_steps,
                "schedule": self.config.schedule,
            },
            "history": self.history.to_dict(),
            "epochs_done": self.epochs_done,
        }

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    def state(self) -> dict[str, Any]:
        """The state at the end of the last completed epoch (or at the start), as CPU copies."""
        return self._epoch_state

    def weights_snapshot(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the current weights, safe to hand to another thread."""
        return to_cpu(self.model.state_dict())

    # -- one batch --------------------------------------------------------------------------------------
    def _make_batch_step(self) -> Callable[..., torch.Tensor]:
        """``step(images, labels[, augmentation numbers]) -> loss`` for one batch of raw uint8 images.

        Conversion to float, augmentation and normalisation belong to the step, so on CUDA the graph
        replays them with the rest: a launch each would otherwise cost more than the arithmetic.
        """
        model: nn.Module = self.model
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
        if self.world is not None:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            scale = self._loss_scale

            def summed_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
                return F.cross_entropy(logits, labels, reduction="sum") * scale[0]

            loss_fn = summed_loss

        optimizer_step = make_step(model, self.optimizer, loss_fn, keep_grads=self.cuda_graphs, count_correct=True)
        normalization = self.normalization
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format

        def step(images: torch.Tensor, labels: torch.Tensor, *augmentation: torch.Tensor) -> torch.Tensor:
            x = to_float(images)
            if augmentation:
                x = apply_augmentation(x, augmentation[0])
            x = normalization.apply_(x).contiguous(memory_format=memory_format)
            return optimizer_step(x, labels)

        return step

    def _batch_step_inputs(self, batch_size: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
        """Shape and dtype of each input of a full batch's step, for the CUDA graph's fixed buffers."""
        train = self.dataset.train
        inputs = [((batch_size, *train.images.shape[1:]), train.images.dtype), ((batch_size,), train.labels.dtype)]
        if self.config.augment:
            inputs.append(((batch_size * NUMBERS_PER_SAMPLE,), torch.float32))
        return inputs

    def _set_learning_rate(self) -> float:
        lr = learning_rate(self.config, self.global_step, self.total_steps, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        return lr

    # -- the run ----------------------------------------------------------------------------------------
    def run(
        self,
        on_event: EventCallback | None = None,
        control: TrainingControl | None = None,
        on_epoch_end: Callable[[Trainer], None] | None = None,
    ) -> FinishedEvent:
        """Train until ``config.epochs`` epochs are done in total, or until stopped.

        ``on_epoch_end`` runs after each completed epoch (autosave hooks in here). A NaN or infinite
        loss raises :class:`TrainingError` after reporting a FailedEvent.
        """
        emit = on_event or (lambda event: None)
        control = control or TrainingControl()
        try:
            with torch.autograd.set_detect_anomaly(self.config.detect_anomaly), cpu_threads_for(self):
                result = self._run(emit, control, on_epoch_end)
        except TrainingError as exc:
            emit(FailedEvent(str(exc)))
            raise
        emit(result)
        return result

    def _run(
        self, emit: EventCallback, control: TrainingControl, on_epoch_end: Callable[[Trainer], None] | None
    ) -> FinishedEvent:
        step = self._make_batch_step()
        if self.cuda_graphs:

            def on_fallback(reason: str) -> None:
                emit(
                    NoticeEvent(
                        f"CUDA graph capture failed, so training goes on without graphs (slower per "
                        f"step, same results): {reason}"
                    )
                )

            step = GraphedStep(
                step, self._batch_step_inputs(self.config.batch_size), self.device, on_fallback=on_fallback
            )
            self.graphed_step = step
        images = copy_to(self.dataset.train.images, self.device)
        labels = copy_to(self.dataset.train.labels, self.device)
        progress = _Progress()
        test_accuracy = self.history.epochs[-1]["test_accuracy"] if self.history.epochs else None
        while self.epochs_done < self.config.epochs and not progress.stopped:
            epoch_start = time.perf_counter()
            losses, paused_s = self._train_epoch(step, images, labels, emit, control, progress)
            progress.train_seconds += time.perf_counter() - epoch_start - paused_s
            if progress.stopped:
                break
            test_accuracy = self._end_epoch(losses, epoch_start + paused_s, progress, emit)
            if on_epoch_end is not None:
                on_epoch_end(self)
        if not progress.stopped:
            self._epoch_state = self._capture()
        return FinishedEvent(
            progress.stopped,
            self.epochs_done,
            progress.train_seconds,
            progress.samples / max(progress.train_seconds, 1e-9),
            progress.final_loss,
            test_accuracy,
        )

    def _train_epoch(
        self,
        step: Callable[..., torch.Tensor],
        images: torch.Tensor,
        labels: torch.Tensor,
        emit: EventCallback,
        control: TrainingControl,
        progress: _Progress,
    ) -> tuple[_Losses, float]:
        """One epoch's batches, in the epoch's seeded order; returns its losses and the seconds paused."""
        config, epoch = self.config, self.epochs_done
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = copy_to(torch.randperm(len(labels), generator=generator), self.device)
        # one gather per epoch, so each batch is a slice: the same batches, two indexing ops fewer per step
        epoch_images, epoch_labels = images[order], labels[order]
        self.model.train()
        losses = _Losses(torch.zeros(2, device=self.device))
        start, paused_s = time.perf_counter(), 0.0
        for batch in range(self.steps_per_epoch):
            paused_s += control.wait_while_paused()
            stopped = control.stopped
            if self.world is not None:  # every process stops at the same batch
                stopped = distributed.any_stopped(stopped, self.device)
            if stopped:
                progress.stopped = True
                break
            first, end = batch * self.global_batch, min((batch + 1) * self.global_batch, len(labels))
            mine = self.world.share(first, end) if self.world is not None else (first, end)
            inputs = [epoch_images[mine[0] : mine[1]], epoch_labels[mine[0] : mine[1]]]
            if config.augment:
                numbers = draw_augmentation(end - first, images.shape[-1], generator)
                if self.world is not None:
                    numbers = take_samples(numbers, end - first, mine[0] - first, mine[1] - first)
                inputs.append(numbers.pin_memory() if self.device.type == "cuda" else numbers)
            self._loss_scale[0] = (self.world.size if self.world else 1) / (end - first)
            lr = self._set_learning_rate()
            losses.pending += step(*inputs)
            losses.count += 1
            losses.epoch_samples += end - first
            losses.lr = lr
            self.global_step += 1
            progress.samples += end - first
            if losses.count == config.log_every or batch == self.steps_per_epoch - 1:
                elapsed = progress.train_seconds + time.perf_counter() - start - paused_s
                self._log_losses(losses, progress, emit, epoch, batch + 1, lr, progress.samples / max(elapsed, 1e-9))
        return losses, paused_s

    def _log_losses(
        self,
        losses: _Losses,
        progress: _Progress,
        emit: EventCallback,
        epoch: int,
        batch: int,
        lr: float,
        samples_per_second: float,
    ) -> None:
        """Read the pending losses back once, record their mean in the history and report it."""
        pending = losses.pending
        if self.world is not None:  # each process's loss is its share of the global mean, times the world size
            pending = pending.clone()
            torch.distributed.all_reduce(pending)
            pending[0] /= self.world.size
        loss_sum, correct = pending.tolist()
        value = loss_sum / losses.count
        if not math.isfinite(value):
            raise TrainingError(
                f"the loss became {value} at epoch {epoch + 1}, step {self.global_step}; "
                f"try a lower learning rate (now {self.config.lr:g})"
            )
        losses.epoch_sum += value * losses.count
        losses.epoch_batches += losses.count
        losses.epoch_correct += correct
        progress.final_loss = value
        self.history.steps.append(self.global_step)
        self.history.losses.append(value)
        emit(StepEvent(epoch, batch, self.steps_per_epoch, self.global_step, value, lr, samples_per_second))
        losses.pending = torch.zeros(2, device=self.device)
        losses.count = 0

    def _end_epoch(self, losses: _Losses, started: float, progress: _Progress, emit: EventCallback) -> float:
        """The test pass, the epoch's record, the state a checkpoint holds; returns the test accuracy.
        ``started``: when the epoch began, moved on by the time it was paused."""
        test_loss, test_accuracy = self._test()
        self.epochs_done += 1
        seconds = time.perf_counter() - started  # the test pass included
        record = {
            "epoch": self.epochs_done,
            "step": self.global_step,  # where the epoch ends on the step axis of the loss plot
            "train_loss": losses.epoch_sum / max(losses.epoch_batches, 1),
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "train_accuracy": losses.epoch_correct / max(losses.epoch_samples, 1),  # as the weights changed
            "lr": losses.lr,
            "seconds": seconds,
        }
        self.history.epochs.append(record)
        self._epoch_state = self._capture()
        emit(
            EpochEvent(
                self.epochs_done,
                self.config.epochs,
                record["train_loss"],
                test_loss,
                test_accuracy,
                record["seconds"],
                progress.train_seconds,
                record["train_accuracy"],
                losses.lr,
            )
        )
        return test_accuracy

    def _test(self) -> tuple[float, float]:
        """Test loss and accuracy; under torchrun each process tests its share and the sums are combined,
        so the figures are exact."""
        test = self.dataset.test
        if self.world is None:
            metrics = evaluate(self.model, test, self.normalization, self.device)
            return metrics.loss, metrics.accuracy
        first, end = self.world.share(0, len(test))
        count = end - first
        if count:
            metrics = evaluate(
                self.model, Split(test.images[first:end], test.labels[first:end]), self.normalization, self.device
            )
            sums = [metrics.loss * count, round(metrics.accuracy * count), count]
        else:
            sums = [0.0, 0, 0]
        loss_sum, correct, total = distributed.sum_all(sums, self.device)
        return loss_sum / total, correct / total
