"""Training under torchrun (engine/distributed.py): two CPU processes with gloo learn what one process with
the doubled batch learns, one checkpoint and one run record are written, and the result resumes in a single
process; bad settings are one-line errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import checkpoint
from engine.distributed import World
from engine.runs import list_runs
from tests.test_cli import ROOT, assert_one_line_error, run

LENET = ["--model", "lenet", "--device", "cpu", "--quiet", "--epochs", "1", "--augment"]


def torchrun(processes: int, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(processes),
            "--master-port",
            str(_free_port()),
            str(ROOT / "main.py"),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_world_shares_each_range_evenly() -> None:
    shares = [World(rank, 3, rank).share(10, 21) for rank in range(3)]
    assert shares == [(10, 14), (14, 18), (18, 21)]
    assert World(1, 2, 1).share(0, 1) == (1, 1)  # an empty share, never a range outside


def test_two_processes_learn_what_one_learns_with_the_doubled_batch(tiny_data: Path, tmp_path: Path) -> None:
    runs = {"DIGIT_STUDIO_RUNS": str(tmp_path / "runs")}
    shared, single = tmp_path / "two.pt", tmp_path / "one.pt"
    result = torchrun(
        2, "train", "--data", str(tiny_data), "--batch-size", "32", "--out", str(shared), "--json", *LENET, env=runs
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["batch_size"] == 32 and summary["global_batch_size"] == 64
    assert result.stdout.count('"world_size"') == 1  # rank 0 alone prints
    alone = run("train", "--data", str(tiny_data), "--batch-size", "64", "--out", str(single), "--no-record", *LENET)
    assert alone.returncode == 0, alone.stderr
    two, one = checkpoint.load(shared), checkpoint.load(single)
    for name, weights in one.model.state_dict().items():
        torch.testing.assert_close(two.model.state_dict()[name], weights, rtol=1e-4, atol=1e-5)
    assert two.history.epochs[0]["test_accuracy"] == one.history.epochs[0]["test_accuracy"]  # tested in shares, exactly
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.pt", "runs", "two.pt"]  # one checkpoint, no temporaries
    (record,) = list_runs(tmp_path / "runs")
    assert record.status == "finished" and record.epochs_done == 1

    resumed = run(
        "train",
        "--resume",
        str(shared),
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "more.pt"),
        "--json",
        "--quiet",
        "--no-record",
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["epochs"] == 2


def _as_rank(rank: int, size: int) -> dict:
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(size),
        "LOCAL_RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a computer without CUDA")
def test_bad_distributed_settings_are_one_line_errors(tiny_data: Path) -> None:
    nccl = run("train", "--data", str(tiny_data), "--dist-backend", "nccl", *LENET, env=_as_rank(0, 1))
    assert_one_line_error(nccl, "nccl", "CUDA")
    gpus = run("train", "--data", str(tiny_data), "--model", "lenet", "--device", "cuda", "--quiet", env=_as_rank(0, 1))
    assert_one_line_error(gpus, "cuda", "no CUDA GPU")


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "1e9"])
def test_a_bad_timeout_is_a_one_line_error(tiny_data: Path, value: str) -> None:
    bad = run("train", "--data", str(tiny_data), *LENET, env={**_as_rank(0, 1), "DIGIT_STUDIO_DIST_TIMEOUT": value})
    assert_one_line_error(bad, "DIGIT_STUDIO_DIST_TIMEOUT", "seconds")


def test_a_peer_lost_in_gloo_words_is_told_apart_from_other_errors() -> None:
    from engine.distributed import lost_peer

    assert lost_peer(RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection reset by peer"))
    assert lost_peer(RuntimeError("Timed out waiting 30000ms for send operation to complete"))
    assert not lost_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not lost_peer(ValueError("connection reset by peer"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a computer without CUDA")
def test_a_failure_every_process_finds_alike_is_said_once(tiny_data: Path) -> None:
    """Each process of a machine finds no GPU: local rank 0 says so, the others exit quietly."""
    args = ("train", "--data", str(tiny_data), "--model", "lenet", "--device", "cuda", "--quiet")
    assert_one_line_error(run(*args, env=_as_rank(0, 2)), "no CUDA GPU")
    other = run(*args, env=_as_rank(1, 2))
    assert other.returncode == 2 and other.stderr == "", other.stderr


@pytest.fixture
def group():
    """A process group of one, in this process, with an in-memory store."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_a_peer_that_said_why_it_stopped_silences_the_survivors(group) -> None:
    from engine.distributed import first_to_report, report_failure

    report_failure("--out names the checkpoint that --resume reads")
    assert not first_to_report()


def test_a_peer_lost_without_a_word_is_reported_by_the_first_survivor_alone(group) -> None:
    from engine.distributed import first_to_report

    assert [first_to_report() for _ in range(3)] == [True, False, False]


def _our_lines(stderr: str) -> list[str]:
    """What the program itself printed (torchrun adds its own summary of the failed processes)."""
    return [line for line in stderr.splitlines() if line.startswith("digit-studio:")]


def test_a_failure_one_process_knows_is_one_message_from_it(tiny_data: Path, tmp_path: Path) -> None:
    shared = tmp_path / "a.pt"
    first = torchrun(
        2,
        "train",
        "--data",
        str(tiny_data),
        "--out",
        str(shared),
        *LENET,
        env={"DIGIT_STUDIO_RUNS": str(tmp_path / "runs")},
    )
    assert first.returncode == 0, first.stderr[-3000:]
    before = shared.read_bytes()
    again = torchrun(2, "train", "--resume", str(shared), "--out", str(shared), "--epochs", "1", "--quiet")
    assert again.returncode != 0
    (line,) = _our_lines(again.stderr)  # rank 0's reason; rank 1, which lost it, stays quiet
    assert "which this command reads" in line and "internal error" not in again.stderr
    assert shared.read_bytes() == before


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the processes in /proc")
def test_a_killed_peer_is_one_message_from_a_survivor(tiny_data: Path, tmp_path: Path) -> None:
    import signal
    import time

    store = tmp_path / "runs"
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
            str(ROOT / "main.py"),
            "train",
            "--data",
            str(tiny_data),
            *LENET[:-3],
            "--epochs",
            "500",
        ],
        cwd=ROOT,
        env={**os.environ, "DIGIT_STUDIO_RUNS": str(store)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(store.glob("*/steps.csv")) and time.monotonic() < deadline:  # training has begun
            time.sleep(0.2)
        (rank_1,) = [pid for pid in _children(launcher.pid) if _environment(pid).get("RANK") == "1"]
        os.kill(rank_1, signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=90)
    finally:
        launcher.kill()
    (line,) = _our_lines(stderr)
    assert "rank 0: the run stopped because another of its processes stopped" in line
    assert "internal error" not in stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _environment(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode(errors="replace").partition("=")[::2] for entry in entries if b"=" in entry)
