"""Downloads against a real HTTP server on 127.0.0.1 serving generated files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.download import RemoteFile, download_dataset, download_file
from engine.errors import DownloadCancelled, DownloadError

PAYLOAD = bytes(range(256)) * 2000  # 512 KB


@pytest.fixture
def server(http_server) -> str:
    http_server.files.update({"good.bin": PAYLOAD, "bad.bin": PAYLOAD[:-1] + b"x"})
    return http_server.url


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def test_download_reports_progress_and_lands_atomically(server: str, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    path = download_file(
        RemoteFile("good.bin", _md5(PAYLOAD)), [server + "m/"], tmp_path, progress=lambda d, t: seen.append((d, t))
    )
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "good.bin.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert len(seen) > 2 and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_checksum_mismatch_is_refused_and_leaves_nothing(server: str, tmp_path: Path) -> None:
    remote = RemoteFile("bad.bin", _md5(PAYLOAD))
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(remote, [server + "m/"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_second_mirror_is_used_when_the_first_fails(server: str, tmp_path: Path) -> None:
    path = download_file(RemoteFile("good.bin", _md5(PAYLOAD)), [server + "missing/", server + "b/"], tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_partial_file_is_resumed_with_range(server: str, http_server, tmp_path: Path) -> None:
    (tmp_path / "good.bin.part").write_bytes(PAYLOAD[:1000])
    download_file(RemoteFile("good.bin", _md5(PAYLOAD)), [server + "m/"], tmp_path)
    assert (tmp_path / "good.bin").read_bytes() == PAYLOAD
    assert http_server.requests[-1][1] == "bytes=1000-"


def test_partial_file_is_restarted_when_range_is_ignored(server: str, http_server, tmp_path: Path) -> None:
    http_server.honour_range = False
    (tmp_path / "good.bin.part").write_bytes(b"garbage" * 10)
    download_file(RemoteFile("good.bin", _md5(PAYLOAD)), [server + "m/"], tmp_path)
    assert (tmp_path / "good.bin").read_bytes() == PAYLOAD


def test_cancel_stops_and_keeps_no_final_file(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadCancelled):
        download_file(RemoteFile("good.bin", _md5(PAYLOAD)), [server + "m/"], tmp_path, cancelled=lambda: True)
    assert not (tmp_path / "good.bin").exists()


def test_offline_error_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=rf"no network connection.*Put the data set's IDX files in {tmp_path}"):
        download_file(RemoteFile("good.bin", "0"), ["http://127.0.0.1:9/"], tmp_path, timeout=2)


def test_download_dataset_fetches_only_missing_files(server: str, http_server, tmp_path: Path) -> None:
    files, mirrors = (RemoteFile("good.bin", _md5(PAYLOAD)),), (server + "m/",)
    totals: list[tuple[int, int]] = []
    download_dataset(files, mirrors, tmp_path, progress=lambda d, t: totals.append((d, t)))
    assert totals[-1] == (len(PAYLOAD), len(PAYLOAD))
    count = len(http_server.requests)
    download_dataset(files, mirrors, tmp_path)
    assert len(http_server.requests) == count


def test_connection_dropped_mid_file_resumes_from_the_next_mirror(server: str, http_server, tmp_path: Path) -> None:
    http_server.drop_after = 100_000
    path = download_file(RemoteFile("good.bin", _md5(PAYLOAD)), [server + "a/", server + "b/"], tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert http_server.requests[-1] == ("/b/good.bin", "bytes=100000-")


def test_a_server_that_sends_too_much_is_cut_off(server: str, tmp_path: Path, monkeypatch) -> None:
    import engine.download

    monkeypatch.setattr(engine.download, "MAX_FILE_BYTES", 100_000)
    with pytest.raises(DownloadError, match="announces 512,000 bytes, more than any data set file holds"):
        download_file(RemoteFile("good.bin", _md5(PAYLOAD)), [server + "m/"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_sends_for_too_long_is_cut_off(server: str, tmp_path: Path) -> None:
    import time

    with pytest.raises(DownloadError, match="still sending after"):
        download_file(RemoteFile("good.bin", _md5(PAYLOAD)), [server + "m/"], tmp_path, deadline=time.monotonic() - 1)
    assert list(tmp_path.iterdir()) == []
