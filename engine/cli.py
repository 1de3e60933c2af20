"""The headless command line: ``digit-studio SUBCOMMAND`` (or ``python main.py SUBCOMMAND``).

Every subcommand is a thin layer over the same engine calls the GUI makes. Exit codes: 0 success,
2 bad input from the user (one line on stderr, no traceback), 1 an unexpected internal error,
130 training interrupted with Ctrl-C (after saving the last completed epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import traceback
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.errors import AlreadyReported, UserError

PROG = "digit-studio"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag on one line (exit 2) instead of the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type, valid: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    """An argparse type: parse ``kind`` and check ``valid``, else a one-line message stating ``rule``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got '{text}'"
            ) from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "must be at least 1")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "must be a positive number")
_fraction = _number(float, lambda v: 0 <= v < 1, "must be in [0, 1)")
_non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "must be >= 0")
_seed = _number(int, lambda v: 0 <= v <= 2**32 - 1, "must be in 0..4294967295")


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__
    from engine.config import OPTIMIZERS, SCHEDULES, TrainConfig
    from engine.data import DATASETS
    from engine.images import FORMATS
    from engine.models import model_names
    from engine.teaching import samples_dir

    defaults = TrainConfig()
    parser = _Parser(
        prog=PROG,
        description="Train, evaluate and use handwritten-digit classifiers. With no command, "
        f"{PROG} opens the app's window (python main.py does too).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data",
            metavar="DIR",
            help="folder with IDX files (default: $DIGIT_STUDIO_DATA, the cache, or a download)",
        )
        p.add_argument(
            "--dataset",
            choices=list(DATASETS),
            default=None,
            help="known data set to use when --data is not given (default: mnist, or the checkpoint's)",
        )

    train = sub.add_parser("train", help="train a model", description="Train a model; --json prints a summary.")
    data_options(train)
    train.add_argument("--model", choices=model_names(), help=f"architecture (default: {defaults.model})")
    train.add_argument(
        "--epochs",
        type=_positive_int,
        help=f"epochs to train (default: {defaults.epochs}; with --resume: epochs beyond those done)",
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        help=f"default: {defaults.batch_size} (lenet's recipe: {TrainConfig.for_model('lenet').batch_size})",
    )
    train.add_argument("--lr", type=_positive_float, help=f"peak learning rate (default: {defaults.lr:g})")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default: {defaults.optimizer}")
    train.add_argument("--momentum", type=_fraction, help=f"SGD momentum / Adam beta1 (default: {defaults.momentum})")
    train.add_argument("--weight-decay", type=_non_negative_float, help=f"default: {defaults.weight_decay:g}")
    train.add_argument("--schedule", choices=SCHEDULES, help=f"learning-rate schedule (default: {defaults.schedule})")
    train.add_argument(
        "--augment",
        dest="augment",
        action="store_true",
        default=None,
        help="random rotation/scale/shift/elastic/stroke-width augmentation (default: on; off in lenet's recipe)",
    )
    train.add_argument("--no-augment", dest="augment", action="store_false")
    train.add_argument("--seed", type=_seed, help=f"default: {defaults.seed}")
    train.add_argument(
        "--device",
        help="auto, cpu, cuda, cuda:N or mps (default: auto; with --resume, the "
        "checkpoint's device where this computer has it)",
    )
    train.add_argument("--log-every", type=_positive_int, help=f"steps per logged loss (default: {defaults.log_every})")
    train.add_argument(
        "--detect-anomaly", action="store_true", default=None, help="debug: torch.autograd anomaly detection (slow)"
    )
    train.add_argument("--out", metavar="CKPT", help="checkpoint to write (after every epoch, and on Ctrl-C)")
    train.add_argument("--resume", metavar="CKPT", help="continue training from this checkpoint")
    train.add_argument(
        "--slim",
        action="store_true",
        help="leave the optimizer state and the data folder out of --out (a third of the size, for "
        "shipping a model; resuming it starts a fresh optimizer)",
    )
    train.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="leave this run out of the run records (`runs`, the app's Runs tab)",
    )
    train.add_argument(
        "--dist-backend",
        choices=("auto", "gloo", "nccl"),
        default="auto",
        help="under torchrun: the process group's backend (auto: nccl on CUDA, gloo on the CPU)",
    )
    train.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also write the run's scalars for TensorBoard into DIR (pip install -e '.[tensorboard]')",
    )

    evaluate = sub.add_parser("evaluate", help="evaluate a checkpoint on a test set")
    evaluate.add_argument("--checkpoint", metavar="CKPT", help="default: the bundled model")
    data_options(evaluate)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument(
        "--csv",
        metavar="FILE",
        help="also write per-class accuracy and the confusion matrix as CSV (as the app's Export CSV)",
    )

    predict = sub.add_parser("predict", help="recognise digits in image files")
    predict.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=f"image files ({', '.join(FORMATS)}) or folders of them; results in the order given",
    )
    predict.add_argument("--checkpoint", metavar="CKPT", help="default: the bundled model")
    predict.add_argument("--json", action="store_true", help="print the results as one JSON list instead of text")

    teach = sub.add_parser(
        "teach",
        help="teach a model your handwriting from a folder of samples",
        description="Fine-tune a model on personal samples (SAMPLES_DIR/<digit>/*.png, any "
        "size, drawn or photographed), mixed with replay of its training data.",
    )
    teach.add_argument(
        "samples",
        metavar="SAMPLES_DIR",
        help=f"a folder per class, named as the class (0-9); the app keeps the samples it is shown in {samples_dir()}",
    )
    teach.add_argument("--checkpoint", metavar="CKPT", help="the model to teach (default: the bundled model)")
    teach.add_argument("--out", metavar="FILE", required=True, help="where the taught model is saved")
    teach.add_argument(
        "--steps",
        type=_number(int, lambda v: 1 <= v <= 100_000, "must be in 1..100000"),
        default=None,
        help="fine-tuning steps of 64 images (default: 60)",
    )
    teach.add_argument("--json", action="store_true", help="print a JSON summary instead of text")

    export = sub.add_parser("export", help="export a checkpoint as a torch.export program (.pt2), TorchScript or ONNX")
    export.add_argument("--checkpoint", metavar="CKPT", required=True)
    export.add_argument(
        "--format",
        choices=["pt2", "torchscript", "onnx"],
        default=None,
        help="default: from the --out suffix (.pt2, .pt, .onnx), else pt2 (PyTorch's recommended "
        "format; TorchScript is deprecated upstream)",
    )
    export.add_argument("--out", metavar="FILE", required=True)

    devices = sub.add_parser("devices", help="list the compute devices")
    devices.add_argument("--json", action="store_true")

    runs = sub.add_parser("runs", help="list the recorded training runs (the app's Runs tab shows the same)")
    runs.add_argument("--json", action="store_true", help="one JSON list of the runs, newest first")

    download = sub.add_parser("download", help="download a data set into the cache")
    download.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    return parser


# ------------------------------------------------------------------------------------------------ helpers


def _load_data(args: argparse.Namespace, default_name: str = "mnist", checkpoint: Any = None) -> Any:
    """The data set of ``--data`` or ``--dataset``; else, for a checkpoint, the folder it was trained from
    while that still holds the files; else ``default_name`` from the usual places (or a download)."""
    from engine import data

    progress = None
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="B", unit_scale=True, desc="download", file=sys.stderr)
            bar.total = total
            bar.n = done
            bar.refresh()

    recorded = checkpoint.data_folder() if checkpoint is not None and args.data is None and not args.dataset else None
    try:
        if recorded is not None:
            return data.load_folder(recorded, name=checkpoint.dataset_name)
        if args.data is not None:
            return data.load_folder(args.data)
        dataset, why = data.resolve_or_fallback(args.dataset or default_name, progress=progress)
        if why is not None:  # offline: the built-in sample, with a note
            print(f"{PROG}: note: {why}; using {data.DATASETS[dataset.name].title} instead", file=sys.stderr)
        return dataset
    finally:
        if bar is not None:
            bar.close()


def _data_files(dataset: Any) -> list[Path]:
    from engine.data import split_files

    return split_files(Path(dataset.folder))


def _load_checkpoint_or_bundled(path: str | None) -> Any:
    from engine import checkpoint
    from engine.inference import BUNDLED_MODEL

    return checkpoint.load(path if path else BUNDLED_MODEL)


def _print_json(value: Any) -> None:
    """Strict JSON: a NaN or infinite number (which Python's json would write as a bare NaN) becomes null."""
    sys.stdout.write(json.dumps(_finite(value), allow_nan=False) + "\n")
    sys.stdout.flush()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ commands


def _resume_device(previous: Any) -> str:
    """The device a checkpoint trained on, where this computer has it; else the best one here, with a note.

    A model trained on a GPU server continues on a laptop without being told ``--device``."""
    from engine.devices import best_device, resolve_device
    from engine.errors import DeviceError

    try:
        resolve_device(previous.config.device)
    except DeviceError:
        print(
            f"{PROG}: note: {previous.display_name} trained on {previous.config.device}, which this computer "
            f"does not have; it continues on {best_device()}",
            file=sys.stderr,
        )
        return "auto"
    return previous.config.device


def _train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields the command line names (None: not given)."""
    given = {
        "model": args.model,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "augment": args.augment,
        "seed": args.seed,
        "device": args.device,
        "log_every": args.log_every,
        "detect_anomaly": args.detect_anomaly,
    }
    return {key: value for key, value in given.items() if value is not None}


def _trainer(args: argparse.Namespace) -> Any:
    """A Trainer for ``train``'s arguments: a new run, or ``--resume``'s; its config is built once, whole,
    before the Trainer, so that every choice the Trainer makes from it (a CUDA graph, the layout) holds."""
    from engine import checkpoint as ckpt
    from engine.config import TrainConfig
    from engine.devices import resolve_device
    from engine.training import Trainer

    settings = _train_settings(args)
    if not args.resume:
        config = TrainConfig.for_model(settings.pop("model", TrainConfig().model), **settings)
        if args.epochs is not None:
            config = replace(config, epochs=args.epochs)
        config.validate()
        resolve_device(config.device)  # an unusable device is reported before any data is downloaded
        return Trainer(config, _load_data(args))
    previous = ckpt.load(args.resume)
    ignored = sorted(set(settings) - {"device", "log_every", "detect_anomaly"})
    if ignored:
        raise UserError(
            f"--resume continues the checkpoint's own settings; drop "
            f"{', '.join('--' + k.replace('_', '-') for k in ignored)}"
        )
    if args.device is not None:
        resolve_device(args.device)  # an unusable device is reported before any data is downloaded
    else:
        settings["device"] = _resume_device(previous)
    dataset = _load_data(args, previous.dataset_name, previous)
    return ckpt.resume_trainer(previous, dataset, more_epochs=args.epochs, **settings)


def _progress_reporter(trainer: Any, quiet: bool) -> tuple[Callable[[Any], None], Any]:
    """``on_event`` for a run: a tqdm bar on stderr (none with ``quiet``), notes always; and the bar."""
    from engine.events import EpochEvent, NoticeEvent, StepEvent

    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(
            total=trainer.config.epochs * trainer.steps_per_epoch,
            initial=trainer.global_step,
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=None,
        )

    def on_event(event: Any) -> None:
        if isinstance(event, NoticeEvent):  # shown even when quiet: it explains a slower run
            message = f"{PROG}: note: {event.message}"
            if bar is not None:
                bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr)
        if bar is None:
            return
        if isinstance(event, StepEvent):
            bar.update(event.step - bar.n)
            bar.set_postfix(
                epoch=f"{event.epoch + 1}/{trainer.config.epochs}",
                loss=f"{event.loss:.4f}",
                sps=f"{event.samples_per_second:.0f}",
                refresh=False,
            )
        elif isinstance(event, EpochEvent):
            bar.write(
                f"epoch {event.epoch}/{event.total_epochs}: train loss {event.train_loss:.4f}, "
                f"test loss {event.test_loss:.4f}, test accuracy {event.test_accuracy:.2%}"
            )

    return on_event, bar


def _run_until_done_or_interrupted(
    trainer: Any, on_event: Callable[[Any], None], on_epoch_end: Callable[[Any], None]
) -> Any:
    """Run ``trainer``; the first Ctrl-C stops it after the batch in progress, a second one at once. Under
    torchrun, SIGTERM (what torchrun sends every process when one fails or on Ctrl-C) stops it the same way."""
    from engine.events import TrainingControl

    control = TrainingControl()

    def on_signal(signum: int, frame: Any) -> None:
        if control.stopped:
            raise KeyboardInterrupt
        control.stop()

    signals = [signal.SIGINT] + ([signal.SIGTERM] if trainer.world is not None else [])
    previous = {number: signal.signal(number, on_signal) for number in signals}
    try:
        return trainer.run(on_event, control, on_epoch_end=on_epoch_end)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def cmd_train(args: argparse.Namespace) -> int:
    """One training run; under torchrun, this process's part of one (engine.distributed)."""
    from engine import distributed

    world = distributed.world_from_environment()
    if world is None:
        return _train(args, None)
    args.device = distributed.start(world, args.device, args.dist_backend)
    try:
        return _train(args, world)
    except AlreadyReported:
        raise
    except UserError as exc:  # this process knows why it stops, and says so: its peers need not
        distributed.report_failure(str(exc))
        raise
    except (distributed.PeerLost, RuntimeError) as exc:  # a collective failed or timed out: a peer is gone
        if not distributed.lost_peer(exc):
            raise
        if not distributed.first_to_report():  # the peer said why it stopped, or another survivor says it
            raise AlreadyReported(str(exc)) from exc
        first = distributed.short_reason(exc)
        raise UserError(
            f"rank {world.rank}: the run stopped because another of its processes stopped or "
            f"stopped answering ({first})"
        ) from exc
    finally:
        distributed.finish()


def _train(args: argparse.Namespace, world: Any) -> int:
    """Train; with a ``world``, only its leader (rank 0) reports, writes and records."""
    from engine import checkpoint as ckpt
    from engine.events import epochs_text, fan_out
    from engine.files import check_output

    leader = world is None or world.leader
    out = check_output(args.out, [args.resume]) if args.out and leader else None
    if world is not None and not leader:
        torch_distributed_barrier()  # rank 0 loads (or downloads) the data first
    trainer = _trainer(args)
    if world is not None and leader:
        torch_distributed_barrier()
    if out is not None:  # the data set's own files, now that it is known which
        check_output(out, [args.resume, *_data_files(trainer.dataset)])
    command = " ".join(shlex.quote(a) for a in [PROG, *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else None
    saved_epochs = -1

    def autosave(t: Any) -> None:
        nonlocal saved_epochs
        if out is not None:
            ckpt.save(ckpt.trainer_payload(t, command, slim=args.slim), out)
            saved_epochs = t.epochs_done

    board = None
    if args.tensorboard and leader:
        from engine.tensorboard import ScalarWriter

        board = ScalarWriter(
            Path(args.tensorboard).expanduser(),
            on_failure=lambda message: print(f"{PROG}: note: {message}", file=sys.stderr),
        )
    report, bar = _progress_reporter(trainer, args.quiet or not leader)
    sinks = [sink for sink in (_recorder(args, trainer, out) if leader else None, board) if sink is not None]
    try:
        result = _run_until_done_or_interrupted(trainer, fan_out(report, *(s.on_event for s in sinks)), autosave)
    finally:
        if bar is not None:
            bar.close()
        for sink in sinks:
            sink.close()
    if out is not None and saved_epochs != trainer.epochs_done and trainer.epochs_done > 0:
        autosave(trainer)
    if not leader:
        return 130 if result.stopped else 0
    if result.stopped:
        where = f"; epoch {trainer.epochs_done} is saved in {out}" if out and trainer.epochs_done else ""
        print(f"{PROG}: training stopped during epoch {trainer.epochs_done + 1}{where}", file=sys.stderr)
    checkpoint = str(out) if out is not None and trainer.epochs_done > 0 else None
    if args.json:
        _print_json(
            {
                "model": trainer.config.model,
                "device": str(trainer.device),
                "epochs": trainer.epochs_done,
                "stopped": result.stopped,
                "train_seconds": round(result.train_seconds, 3),
                "samples_per_second": round(result.samples_per_second, 1),
                "test_accuracy": result.test_accuracy,
                "final_loss": result.final_loss,
                "checkpoint": checkpoint,
                "world_size": world.size if world else 1,
                "batch_size": trainer.config.batch_size,
                "global_batch_size": trainer.global_batch,
            }
        )
    elif result.test_accuracy is not None:
        saved = f"; saved in {out}" if checkpoint else ""
        print(
            f"test accuracy {result.test_accuracy:.2%} after {epochs_text(trainer.epochs_done)} "
            f"({result.samples_per_second:.0f} samples/s on {trainer.device}){saved}"
        )
    return 130 if result.stopped else 0


def torch_distributed_barrier() -> None:
    import torch.distributed

    torch.distributed.barrier()


def _recorder(args: argparse.Namespace, trainer: Any, out: Path | None) -> Any:
    """The run's record in the store the app shares (engine.runs), unless --no-record."""
    if not args.record:
        return None
    from engine.runs import RunRecorder, default_store

    return RunRecorder.for_trainer(
        default_store(),
        trainer,
        "cli",
        [out] if out else [],
        warn=lambda message: print(f"{PROG}: note: {message}", file=sys.stderr),
    )


def cmd_runs(args: argparse.Namespace) -> int:
    from engine.runs import default_store, list_runs

    runs = list_runs(default_store())
    if args.json:
        _print_json([run.to_dict() for run in runs])
        return 0
    if not runs:
        print(f"no runs recorded in {default_store()}")
        return 0
    for run in runs:
        accuracy = f"{run.final_accuracy:.2%}" if run.final_accuracy is not None else "-"
        state = f"damaged: {run.damaged}" if run.damaged else run.status
        print(
            f"{printable(run.id)}  {printable(run.title)}  {run.epochs_done}/{run.total_epochs} epochs  "
            f"{accuracy}  {run.seconds:.0f} s  {printable(run.device)}  {printable(state)}"
        )
    return 0


def printable(text: object) -> str:
    """``text`` with control and format characters (newlines, ANSI escapes, the right-to-left override)
    escaped, as ``ls`` shows such names: a record's words never steer the terminal."""
    return "".join(
        c if unicodedata.category(c)[0] not in "CZ" or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in str(text)
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.data import check_classes
    from engine.devices import resolve_device
    from engine.evaluation import evaluate, text_report, write_csv
    from engine.files import check_output
    from engine.inference import BUNDLED_MODEL

    source = args.checkpoint or BUNDLED_MODEL
    table = check_output(args.csv, [source]) if args.csv else None  # said before the evaluation, not after it
    checkpoint = _load_checkpoint_or_bundled(args.checkpoint)
    device = resolve_device(args.device)
    dataset = _load_data(args, checkpoint.dataset_name, checkpoint)
    if table is not None:
        check_output(table, [source, *_data_files(dataset)])
    check_classes(dataset, checkpoint.class_names, str(checkpoint.path))
    model = checkpoint.model.to(device)
    result = evaluate(model, dataset.test, checkpoint.normalization, device, num_classes=len(checkpoint.class_names))
    if table is not None:
        try:
            write_csv(result, checkpoint.class_names, table, model=str(checkpoint.path), dataset=str(dataset.folder))
        except OSError as exc:
            raise UserError(f"cannot write {table}: {exc.strerror or exc}") from exc
    if args.json:
        _print_json({"checkpoint": str(checkpoint.path), "data": str(dataset.folder), **result.to_dict()})
        return 0
    print(f"{checkpoint.path} on {dataset.folder} ({result.count} test images)")
    print(text_report(result, checkpoint.class_names))
    if table is not None:
        print(f"wrote {table}")
    return 0


def _image_paths(paths: Sequence[str]) -> list[tuple[Path, str | None]]:
    """Each image to read, in order, with the problem that stops it from being read (None when none yet)."""
    from engine.images import IMAGE_SUFFIXES

    found: list[tuple[Path, str | None]] = []
    for text in paths:
        path = Path(text).expanduser()
        try:
            if path.is_dir():
                images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
                found += [(p, None) for p in images] or [(path, f"{path}: folder holds no images")]
            elif path.exists() or path.is_symlink():
                found.append((path, None))
            else:
                found.append((path, f"{path}: no such file or folder"))
        except OSError as exc:  # a folder without permission, a name too long
            found.append((path, f"{path}: cannot be read ({exc.strerror or exc})"))
    unique = {str(p): (p, problem) for p, problem in found}  # each once, in the order given
    return list(unique.values())


def cmd_predict(args: argparse.Namespace) -> int:
    """One result per input: a reading, or the problem that kept this input from being read. The others'
    results are kept; the exit status is 1 when reading any input hit an internal error, else 2 when any
    input was bad."""
    from engine.images import load_image
    from engine.inference import Predictor
    from engine.reading import read_number

    predictor = Predictor.from_checkpoint(_load_checkpoint_or_bundled(args.checkpoint))
    names = predictor.class_names
    results: list[dict[str, Any]] = []
    internal = False
    for path, problem in _image_paths(args.paths):
        if problem is None:
            try:
                reading = read_number(predictor, load_image(path))
            except UserError as exc:
                problem = str(exc)
            except Exception as exc:  # a bug, in this file's reading only: the other files still get theirs
                internal = True
                problem = f"{path}: internal error while reading it ({type(exc).__name__}: {exc})"
        if problem is not None:
            results.append({"path": str(path), "error": problem})
            continue
        digits = reading.digits
        lone = digits[0].prediction if len(digits) == 1 else None
        results.append(
            {
                "path": str(path),
                "label": lone.label if lone else None,
                "probabilities": (
                    [round(float(p), 6) for p in lone.probabilities]
                    if lone
                    else [0.0] * len(names)
                    if not digits
                    else None
                ),
                "text": reading.label_text(names),
                "digits": [
                    {
                        "label": d.prediction.label,
                        "confidence": round(d.prediction.confidence, 6),
                        "box": list(d.box),
                        "unsure": d.prediction.doubt,
                    }
                    for d in digits
                ],
                "unsure": reading.doubt
                or next(
                    (f"digit {k + 1}: {d.prediction.doubt}" for k, d in enumerate(digits) if d.prediction.doubt), None
                ),
            }
        )
    failed = [item for item in results if "error" in item]
    if args.json:
        _print_json(results)
    for item in results:
        if "error" in item:
            print(f"{PROG}: error: {item['error']}", file=sys.stderr)
        elif not args.json:
            print(f"{item['path']}: {_said(item)}")
    return 1 if internal else 2 if failed else 0


def _said(item: dict[str, Any]) -> str:
    """ "7 (99.2%)", "2026 (digits 99%, 97%, 99%, 88%)", "empty", with "not sure: ..." where it is."""
    digits = item["digits"]
    if not digits:
        return f"empty ({item['unsure']})" if item["unsure"] else "empty"
    if len(digits) == 1:
        said = f"{item['text']} ({digits[0]['confidence']:.1%})"
    else:
        confidences = ", ".join(f"{d['confidence']:.0%}" for d in digits)
        said = f"{item['text']} (digits {confidences})"
    return f"{said}, not sure: {item['unsure']}" if item["unsure"] else said


def cmd_teach(args: argparse.Namespace) -> int:
    from engine import checkpoint as ckpt
    from engine.data import split_files
    from engine.files import check_output
    from engine.inference import BUNDLED_MODEL
    from engine.teaching import STEPS, load_samples, replay_for, teach

    base = Path(args.checkpoint).expanduser() if args.checkpoint else BUNDLED_MODEL
    out = check_output(args.out, [base])
    checkpoint = ckpt.load(base)
    samples = load_samples(args.samples, checkpoint.class_names)
    replay, note = replay_for(checkpoint)
    named = checkpoint.data_folder()  # the data named inside the checkpoint, whether replayed or not
    check_output(
        out,
        [
            base,
            *samples.files,
            *(_data_files(replay) if replay is not None else []),
            *(split_files(named) if named is not None else []),
        ],
    )
    if samples.skipped:
        print(f"{PROG}: note: {samples.skipped} files skipped (unreadable, or no ink)", file=sys.stderr)
    if note:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    result = teach(
        checkpoint,
        samples,
        replay,
        steps=args.steps or STEPS,
        base_name="bundled model" if base == BUNDLED_MODEL else str(base),
    )
    ckpt.save(result.payload, out)
    summary = {
        "samples": result.samples,
        "skipped": samples.skipped,
        "seconds": round(result.seconds, 2),
        "base": str(base),
        "checkpoint": str(out),
        "held_out": result.held_out,
        "base_accuracy": result.base_accuracy,
        "taught_accuracy": result.taught_accuracy,
    }
    if args.json:
        _print_json(summary)
    else:
        gain = (
            f"; on {result.held_out} held-out sample{'s' if result.held_out != 1 else ''} "
            f"{result.base_accuracy:.0%} before, "
            f"{result.taught_accuracy:.0%} after"
            if result.held_out
            else ""
        )
        print(f"taught {result.samples} samples in {result.seconds:.1f} s{gain}; saved in {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine import checkpoint
    from engine.export import export, format_for_path
    from engine.files import check_output

    check_output(args.out, [args.checkpoint])
    out = export(checkpoint.load(args.checkpoint), args.format or format_for_path(args.out), args.out)
    print(f"wrote {out}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from engine.devices import best_device, list_devices
    from engine.lenet_features import kernel_status

    devices = list_devices()
    kernel = kernel_status()
    if args.json:
        _print_json(
            {
                "devices": [d.to_dict() for d in devices],
                "auto": best_device(),
                "cpu_kernels": {kernel.name: {"in_use": kernel.available, "about": kernel.describe()}},
            }
        )
    else:
        for d in devices:
            marker = "*" if d.name == best_device() else " "
            print(f"{marker} {d.name:8} {d.description}")
        print(f"LeNet's fused CPU kernel: {kernel.describe()}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    dataset = _load_data(argparse.Namespace(data=None, dataset=args.dataset))
    print(f"{dataset.name}: {len(dataset.train)} training and {len(dataset.test)} test images in {dataset.folder}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "teach": cmd_teach,
    "export": cmd_export,
    "runs": cmd_runs,
    "devices": cmd_devices,
    "download": cmd_download,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except AlreadyReported:
        return 2
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, with the traceback only when asked for
        if os.environ.get("DIGIT_STUDIO_DEBUG"):
            traceback.print_exc()
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (set DIGIT_STUDIO_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1
