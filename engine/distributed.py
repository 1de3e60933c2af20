"""Training on several processes, on one machine or several, under PyTorch's launcher ``torchrun``.

``torchrun --nproc-per-node N main.py train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous in their environment. :func:`start` joins them in one
process group (gloo on the CPU, NCCL on CUDA with each process on ``cuda:LOCAL_RANK``), and the
:class:`engine.training.Trainer` then trains through ``DistributedDataParallel``: every process takes its
share of each global batch of ``N * batch_size`` images from the epoch's seeded order, and the gradients
are averaged, so N processes learn what one process with the N-times batch learns. A plain
``python main.py train`` never comes here.

Every collective has a timeout (``DIGIT_STUDIO_DIST_TIMEOUT`` seconds, default 30), so a process whose
peer died or froze is not left waiting for ever; torchrun stops the others when one fails. One failure is
one message: a process that stops for a reason it prints leaves word in the group's key-value store
(:func:`report_failure`), and the peers that then lose it stay quiet; a peer lost without a word (killed,
frozen) is reported by the first survivor alone (:func:`first_to_report`).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.errors import AlreadyReported, ConfigError

BACKENDS = ("auto", "gloo", "nccl")
# What a collective raises when a peer is gone or silent past the timeout (DistBackendError,
# DistNetworkError...; gloo's "Connection closed by peer" among them).
PeerLost = dist.DistError
# ...and what gloo says in a plain RuntimeError when a peer's socket closes or a collective times out
LOST_PEER_WORDS = (
    "connection reset by peer",
    "connection closed by peer",
    "broken pipe",
    "timed out",
    "socket timeout",
    "connection refused",
    "read error",
    "gloo",
    "nccl",
)
TIMEOUT_S = 30.0  # a frozen peer is noticed within this many seconds
MAX_TIMEOUT_S = 24 * 3600
STORE_TIMEOUT_S = 5.0  # for the store's word about a failure: its host may be the process that failed
FAILURE_KEY = "digit-studio/failure"  # set by a process that stopped and said why
REPORTED_KEY = "digit-studio/lost-peer-reported"  # counts the survivors that would report a lost peer


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc``, raised while training under torchrun, says a peer process is gone or frozen."""
    return isinstance(exc, PeerLost) or (
        isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in LOST_PEER_WORDS)
    )


class SaidByOne(ConfigError):
    """A problem every process of a machine finds alike, said by the one of local rank ``speaker``."""

    def __init__(self, message: str, speaker: int) -> None:
        super().__init__(message)
        self.speaker = speaker


def short_reason(exc: BaseException) -> str:
    """The first sentence of a lost peer's error, without gloo's source location."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    line = re.sub(r"^\[[^\]]*\]\s*", "", line)  # "[.../gloo/transport/tcp/pair.cc:545] Read error..."
    return line.split(". ")[0][:160]


def timeout_seconds() -> float:
    """``DIGIT_STUDIO_DIST_TIMEOUT`` (seconds, more than 0, at most a day), or the default."""
    text = os.environ.get("DIGIT_STUDIO_DIST_TIMEOUT", "").strip()
    if not text:
        return TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_TIMEOUT_S:  # NaN fails too
        raise ConfigError(
            f"DIGIT_STUDIO_DIST_TIMEOUT={text!r}: expected seconds, more than 0 and at most {MAX_TIMEOUT_S:.0f}"
        )
    return value


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int
    size: int
    local_rank: int

    @property
    def leader(self) -> bool:
        """Rank 0 alone reports, writes checkpoints and records the run."""
        return self.rank == 0

    def share(self, start: int, stop: int) -> tuple[int, int]:
        """This rank's part of ``[start, stop)``: contiguous, the parts' sizes differing by one at most."""
        count = stop - start
        base, extra = divmod(count, self.size)
        first = start + self.rank * base + min(self.rank, extra)
        return first, first + base + (1 if self.rank < extra else 0)


_current: list[World] = []


def world_from_environment() -> World | None:
    """The world torchrun describes in the environment, or None for a plain run (one process)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as exc:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers ({exc})") from exc
    if size < 1 or not 0 <= rank < size or local_rank < 0:
        raise ConfigError(f"RANK {rank} does not fit WORLD_SIZE {size}")
    return World(rank, size, local_rank)


def start(world: World, device: str | None, backend: str = "auto") -> str:
    """Join the process group; returns the device this process trains on ("cpu" or "cuda:LOCAL_RANK").

    What every process on a machine finds alike (a missing GPU, a bad setting) is said by one of them; the
    others raise :class:`AlreadyReported`, so that a machine's failure is one message."""
    try:
        chosen, backend = _device_and_backend(world, device, backend)
        timeout = _dt.timedelta(seconds=timeout_seconds())
    except ConfigError as exc:
        if world.local_rank == (exc.speaker if isinstance(exc, SaidByOne) else 0):
            raise
        raise AlreadyReported(str(exc)) from exc
    try:
        dist.init_process_group(backend, timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the other processes ({backend}): {exc}") from exc
    _current[:] = [world]
    return chosen


def _device_and_backend(world: World, device: str | None, backend: str) -> tuple[str, str]:
    wants_cuda = (
        device is not None and device.startswith("cuda") or (device in (None, "auto") and torch.cuda.is_available())
    )
    if backend == "nccl" and not torch.cuda.is_available():
        raise ConfigError(
            "the nccl backend needs CUDA GPUs, and this computer has none; use --dist-backend gloo with --device cpu"
        )
    if wants_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: this computer has no CUDA GPU")
        count = torch.cuda.device_count()
        if world.local_rank >= count:
            raise SaidByOne(
                f"{world.local_rank + 1} or more processes on this machine but {count} GPU"
                f"{'s' if count != 1 else ''}: use --nproc-per-node {count} or fewer",
                speaker=count,
            )  # the first process without a GPU of its own
        chosen = f"cuda:{world.local_rank}"
        torch.cuda.set_device(world.local_rank)
    elif device not in (None, "auto", "cpu"):
        raise ConfigError(f"--device {device} cannot be shared by the processes of torchrun; use cpu or cuda")
    else:
        chosen = "cpu"
    if backend == "auto":
        backend = "nccl" if chosen.startswith("cuda") else "gloo"
    return chosen, backend


def current() -> World | None:
    """The world :func:`start` joined, or None (a plain run)."""
    return _current[0] if _current and dist.is_initialized() else None


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
    _current.clear()


def sum_all(values: list[float], device: torch.device) -> list[float]:
    """The sums of ``values`` over every process (one collective)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_stopped(stopped: bool, device: torch.device) -> bool:
    """Whether any process was asked to stop: all of them stop at the same batch, so none waits for ever
    in a collective its peers left."""
    flag = torch.tensor([1.0 if stopped else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _store() -> dist.Store | None:
    """The process group's key-value store (torchrun's agent holds it, so it outlives any one process)."""
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(_dt.timedelta(seconds=STORE_TIMEOUT_S))
        return store
    except (AttributeError, RuntimeError, ValueError):
        return None


def report_failure(message: str) -> None:
    """Leave word that this process stops for a reason it reports itself, so its peers need not."""
    store = _store() if dist.is_initialized() else None
    if store is not None:
        try:
            store.set(FAILURE_KEY, message[:1000])
        except (RuntimeError, ValueError):  # the store is gone too: the peers will each say so
            pass


def first_to_report() -> bool:
    """Whether this process, having lost a peer, is the one to say so: not when the process that stopped
    reported its reason, and only the first survivor to ask. Without a store to ask, every survivor does."""
    store = _store()
    if store is None:
        return True
    try:
        if store.check([FAILURE_KEY]):
            return False
        return store.add(REPORTED_KEY, 1) == 1
    except (RuntimeError, ValueError):
        return True
