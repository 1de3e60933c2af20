"""The training loop, its configuration and the events it reports.

The loop never prints and never touches a GUI: it calls ``on_event`` with small frozen dataclasses
carrying plain numbers. The CLI turns them into a progress bar; the GUI worker turns them into Qt
signals. Stop and pause are cooperative flags checked before every batch.

Reproducibility: the model is initialised from ``seed``; each epoch's shuffling and augmentation draw
from a generator seeded with (seed, epoch). So a run resumed from a checkpoint at an epoch boundary
draws exactly what the uninterrupted run would have, and ends with the same weights.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from engine import lenet_features
from engine.augment import NUMBERS_PER_SAMPLE, apply_augmentation, draw_augmentation
from engine.checkpoint_validation import MAX_EPOCHS, check_optimizer_state
from engine.cuda_graphs import GraphedStep, make_step
from engine.data import Dataset, Normalization, to_float
from engine.devices import copy_to, resolve_device
from engine.errors import CheckpointError, ConfigError, TrainingError
from engine.evaluation import evaluate
from engine.models import DEFAULT_MODEL, build_model, model_arguments, model_spec

OPTIMIZERS = ("sgd", "adam", "adamw")
MAX_BATCH_SIZE = 65_536
MAX_SEED = 2**32 - 1  # each epoch's generator is seeded with seed * 1_000_003 + epoch, which must fit 64 bits
SCHEDULES = ("none", "step", "cosine", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained. Defaults train the default model well on a CPU."""

    model: str = DEFAULT_MODEL
    epochs: int = 3
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 6e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    detect_anomaly: bool = False
    log_every: int = 5

    def validate(self) -> TrainConfig:
        spec = model_spec(self.model)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer '{self.optimizer}' (known: {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule '{self.schedule}' (known: {', '.join(SCHEDULES)})")
        checks = [
            (1 <= self.epochs <= MAX_EPOCHS, f"epochs must be in 1..{MAX_EPOCHS}, got {self.epochs}"),
            (1 <= self.batch_size <= MAX_BATCH_SIZE, f"batch size must be in 1..{MAX_BATCH_SIZE}, got {self.batch_size}"),
            (self.batch_size >= spec.min_batch_size,
             f"batch size must be at least {spec.min_batch_size} for {self.model}, whose batch normalisation "
             f"needs {spec.min_batch_size} images to normalise over, got {self.batch_size}"),
            (math.isfinite(self.lr) and self.lr > 0, f"learning rate must be positive, got {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (1 <= self.log_every <= MAX_BATCH_SIZE, f"log interval must be in 1..{MAX_BATCH_SIZE}, got {self.log_every}"),
            (0 <= self.seed <= MAX_SEED, f"seed must be in 0..{MAX_SEED}, got {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The defaults with ``model``'s recipe from the registry applied, then ``overrides``."""
        return replace(cls(model=model), **{**model_spec(model).recipe, **overrides})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# ------------------------------------------------------------------------------------------------ events

@dataclass(frozen=True)
class StepEvent:
    epoch: int  # 0-based epoch in progress
    batch: int  # batches done in this epoch
    batches_per_epoch: int
    step: int  # global optimiser step, counting from the very first run
    loss: float  # mean loss over the steps since the previous event
    lr: float
    samples_per_second: float


@dataclass(frozen=True)
class EpochEvent:
    epoch: int  # 1-based count of epochs done
    total_epochs: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float  # wall time of this epoch, test pass included, pauses excluded
    train_seconds: float  # training time of this run so far: optimiser steps only, no test passes


@dataclass(frozen=True)
class FinishedEvent:
    """The last event of a run, and what :meth:`Trainer.run` returns."""

    stopped: bool
    epochs_done: int
    train_seconds: float
    samples_per_second: float
    final_loss: float
    test_accuracy: float | None


@dataclass(frozen=True)
class FailedEvent:
    message: str


@dataclass(frozen=True)
class NoticeEvent:
    """Something the user should know that does not stop the run, such as a slower fallback being taken."""

    message: str


TrainEvent = StepEvent | EpochEvent | FinishedEvent | FailedEvent | NoticeEvent
EventCallback = Callable[[TrainEvent], None]


class TrainingControl:
    """Stop and pause flags shared between the thread that trains and the one that asks."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> float:
        """Block while paused; return the seconds spent waiting."""
        if self._running.is_set():
            return 0.0
        start = time.perf_counter()
        self._running.wait()
        return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ history

@dataclass
class History:
    """Every logged step loss and every epoch's metrics; a resumed run appends to it."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "losses": list(self.losses), "epochs": [dict(e) for e in self.epochs]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        return cls(list(values.get("steps", [])), list(values.get("losses", [])),
                   [dict(e) for e in values.get("epochs", [])])


# ------------------------------------------------------------------------------------------------ schedule

def epochs_text(count: int) -> str:
    """``1 epoch``, ``3 epochs``: how the command line and the window count a run's epochs."""
    return f"{count} epoch{'' if count == 1 else 's'}"


def steps_per_epoch(images: int, batch_size: int, min_batch_size: int = 1) -> int:
    """Batches in an epoch: a last, partial batch counts unless it is smaller than the model can train on
    (one image, for batch norm), when its images sit the epoch out. The shuffle differs every epoch, so
    it is never the same images; failing on it would lose a whole epoch's work at its very end."""
    full, rest = divmod(images, batch_size)
    return full + (1 if rest >= min_batch_size else 0)


def learning_rate(config: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The learning rate for optimiser step ``step`` (0-based) of a run planned to last ``total_steps``."""
    base = config.lr
    t = min(step / max(total_steps, 1), 1.0)
    if config.schedule == "none":
        return base
    if config.schedule == "step":
        return base * 0.7 ** (step // max(steps_per_epoch, 1))
    if config.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * t))
    # one-cycle: cosine warm-up from base/25 over the first 25 %, then cosine down to base/1e4
    warm = 0.25
    if t < warm:
        start = base / 25
        return start + (base - start) * 0.5 * (1 - math.cos(math.pi * t / warm))
    end = base / 1e4
    return end + (base - end) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def fused_optimizer(device: torch.device) -> bool:
    """Whether to use the fused (one kernel for all parameters) optimiser implementations.

    PyTorch defaults to a per-parameter loop on the CPU; the fused step is 10-15 % faster for the
    small models here (benchmarks/bench_training.py) and exists for SGD, Adam and AdamW on CPU and CUDA.
    """
    return device.type in ("cpu", "cuda")


def make_optimizer(config: TrainConfig, model: nn.Module, fused: bool = False,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """``capturable`` makes Adam(W) keep its step counters on the device, so a CUDA graph can hold its step."""
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               fused=fused or None)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, betas=(config.momentum, 0.999), weight_decay=config.weight_decay,
               fused=fused or None, capturable=capturable)


IMPLEMENTATION_FLAGS = ("fused", "capturable", "foreach", "differentiable")


def portable_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's state as CPU data with a plain-number learning rate, loadable on any device."""
    state = _to_cpu(optimizer.state_dict())
    state["param_groups"] = [{**group, "lr": float(group["lr"])} for group in state["param_groups"]]
    return state


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a saved optimiser state into an optimiser built for this device.

    A state dict carries the implementation flags (``fused``, ``capturable``, ...) of the optimiser
    that saved it, and PyTorch would adopt them: a checkpoint from a GPU run resumed on the CPU would
    then fail at its first step. The flags are this optimiser's own instead; PyTorch then places
    ``step`` counters where that implementation wants them.
    """
    own = optimizer.param_groups[0]
    flags = {key: own[key] for key in IMPLEMENTATION_FLAGS if key in own}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    try:
        check_optimizer_state("saved state", state, params)  # a wrong-sized moment crashes the fused kernel
    except CheckpointError as exc:
        raise ConfigError(f"the saved optimiser state does not fit a {type(optimizer).__name__} optimiser "
                          f"for this model ({exc})") from None
    try:
        groups = [{**group, **flags, "lr": float(group["lr"])} for group in state["param_groups"]]
        optimizer.load_state_dict({**state, "param_groups": groups})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"the saved optimiser state does not fit a {type(optimizer).__name__} optimiser "
                          f"for this model ({exc})") from exc
    _match_parameter_layouts(optimizer)


def _match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments, SGD's momentum) its parameter's memory layout.

    A CPU run keeps convolution weights channels-last and a CUDA run does not, and loading a state keeps
    the strides it was saved with. PyTorch's fused AdamW pairs elements by memory position, not by index:
    on the CPU, moments from a GPU run then silently updated the wrong weights (the moments of one
    optimiser step differed by up to 0.6 from a same-layout load); on CUDA the step failed.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if (isinstance(value, torch.Tensor) and value.shape == param.shape
                        and value.stride() != param.stride()):
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return copy.deepcopy(value)


def warm_up() -> None:
    """Do ahead of time the one-off work that would otherwise delay a process's first training run.

    PyTorch imports ``torch._dynamo`` (sympy and some 900 modules with it) the first time any optimiser
    is built: 0.9 s and about 120,000 new Python objects on this project's 2-core machine. The app calls
    this on a background thread once its window is up, so that pressing Train starts training at once.
    It also builds (first run on a machine: about half a second) or loads LeNet's fused CPU kernel.
    """
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    lenet_features.kernel_status()


@contextlib.contextmanager
def cpu_threads_for(trainer: Trainer) -> Iterator[None]:
    """At most one intra-op thread per two samples of a batch, while a CPU run lasts.

    PyTorch uses every core by default; for small batches an OpenMP region over all of them costs more
    than it saves. On a 16-core machine (benchmarks/bench_threads.py, median of 3 interleaved rounds)
    LeNet at the tutorial's batch 8 trained at 5,558 samples/s with 4 threads, 4,778 with 8 and 2,683
    with 16; from batch 16 up more threads were faster or within 4 %, and on 2 cores 2 threads were never
    slower than 1, even at batch 4. Since LeNet's small batches use PyTorch's own convolutions the penalty
    is smaller (session 10, same machine: 4 threads within 8 % of the best count, every core up to 13 %
    slower than 4), so the cap still pays. A caller's own lower setting is kept (the app leaves a core to its
    GUI thread where it cannot lower the training thread's priority). OpenMP thread counts are per
    calling thread.
    """
    before = torch.get_num_threads()
    wanted = max(1, min(before, trainer.config.batch_size // 2))
    if trainer.device.type != "cpu" or wanted == before:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_native_convolution_users = 0
_native_convolution_lock = threading.Lock()
_onednn_before: bool | None = None


@contextlib.contextmanager
def native_cpu_convolutions(enabled: bool = True) -> Iterator[None]:
    """PyTorch's own CPU convolutions (im2col and a matrix product) instead of oneDNN's, while it lasts.

    oneDNN's convolutions cost more per call; at tiny batches that outweighs their faster arithmetic.
    LeNet at the tutorial's batch 8 trained 1.1-1.3x faster with PyTorch's own (in the Trainer, five
    runs of five to six interleaved rounds on this project's 2-core machine) and 1.3-1.5x at batch 4,
    about as fast at 12 and 16, and 0.5-0.85x from 32 up; the default model is slower with them at any
    batch size (0.65x at 8). So each model's registry entry says up to which batch size it is used.
    The switch (``torch.backends.mkldnn.enabled``) is process-wide, as PyTorch offers no choice per
    thread or per call: other threads' convolutions meanwhile take the same kernels, with the same
    results up to rounding. Overlapping users are counted, so the last one out restores the setting.
    """
    global _native_convolution_users, _onednn_before
    if not enabled:
        yield
        return
    with _native_convolution_lock:
        if _native_convolution_users == 0:
            _onednn_before = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
        _native_convolution_users += 1
    try:
        yield
    finally:
        with _native_convolution_lock:
            _native_convolution_users -= 1
            if _native_convolution_users == 0:
                torch.backends.mkldnn.enabled = _onednn_before


# ------------------------------------------------------------------------------------------------ trainer

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
        self.normalization = normalization or dataset.normalization
        self.model_kwargs = model_arguments(config.model, **(model_kwargs or {}))
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, **self.model_kwargs)
        if model_state is not None:
            self.model.load_state_dict(model_state, strict=True)
        # PyTorch's own CPU convolutions beat oneDNN's for some models at tiny batches (see
        # native_cpu_convolutions); they are used while batches train, with the default layout they
        # are fastest in. Otherwise channels-last convolutions are 1.2-1.7x faster for these models on
        # a CPU (benchmarks/); the CUDA path keeps PyTorch's default layout, not measured to differ.
        self.native_convolutions = (self.device.type == "cpu" and
                                    config.batch_size <= model_spec(config.model).native_cpu_convolutions_up_to)
        self.channels_last = self.device.type == "cpu" and not self.native_convolutions
        self.model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        # On CUDA each full batch's step is replayed from a graph (engine.cuda_graphs): 3x faster per
        # step for these launch-bound models on an H200. Anomaly detection needs the eager autograd engine.
        self.cuda_graphs = self.device.type == "cuda" and not config.detect_anomaly
        self.graphed_step: GraphedStep | None = None  # the last run's, for diagnostics
        self.optimizer = make_optimizer(config, self.model, fused=fused_optimizer(self.device),
                                        capturable=self.cuda_graphs)
        if optimizer_state is not None:
            load_optimizer_state(self.optimizer, optimizer_state)
        if self.cuda_graphs:  # a graph reads the learning rate from memory the loop updates
            for group in self.optimizer.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
        self.history = history or History()
        self.epochs_done = epochs_done
        min_batch = model_spec(config.model).min_batch_size
        self.steps_per_epoch = steps_per_epoch(len(dataset.train), config.batch_size, min_batch)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"{config.model} needs at least {min_batch} training images; "
                              f"{dataset.name} has {len(dataset.train)}")
        self.global_step = epochs_done * self.steps_per_epoch
        self._epoch_state = self._capture()

    # -- state ------------------------------------------------------------------------------------------
    def _capture(self) -> dict[str, Any]:
        return {
            "model_state": _to_cpu(self.model.state_dict()),
            "optimizer_state": portable_optimizer_state(self.optimizer),
            "scheduler_state": {"step": self.global_step, "total_steps": self.total_steps,
                                "schedule": self.config.schedule},
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
        return _to_cpu(self.model.state_dict())

    # -- loop -------------------------------------------------------------------------------------------
    def _make_batch_step(self) -> Callable[..., torch.Tensor]:
        """``step(images, labels[, augmentation numbers]) -> loss`` for one batch of raw uint8 images.

        Conversion to float, augmentation and normalisation belong to the step, so on CUDA the graph
        replays them with the rest: a launch each would otherwise cost more than the arithmetic.
        """
        optimizer_step = make_step(self.model, self.optimizer, F.cross_entropy, keep_grads=self.cuda_graphs)
        normalization = self.normalization
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format

        def step(images: torch.Tensor, labels: torch.Tensor, *augmentation: torch.Tensor) -> torch.Tensor:
            x = to_float(images)
            if augmentation:
                x = apply_augmentation(x, *augmentation)
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

    def _run(self, emit: EventCallback, control: TrainingControl,
             on_epoch_end: Callable[[Trainer], None] | None) -> FinishedEvent:
        config, device = self.config, self.device
        pin = device.type == "cuda"
        step = self._make_batch_step()
        if self.cuda_graphs:
            def on_fallback(reason: str) -> None:
                emit(NoticeEvent(f"CUDA graph capture failed, so training goes on without graphs (slower per "
                                 f"step, same results): {reason}"))

            step = GraphedStep(step, self._batch_step_inputs(config.batch_size), device, on_fallback=on_fallback)
            self.graphed_step = step
        images = copy_to(self.dataset.train.images, device)
        labels = copy_to(self.dataset.train.labels, device)
        n, width = len(self.dataset.train), images.shape[-1]
        train_seconds = 0.0
        samples = 0
        final_loss = float("nan")
        test_accuracy = self.history.epochs[-1]["test_accuracy"] if self.history.epochs else None
        stopped = False
        while self.epochs_done < config.epochs and not stopped:
            epoch = self.epochs_done
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            order = copy_to(torch.randperm(n, generator=generator), device)
            self.model.train()
            epoch_start = time.perf_counter()
            # one gather per epoch, so each batch is a slice: the same batches, two indexing ops fewer per step
            epoch_images, epoch_labels = images[order], labels[order]
            paused_s = 0.0
            pending = torch.zeros((), device=device)
            pending_count = 0
            epoch_loss_sum = 0.0
            epoch_batches = 0
            with native_cpu_convolutions(self.native_convolutions):  # not for the test pass below
                for batch in range(self.steps_per_epoch):
                    paused_s += control.wait_while_paused()
                    if control.stopped:
                        stopped = True
                        break
                    batch_slice = slice(batch * config.batch_size, (batch + 1) * config.batch_size)
                    inputs = [epoch_images[batch_slice], epoch_labels[batch_slice]]
                    if config.augment:
                        numbers = draw_augmentation(len(inputs[1]), width, generator)
                        inputs.append(numbers.pin_memory() if pin else numbers)
                    lr = learning_rate(config, self.global_step, self.total_steps, self.steps_per_epoch)
                    for group in self.optimizer.param_groups:
                        if isinstance(group["lr"], torch.Tensor):
                            group["lr"].fill_(lr)
                        else:
                            group["lr"] = lr
                    loss = step(*inputs)
                    self.global_step += 1
                    pending += loss
                    pending_count += 1
                    samples += len(inputs[1])
                    if pending_count == config.log_every or batch == self.steps_per_epoch - 1:
                        value = float(pending) / pending_count
                        if not math.isfinite(value):
                            raise TrainingError(
                                f"the loss became {value} at epoch {epoch + 1}, step {self.global_step}; "
                                f"try a lower learning rate (now {config.lr:g})"
                            )
                        epoch_loss_sum += value * pending_count
                        epoch_batches += pending_count
                        final_loss = value
                        self.history.steps.append(self.global_step)
                        self.history.losses.append(value)
                        elapsed = train_seconds + time.perf_counter() - epoch_start - paused_s
                        emit(StepEvent(epoch, batch + 1, self.steps_per_epoch, self.global_step, value, lr,
                                       samples / max(elapsed, 1e-9)))
                        pending = torch.zeros((), device=device)
                        pending_count = 0
            train_seconds += time.perf_counter() - epoch_start - paused_s
            if stopped:
                break
            metrics = evaluate(self.model, self.dataset.test, self.normalization, device)
            test_accuracy = metrics.accuracy
            self.epochs_done += 1
            record = {
                "epoch": self.epochs_done,
                "step": self.global_step,  # where the epoch ends on the step axis of the loss plot
                "train_loss": epoch_loss_sum / max(epoch_batches, 1),
                "test_loss": metrics.loss,
                "test_accuracy": metrics.accuracy,
                "seconds": time.perf_counter() - epoch_start - paused_s,
            }
            self.history.epochs.append(record)
            self._epoch_state = self._capture()
            emit(EpochEvent(self.epochs_done, config.epochs, record["train_loss"], metrics.loss,
                            metrics.accuracy, record["seconds"], train_seconds))
            if on_epoch_end is not None:
                on_epoch_end(self)
        if not stopped:
            self._epoch_state = self._capture()
        return FinishedEvent(stopped, self.epochs_done, train_seconds, samples / max(train_seconds, 1e-9),
                           final_loss, test_accuracy)
