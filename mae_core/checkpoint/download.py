"""Download checkpoints: progress (a bar or a callback), resume of partial files, a free-space
check, cancellation, md5/sha256 check, atomic move."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from ..errors import DownloadError
from .catalog import get_official, mirror_base_url

log = logging.getLogger(__name__)

CHUNK = 1 << 20
FREE_SPACE_MARGIN = 64 << 20  # leave this much on the disk after the download


class DownloadCancelled(DownloadError):
    """``should_stop`` asked the download to stop; the partial file is kept for a resume."""


def _digest_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    return _digest_of(path, "md5")


def _check_free_space(folder: Path, needed: int, url: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed + FREE_SPACE_MARGIN > free:
        raise DownloadError(f"not enough disk space for {url}: it needs {needed / 1e6:.0f} MB more "
                            f"and {folder} has {free / 1e6:.0f} MB free; free some space and retry")


def download(
    url: str,
    dest: Path,
    md5_prefix: str | None = None,
    *,
    timeout: float = 60.0,
    progress: bool = True,
    on_progress: Callable[[int, int | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sha256: str | None = None,
) -> Path:
    """Fetch ``url`` into ``dest``. A ``dest.partial`` from an earlier try is resumed with an
    HTTP Range request; the file only appears at ``dest`` after its md5 prefix (and sha256, if
    given) matched. ``on_progress(bytes_done, bytes_total_or_None)`` is called per chunk;
    ``should_stop()`` returning True stops the transfer with DownloadCancelled (the partial
    file stays, so the next call resumes). Refused before any byte is written when the disk
    lacks the space the server's Content-Length says is needed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            response = None
        else:
            raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if have and not resumed:
                have = 0  # server ignored Range: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            if length is not None:
                _check_free_space(partial.parent, int(length), url)
            mode = "ab" if resumed else "wb"
            with open(partial, mode) as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                disable=not progress,
            ) as bar:
                done = have
                try:
                    for block in iter(lambda: response.read1(CHUNK), b""):  # as data arrives
                        out.write(block)
                        bar.update(len(block))
                        done += len(block)
                        if on_progress is not None:
                            on_progress(done, total)
                        if should_stop is not None and should_stop():
                            raise DownloadCancelled(f"download of {url} was cancelled at {done} "
                                                    "bytes; starting it again resumes from there")
                except DownloadCancelled:
                    raise
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"download of {url} was interrupted ({exc}); run the same command again "
                        "to resume"
                    ) from None
                out.flush()
                os.fsync(out.fileno())
            if total is not None and partial.stat().st_size != total:
                raise DownloadError(
                    f"download of {url} stopped at {partial.stat().st_size} of {total} bytes; "
                    "run the same command again to resume"
                )
    for algorithm, expected in (("md5", md5_prefix), ("sha256", sha256)):
        if not expected:
            continue
        digest = _digest_of(partial, algorithm)
        if not digest.startswith(expected.lower()):
            partial.unlink()
            raise DownloadError(
                f"{dest.name}: {algorithm} {digest[:12]}... does not match the published "
                f"{expected[:12]}; the partial file was deleted, run the command again"
            )
    os.replace(partial, dest)
    return dest


def pull_official(
    name: str, folder: Path, base_url: str | None = None, *, progress: bool = True
) -> Path:
    """Download the official checkpoint ``name`` into ``folder`` (skips a verified file)."""
    entry = get_official(name)
    base = base_url or mirror_base_url()
    dest = Path(folder) / entry.filename
    if dest.exists() and (entry.md5_prefix is None or md5_of(dest).startswith(entry.md5_prefix)):
        log.info("%s is already present and verified", dest)
        return dest
    log.info("downloading %s from %s", name, entry.url(base))
    return download(entry.url(base), dest, entry.md5_prefix, progress=progress)
