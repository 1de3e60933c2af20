"""Downloading data sets: mirrors, checksums, timeouts, resumable ``.part`` files, progress and cancel.

A file is streamed into ``NAME.part`` and renamed to ``NAME`` (``os.replace``) only after its MD5 matches,
so a crash, a cancel or a bad mirror never leaves a half or wrong file under the real name. A ``.part``
left by an interrupted download is resumed with an HTTP Range request where the server allows it.
A server that sends more than any data set file holds (:data:`MAX_FILE_BYTES`), or for longer than
:data:`DEADLINE_S` in all, is cut off: it can neither fill the disk nor hold the download forever.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DownloadCancelled, DownloadError

CHUNK = 64 * 1024
TIMEOUT_S = 20.0  # for each read: a silent server
DEADLINE_S = 30 * 60.0  # for a whole data set: a server that trickles forever
MAX_FILE_BYTES = 64 * 2**20  # the largest file of a known data set (Fashion-MNIST's training images) is 26 MB


ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes expected)


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch by name from any of a set of mirrors, and the MD5 sum it must have."""

    name: str
    md5: str


class _Refused(DownloadError):
    """A mirror that sent too much or too slowly; the next one is tried."""


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(
    url: str,
    part: Path,
    progress: Callable[[int, int | None], None],
    cancelled: Callable[[], bool],
    timeout: float,
    deadline: float,
) -> None:
    """Stream ``url`` into ``part``, resuming from its current size when the server honours Range, until
    ``deadline`` (a ``time.monotonic()`` value)."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "digit-studio"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = start > 0 and response.status == 206
        if not resumed:
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None and length.isdigit() else None
        if total is not None and total > MAX_FILE_BYTES:
            raise _Refused(f"{url}: announces {total:,} bytes, more than any data set file holds")
        done = start
        progress(done, total)
        with part.open("ab" if resumed else "wb") as out:
            while True:
                if cancelled():
                    raise DownloadCancelled(f"download of {url} cancelled")
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if done > MAX_FILE_BYTES:
                    raise _Refused(f"{url}: sent more than {MAX_FILE_BYTES:,} bytes, more than any data set file holds")
                if time.monotonic() > deadline:
                    raise _Refused(f"{url}: still sending after {DEADLINE_S / 60:.0f} minutes")
                progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done < total:
            # http.client returns a short body without complaint when the server hangs up early
            raise http.client.IncompleteRead(b"", total - done)


def download_file(
    remote: RemoteFile,
    mirrors: tuple[str, ...] | list[str],
    folder: Path,
    progress: Callable[[int, int | None], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    timeout: float = TIMEOUT_S,
    deadline: float | None = None,
) -> Path:
    """Download one file, trying each mirror in turn, and return its final path."""
    deadline = time.monotonic() + DEADLINE_S if deadline is None else deadline
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / remote.name
    part = folder / (remote.name + ".part")
    progress = progress or (lambda done, total: None)
    cancelled = cancelled or (lambda: False)
    problems: list[str] = []
    offline = True
    for mirror in mirrors:
        url = mirror + remote.name
        try:
            _fetch(url, part, progress, cancelled, timeout, deadline)
        except DownloadCancelled:
            raise
        except _Refused as exc:
            offline = False
            part.unlink(missing_ok=True)
            problems.append(str(exc))
            continue
        except urllib.error.HTTPError as exc:
            offline = False
            problems.append(f"{url}: HTTP {exc.code}")
            continue
        except http.client.HTTPException as exc:  # e.g. the connection dropped mid-file: .part is kept
            offline = False
            problems.append(f"{url}: transfer failed ({type(exc).__name__})")
            continue
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            problems.append(f"{url}: {reason}")
            continue
        offline = False
        actual = _md5(part)
        if actual != remote.md5:
            part.unlink(missing_ok=True)
            problems.append(f"{url}: checksum mismatch (md5 {actual}, expected {remote.md5})")
            continue
        os.replace(part, final)
        return final
    if offline:
        raise DownloadError(
            f"cannot download {remote.name}: no network connection ({problems[-1] if problems else 'no mirror'}). "
            f"Put the data set's IDX files in {folder}"
        )
    raise DownloadError(
        f"cannot download {remote.name}: every mirror failed ({'; '.join(problems)}). "
        f"Put the data set's IDX files in {folder}"
    )


def download_dataset(
    files: Sequence[RemoteFile],
    mirrors: Sequence[str],
    folder: Path,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download every one of ``files`` missing from ``folder``, each from the first of ``mirrors`` that has it.

    Progress counts bytes over the files fetched so far: (bytes done, bytes expected), where the expected
    total grows as each file's size becomes known.
    """
    finished = 0
    deadline = time.monotonic() + DEADLINE_S
    for remote in [f for f in files if not (folder / f.name).is_file()]:

        def report(done: int, total: int | None, base: int = finished) -> None:
            if progress is not None:
                progress(base + done, base + (total if total is not None else done))

        path = download_file(remote, tuple(mirrors), folder, report, cancelled, timeout, deadline)
        finished += path.stat().st_size
    return folder
