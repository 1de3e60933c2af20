"""Downloading data sets: mirrors, checksums, timeouts, resumable ``.part`` files, progress and cancel.

A file is streamed into ``NAME.part`` and renamed to ``NAME`` (``os.replace``) only after its MD5 matches,
so a crash, a cancel or a bad mirror never leaves a half or wrong file under the real name. A ``.part``
left by an interrupted download is resumed with an HTTP Range request where the server allows it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from engine.data import DatasetSpec, ProgressCallback, RemoteFile
from engine.errors import DownloadCancelled, DownloadError

CHUNK = 64 * 1024
TIMEOUT_S = 20.0


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
) -> None:
    """Stream ``url`` into ``part``, resuming from its current size when the server honours Range."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "digit-studio"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = start > 0 and response.status == 206
        if not resumed:
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
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
) -> Path:
    """Download one file, trying each mirror in turn, and return its final path."""
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
            _fetch(url, part, progress, cancelled, timeout)
        except DownloadCancelled:
            raise
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
    spec: DatasetSpec,
    folder: Path,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download every file of ``spec`` missing from ``folder``.

    Progress counts bytes over the files fetched so far: (bytes done, bytes expected), where the expected
    total grows as each file's size becomes known.
    """
    finished = 0
    for remote in [f for f in spec.files if not (folder / f.name).is_file()]:

        def report(done: int, total: int | None, base: int = finished) -> None:
            if progress is not None:
                progress(base + done, base + (total if total is not None else done))

        path = download_file(remote, spec.mirrors, folder, report, cancelled, timeout)
        finished += path.stat().st_size
    return folder
